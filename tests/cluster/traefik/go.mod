// The versions of Traefik (the plane's Gateway API implementation) and of the Gateway API CRDs
// it serves. Not built as a module: tests/cluster/build builds Traefik inside a copy of its own
// module, whose replace directives a dependent module would ignore.
module oksa.dev/testcluster/traefik

go 1.26.0

require (
	github.com/traefik/traefik/v3 v3.6.12
	sigs.k8s.io/gateway-api v1.4.0
)
