// Command etcd is upstream etcd's server, built from the go.etcd.io/etcd/server/v3 module at the
// version k8s.io/kubernetes selects, so it always matches what kube-apiserver is tested with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
