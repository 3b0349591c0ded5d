package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// sourceFolder is the folder of the claim a new claim clones (`spec.dataSource`, a
// PersistentVolumeClaim of the same namespace), as a CSI driver with cloning would copy its volume.
// None without a data source. The source must be bound, no larger than the clone, and one of ours.
func (p *hostPathProvisioner) sourceFolder(ctx context.Context, claim *v1.PersistentVolumeClaim) (string, error) {
	source := claim.Spec.DataSource
	if ref := claim.Spec.DataSourceRef; source == nil && ref != nil {
		source = &v1.TypedLocalObjectReference{APIGroup: ref.APIGroup, Kind: ref.Kind, Name: ref.Name}
	}
	if source == nil {
		return "", nil
	}
	if source.Kind != "PersistentVolumeClaim" || (source.APIGroup != nil && *source.APIGroup != "") {
		return "", fmt.Errorf("cannot clone from a %s: only PersistentVolumeClaims", source.Kind)
	}
	origin, err := p.client.CoreV1().PersistentVolumeClaims(claim.Namespace).Get(ctx, source.Name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading the source claim %s: %w", source.Name, err)
	}
	if origin.Status.Phase != v1.ClaimBound || origin.Spec.VolumeName == "" {
		return "", fmt.Errorf("the source claim %s is not bound yet", source.Name)
	}
	wanted := claim.Spec.Resources.Requests[v1.ResourceStorage]
	if size, ok := origin.Status.Capacity[v1.ResourceStorage]; ok && wanted.Cmp(size) < 0 {
		return "", fmt.Errorf("the clone asks for %s, less than its source %s holds (%s)", wanted.String(), source.Name, size.String())
	}
	volume, err := p.client.CoreV1().PersistentVolumes().Get(ctx, origin.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading the source volume %s: %w", origin.Spec.VolumeName, err)
	}
	if volume.Spec.HostPath == nil || !p.owns(volume.Spec.HostPath.Path) {
		return "", fmt.Errorf("the source volume %s is not one of this provisioner's", volume.Name)
	}
	return volume.Spec.HostPath.Path, nil
}

// owns says whether a path is a volume folder under this provisioner's root.
func (p *hostPathProvisioner) owns(path string) bool {
	rel, err := filepath.Rel(p.root, path)
	return err == nil && rel != "." && !filepath.IsAbs(rel) && (len(rel) < 2 || rel[:2] != "..")
}

// copyTree copies the files and folders of `from` into `to` (which exists), keeping their modes.
func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(to, rel)
		info, err := entry.Info()
		if err != nil {
			return err
		}
		switch {
		case entry.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case info.Mode().IsRegular():
			return copyFile(path, target, info.Mode().Perm())
		default:
			// Links and devices are not data a test writes.
			return nil
		}
	})
}

func copyFile(from, to string, mode fs.FileMode) error {
	source, err := os.Open(from)
	if err != nil {
		return err
	}
	defer source.Close()
	target, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(target, source); err != nil {
		target.Close()
		return err
	}
	return target.Close()
}
