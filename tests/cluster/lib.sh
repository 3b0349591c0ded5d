# Shared settings for the local control plane scripts. Sourced, not run.
# shellcheck shell=bash

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Binaries are cached outside the checkout, keyed by component and version, so only the first start
# on a machine compiles anything.
OKSA_CACHE="${OKSA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/oksa}"
# Where a running plane keeps its certificates, data, logs, PIDs and kubeconfig.
OKSA_CLUSTER_STATE="${OKSA_CLUSTER_STATE:-$OKSA_CACHE/cluster}"

KUBERNETES_VERSION="$(cat "$CLUSTER_DIR/k8s/KUBERNETES_VERSION")"
# module_version GO_MOD MODULE: the version GO_MOD requires MODULE at ("require M v" or in a block).
module_version() {
  local version
  version="$(awk -v m="$2" '{ if ($1 == "require") { $1 = "" ; $0 = $0 } } $1 == m { print $2; exit }' "$1")"
  [[ -n "$version" ]] || { echo "lib.sh: $2 is not required by $1" >&2; return 1; }
  echo "$version"
}
ETCD_VERSION="$(module_version "$CLUSTER_DIR/k8s/go.mod" go.etcd.io/etcd/server/v3)"
KWOK_VERSION="$(module_version "$CLUSTER_DIR/kwok/go.mod" sigs.k8s.io/kwok)"
HELM_VERSION="$(module_version "$CLUSTER_DIR/helm/go.mod" helm.sh/helm/v4)"
TRAEFIK_VERSION="$(module_version "$CLUSTER_DIR/traefik/go.mod" github.com/traefik/traefik/v3)"
GATEWAY_API_VERSION="$(module_version "$CLUSTER_DIR/traefik/go.mod" sigs.k8s.io/gateway-api)"
FLUX_KUSTOMIZE_VERSION="$(module_version "$CLUSTER_DIR/flux/go.mod" github.com/fluxcd/kustomize-controller)"
FLUX_SOURCE_VERSION="$(module_version "$CLUSTER_DIR/flux/go.mod" github.com/fluxcd/source-controller)"
# Gitea's go.mod names its module gitea.dev while the proxy serves it as code.gitea.io/gitea, so no
# go.mod of ours can require it: its version is kept in a plain file, like Kubernetes'.
GITEA_VERSION="$(cat "$CLUSTER_DIR/gitea/GITEA_VERSION")"

KUBERNETES_BIN="$OKSA_CACHE/kubernetes-$KUBERNETES_VERSION"
ETCD_BIN="$OKSA_CACHE/etcd-$ETCD_VERSION"
KWOK_BIN="$OKSA_CACHE/kwok-$KWOK_VERSION"
HELM_BIN="$OKSA_CACHE/helm-$HELM_VERSION"
TRAEFIK_BIN="$OKSA_CACHE/traefik-$TRAEFIK_VERSION"
# The standard-channel CRDs of Gateway API, from its module.
GATEWAY_API_CRDS="$OKSA_CACHE/gateway-api-$GATEWAY_API_VERSION"
# Flux's kustomize-controller, and the CRDs it needs: its Kustomization and every source kind
# (it watches them all, though the tests publish ExternalArtifacts only).
FLUX_BIN="$OKSA_CACHE/kustomize-controller-$FLUX_KUSTOMIZE_VERSION"
FLUX_CRDS="$OKSA_CACHE/flux-crds-$FLUX_KUSTOMIZE_VERSION-$FLUX_SOURCE_VERSION"
# Gitea, the plane's forge: its binary, and the locale files and templates it reads at run time
# when built without embedded assets.
GITEA_BIN="$OKSA_CACHE/gitea-$GITEA_VERSION"
# go build names the binary after the module's path.
GITEA_EXE="$GITEA_BIN/gitea.dev"
GITEA_STATIC="$OKSA_CACHE/gitea-static-$GITEA_VERSION"
# Our own provisioner is keyed by the hash of its sources, so an edit rebuilds it.
provisioner_key() {
  cat "$CLUSTER_DIR"/provisioner/*.go "$CLUSTER_DIR/provisioner/go.sum" | sha256sum | cut -c1-12
}
PROVISIONER_BIN="$OKSA_CACHE/provisioner-$(provisioner_key)"
# What a running plane was started from: a plane started from other sources (new kwok stages, a new
# provisioner, a changed start-up) is not reused.
plane_key() {
  { cat "$CLUSTER_DIR/up" "$CLUSTER_DIR/kwok/fault-stages.yaml"; provisioner_key; } | sha256sum | cut -c1-12
}

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
