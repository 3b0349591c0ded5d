package main

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// runResizer plays the part of an external resizer: kube-controller-manager only expands volumes of
// in-tree plugins and leaves the others "waiting for an external controller to expand this PVC".
// A hostPath folder has no size to grow, so expanding is: record the new capacity on the
// PersistentVolume, then on the claim's status, which is what users and operators read.
func runResizer(ctx context.Context, client kubernetes.Interface, provisionerName string) {
	factory := informers.NewSharedInformerFactory(client, 5*time.Minute)
	claims := factory.Core().V1().PersistentVolumeClaims()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer queue.ShutDown()
	enqueue := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	_, _ = claims.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())

	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	for {
		key, shutdown := queue.Get()
		if shutdown {
			return
		}
		namespace, name, _ := cache.SplitMetaNamespaceKey(key)
		claim, err := claims.Lister().PersistentVolumeClaims(namespace).Get(name)
		if err == nil {
			err = resize(ctx, client, provisionerName, claim)
		}
		if err != nil {
			klog.Errorf("resizing %s: %v", key, err)
			queue.AddRateLimited(key)
		} else {
			queue.Forget(key)
		}
		queue.Done(key)
	}
}

func resize(ctx context.Context, client kubernetes.Interface, provisionerName string, claim *v1.PersistentVolumeClaim) error {
	if claim.Status.Phase != v1.ClaimBound || claim.Spec.VolumeName == "" {
		return nil
	}
	requested := claim.Spec.Resources.Requests[v1.ResourceStorage]
	current, known := claim.Status.Capacity[v1.ResourceStorage]
	if !known || requested.Cmp(current) <= 0 {
		return nil
	}
	volume, err := client.CoreV1().PersistentVolumes().Get(ctx, claim.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if volume.Annotations["pv.kubernetes.io/provisioned-by"] != provisionerName {
		return nil
	}
	if capacity := volume.Spec.Capacity[v1.ResourceStorage]; capacity.Cmp(requested) < 0 {
		volume = volume.DeepCopy()
		volume.Spec.Capacity[v1.ResourceStorage] = requested
		if _, err := client.CoreV1().PersistentVolumes().Update(ctx, volume, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	claim = claim.DeepCopy()
	claim.Status.Capacity[v1.ResourceStorage] = requested
	if claim.Status.AllocatedResources != nil {
		claim.Status.AllocatedResources[v1.ResourceStorage] = requested
	}
	claim.Status.AllocatedResourceStatuses = nil
	claim.Status.Conditions = nil
	_, err = client.CoreV1().PersistentVolumeClaims(claim.Namespace).UpdateStatus(ctx, claim, metav1.UpdateOptions{})
	if err == nil {
		klog.Infof("expanded %s/%s to %s", claim.Namespace, claim.Name, requested.String())
	}
	return err
}
