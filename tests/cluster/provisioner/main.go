// Command provisioner is the local control plane's storage: a dynamic provisioner that backs each
// claim of its StorageClass with a folder on this machine (a hostPath PersistentVolume), and a
// resizer that grows a bound volume in place when its claim asks for more.
//
// Pods on kwok's fake nodes never mount anything, so the folder only has to exist; what matters to
// the tests is the real Kubernetes lifecycle: claims bind, grow, refuse to shrink, and are released.
// A claim whose dataSource is another claim starts as a copy of that claim's folder, as a CSI driver
// that clones volumes would give it: tests write bytes into the source's folder and read them back
// from the clone's.
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "path to the kubeconfig of the cluster")
	root := flag.String("root", "/tmp/oksa-volumes", "folder under which each volume gets a folder")
	name := flag.String("name", "oksa.dev/local-hostpath", "provisioner name StorageClasses refer to")
	// client-go's defaults (5 requests a second, 4 claims at a time, as a CSI driver's
	// external-provisioner also has) bind about 4 claims a second: 5,000 branches with a volume each
	// would take 21 minutes to bind whatever the operator does. `up` sizes it like the controllers.
	qps := flag.Float64("kube-api-qps", 5, "requests a second to the API server")
	burst := flag.Int("kube-api-burst", 10, "requests allowed at once above the rate")
	threadiness := flag.Int("threadiness", 4, "claims provisioned at once")
	klog.InitFlags(nil)
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Fatalf("reading kubeconfig: %v", err)
	}
	config.QPS = float32(*qps)
	config.Burst = *burst
	client := kubernetes.NewForConfigOrDie(config)
	if err := os.MkdirAll(*root, 0o755); err != nil {
		klog.Fatalf("creating volume root: %v", err)
	}

	go runResizer(ctx, client, *name)
	controller.NewProvisionController(ctx, client, *name, &hostPathProvisioner{root: *root, client: client},
		controller.LeaderElection(false),
		controller.Threadiness(*threadiness),
	).Run(ctx)
}
