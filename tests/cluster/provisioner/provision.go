package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

type hostPathProvisioner struct {
	root   string
	client kubernetes.Interface
}

var _ controller.Provisioner = &hostPathProvisioner{}

func (p *hostPathProvisioner) Provision(ctx context.Context, options controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	claim := options.PVC
	// Before the folder: a source not ready yet is tried again, and leaves nothing behind.
	source, err := p.sourceFolder(ctx, claim)
	if err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	// A class with `clone: "false"` plays a storage system that cannot clone volumes.
	if source != "" && options.StorageClass.Parameters["clone"] == "false" {
		return nil, controller.ProvisioningFinished, fmt.Errorf("storage class %s cannot clone volumes", options.StorageClass.Name)
	}
	path := filepath.Join(p.root, fmt.Sprintf("%s_%s_%s", claim.Namespace, claim.Name, options.PVName))
	if err := os.MkdirAll(path, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, fmt.Errorf("creating %s: %w", path, err)
	}
	if source != "" {
		if err := copyTree(source, path); err != nil {
			_ = os.RemoveAll(path)
			return nil, controller.ProvisioningFinished, fmt.Errorf("cloning %s: %w", source, err)
		}
	}
	reclaim := v1.PersistentVolumeReclaimDelete
	if options.StorageClass.ReclaimPolicy != nil {
		reclaim = *options.StorageClass.ReclaimPolicy
	}
	hostPathType := v1.HostPathDirectoryOrCreate
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: options.PVName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: reclaim,
			AccessModes:                   claim.Spec.AccessModes,
			VolumeMode:                    claim.Spec.VolumeMode,
			MountOptions:                  options.StorageClass.MountOptions,
			Capacity:                      v1.ResourceList{v1.ResourceStorage: claim.Spec.Resources.Requests[v1.ResourceStorage]},
			PersistentVolumeSource: v1.PersistentVolumeSource{
				HostPath: &v1.HostPathVolumeSource{Path: path, Type: &hostPathType},
			},
		},
	}, controller.ProvisioningFinished, nil
}

func (p *hostPathProvisioner) Delete(_ context.Context, volume *v1.PersistentVolume) error {
	if volume.Spec.HostPath == nil {
		return nil
	}
	path := volume.Spec.HostPath.Path
	// Never remove anything outside our own root, whatever a PersistentVolume says.
	if !p.owns(path) {
		return fmt.Errorf("refusing to delete %s: not under %s", path, p.root)
	}
	return os.RemoveAll(path)
}
