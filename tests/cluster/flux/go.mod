// The versions of Flux's kustomize-controller (the plane's GitOps controller) and of the modules
// its CRDs come from. Not built as a module: tests/cluster/build builds kustomize-controller inside
// a copy of its own module, with its `api` module copied in where its replace line expects it.
module oksa.dev/testcluster/flux

go 1.26.0

require (
	github.com/fluxcd/kustomize-controller v1.9.6
	github.com/fluxcd/kustomize-controller/api v1.9.6
	github.com/fluxcd/source-controller v1.9.6
)
