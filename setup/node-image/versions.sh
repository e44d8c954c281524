# Pinned component versions for the kindslurm node image (sourced by build.sh).
# Changing anything here changes the cache key and triggers a rebuild.
KIND_VERSION=v0.30.0
K8S_VERSION=v1.34.4
K8S_STAGING_VERSION=v0.34.4
ETCD_VERSION=v3.6.5
ETCD_TAG=3.6.5-0              # tag kubeadm v1.34 expects
COREDNS_VERSION=v1.14.7        # built version (v1.12.1 is not served by the module proxy)
COREDNS_TAG=v1.12.1            # tag kubeadm v1.34 expects
CONTAINERD_VERSION=v2.1.4
RUNC_VERSION=v1.3.0
CRICTL_VERSION=v1.34.0
CNI_PLUGINS_VERSION=v1.7.1
LOCAL_PATH_VERSION=v0.0.30
FUSE_OVERLAYFS_SNAPSHOTTER_VERSION=v2.1.7
PAUSE_TAGS="3.10.1 3.10"       # kubeadm expects 3.10.1, kind's containerd config uses 3.10
DEBIAN_SUITE=bookworm
# Go language/godebug level used by the wrapper modules (kubernetes v1.34 targets go1.24)
GO_WRAPPER_LEVEL=1.24
