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
	if err := p.fill(path, source); err != nil {
		return nil, controller.ProvisioningFinished, err
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

// fill makes the volume's folder once: empty, or a copy of the source's. The library may ask for the
// same volume again before its informer has seen the first answer's PersistentVolume (the plane's
// log shows it), and by then the branch may have written its own data: a folder that exists is that
// volume, kept as it is. A copy is made beside the folder and renamed into place, so a copy cut short
// is never taken for a whole one.
func (p *hostPathProvisioner) fill(path, source string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	staging := path + ".partial"
	_ = os.RemoveAll(staging)
	if err := os.MkdirAll(staging, 0o777); err != nil {
		return fmt.Errorf("creating %s: %w", staging, err)
	}
	if source != "" {
		if err := copyTree(source, staging); err != nil {
			_ = os.RemoveAll(staging)
			return fmt.Errorf("cloning %s: %w", source, err)
		}
	}
	if err := os.Rename(staging, path); err != nil {
		_ = os.RemoveAll(staging)
		return fmt.Errorf("creating %s: %w", path, err)
	}
	return nil
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
