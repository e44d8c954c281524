#!/usr/bin/env bash
# Build the kindslurm kind node image (kind v0.30.0, Kubernetes v1.34.4) with no
# container registry: every binary comes from the Go module proxy, the root
# filesystem from Debian's mirror (debootstrap), kind's base-image files from the
# kind Go module.  Run as root on Debian 12:
#
#   bash setup/node-image/build.sh            # full build (idempotent, cached)
#   bash setup/node-image/build.sh binaries   # only build (or find cached) the Go binaries
#   KINDSLURM_FORCE_REBUILD=1 bash setup/node-image/build.sh   # reassemble even if up to date
#
# Output: podman image localhost/kindslurm/node:v1.34.4 and
#         $KINDSLURM_CACHE/images/kindslurm-node.tar (symlink to node-<key>.tar)
# Cache:  ${KINDSLURM_CACHE:-/var/cache/kindslurm}
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=versions.sh
source "$HERE/versions.sh"

MODE="${1:-all}"
CACHE="${KINDSLURM_CACHE:-/var/cache/kindslurm}"
BIN_CACHE="$CACHE/bin"
IMAGE_DIR="$CACHE/images"
WORK_ROOT="$CACHE/work"
IMAGE_NAME="kindslurm/node:${K8S_VERSION}"
IMAGE_REF="localhost/${IMAGE_NAME}"
LABEL_PREFIX="io.kindslurm.node"

export PATH="/usr/local/go/bin:/usr/local/bin:$PATH"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export GOTOOLCHAIN=local
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"

T0=$(date +%s)
PHASE_START=$T0
PHASE_NAME=""
TIMINGS=()
log()  { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die()  { printf '[build] ERROR: %s\n' "$*" >&2; exit 1; }
phase() {
  local now; now=$(date +%s)
  if [[ -n "$PHASE_NAME" ]]; then
    TIMINGS+=("$(printf '%-28s %5ss' "$PHASE_NAME" $((now - PHASE_START)))")
    log "phase '$PHASE_NAME' done in $((now - PHASE_START))s"
  fi
  PHASE_NAME="$1"; PHASE_START=$now
  [[ -n "$1" ]] && log "=== phase: $1"
  return 0
}
print_timings() {
  phase ""
  log "phase timings:"
  local t; for t in "${TIMINGS[@]}"; do printf '    %s\n' "$t" >&2; done
  printf '    %-28s %5ss\n' TOTAL $(( $(date +%s) - T0 )) >&2
}
trap 'rc=$?; if (( rc != 0 )); then log "FAILED (exit $rc) in phase: ${PHASE_NAME:-?}"; fi' EXIT

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, podman rootful, containerd)"

# ---------------------------------------------------------------------------
# cache key: versions + every file under setup/node-image/
compute_key() {
  ( cd "$HERE" && find . -type f ! -name '*.pyc' -print0 | LC_ALL=C sort -z \
      | xargs -0 sha256sum ) | sha256sum | cut -c1-16
}
KEY="$(compute_key)"

# ---------------------------------------------------------------------------
phase "host dependencies"
need_pkgs=()
for p in debootstrap libseccomp-dev gcc libc6-dev pkg-config pigz podman runc jq \
         busybox-static iptables ca-certificates curl xz-utils; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if ((${#need_pkgs[@]})); then
  log "apt-get install ${need_pkgs[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}" \
    || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}"; }
fi
command -v go >/dev/null || die "Go toolchain not found (expected /usr/local/go/bin/go)"
GO_VER="$(go env GOVERSION)"
log "go: $GO_VER  cache: $CACHE  key: $KEY"
mkdir -p "$BIN_CACHE" "$IMAGE_DIR" "$WORK_ROOT"

# ---------------------------------------------------------------------------
# superseded node images (earlier keys) become dangling when the tag moves; a
# running cluster may still use one, so removal is best effort on every run
prune_old_images() {
  podman images -q --filter "label=${LABEL_PREFIX}.key" --filter dangling=true \
    | xargs -r podman rmi >/dev/null 2>&1 || true
}

# warm path: image already present with our key -> nothing to do
image_key() { podman image inspect --format "{{ index .Labels \"${LABEL_PREFIX}.key\" }}" "$IMAGE_REF" 2>/dev/null || true; }
ARCHIVE="$IMAGE_DIR/node-$KEY.tar"
install_host_tools() {
  # the product needs kubectl (and kind) on the host: from the binary cache,
  # else (image loaded from an archive only) out of the node image itself
  if [[ -x "$BIN_CACHE/kubernetes-$K8S_VERSION/kubectl" ]]; then
    install -m 0755 "$BIN_CACHE/kubernetes-$K8S_VERSION/kubectl" /usr/local/bin/kubectl
  elif podman run --rm --entrypoint /bin/cat "$IMAGE_REF" /usr/bin/kubectl > /usr/local/bin/kubectl.tmp; then
    chmod 0755 /usr/local/bin/kubectl.tmp && mv /usr/local/bin/kubectl.tmp /usr/local/bin/kubectl
  else
    rm -f /usr/local/bin/kubectl.tmp; log "warning: could not install /usr/local/bin/kubectl"
  fi
  command -v kind >/dev/null && [[ "$(kind version 2>/dev/null | awk '{print $2}')" == "$KIND_VERSION" ]] \
    || bash "$REPO/setup/install-kind.sh"
}
if [[ "$MODE" == all && "${KINDSLURM_FORCE_REBUILD:-0}" != 1 ]]; then
  if [[ "$(image_key)" == "$KEY" ]]; then
    [[ -f "$ARCHIVE" ]] || { phase "save archive"; podman save -q -o "$ARCHIVE.tmp" "$IMAGE_REF" && mv "$ARCHIVE.tmp" "$ARCHIVE"; }
    ln -sfn "node-$KEY.tar" "$IMAGE_DIR/kindslurm-node.tar"
    find "$IMAGE_DIR" -maxdepth 1 -name 'node-*.tar' ! -name "node-$KEY.tar" -delete
    prune_old_images
    phase "host tools"; install_host_tools
    log "image $IMAGE_REF is up to date (key $KEY)"
    print_timings; exit 0
  fi
  if [[ -f "$ARCHIVE" ]]; then
    phase "podman load"
    podman load -i "$ARCHIVE" >/dev/null
    if [[ "$(image_key)" == "$KEY" ]]; then
      ln -sfn "node-$KEY.tar" "$IMAGE_DIR/kindslurm-node.tar"
      phase "host tools"; install_host_tools
      log "loaded $IMAGE_REF from $ARCHIVE"
      print_timings; exit 0
    fi
    log "archive $ARCHIVE did not carry the key; rebuilding"
  fi
fi

# ---------------------------------------------------------------------------
# Go builds.  Each component goes to $BIN_CACHE/<component>-<version>/ with a
# .done stamp; a wrapper module per component lives in $WORK_ROOT/go/<component>.
GOWORK_DIR="$WORK_ROOT/go"
mkdir -p "$GOWORK_DIR"

mod_dir() {  # mod_dir MODULE VERSION -> directory of the extracted module
  go mod download -json "$1@$2" | jq -r .Dir
}
mod_gomod() { go mod download -json "$1@$2" | jq -r .GoMod; }

# new_wrapper NAME -> prints dir; creates a fresh wrapper module
new_wrapper() {
  local d="$GOWORK_DIR/$1"
  rm -rf "$d"; mkdir -p "$d"
  cat > "$d/go.mod" <<EOF
module kindslurm.local/build/$1

go $GO_WRAPPER_LEVEL

godebug default=go$GO_WRAPPER_LEVEL
EOF
  printf 'package tools\n' > "$d/tools.go"
  echo "$d"
}

# copy `exclude` directives (ignored in dependencies) from a module's go.mod
copy_excludes() {  # copy_excludes GOMODFILE WRAPPERDIR
  awk '
    { sub(/[ \t]*\/\/.*$/, "") }
    /^exclude \(/ {inb=1; next}
    inb && /^\)/ {inb=0; next}
    inb && NF {print "exclude " $1 " " $2; next}
    /^exclude [^(]/ {print}
  ' "$1" >> "$2/go.mod"
}

done_or_build() {  # done_or_build COMPONENT VERSION FUNC
  local out="$BIN_CACHE/$1-$2"
  if [[ -f "$out/.done" ]]; then log "cached: $1 $2"; return 0; fi
  log "building $1 $2"
  rm -rf "$out"; mkdir -p "$out"
  local s; s=$(date +%s)
  "$3" "$out"
  touch "$out/.done"
  log "built $1 $2 in $(( $(date +%s) - s ))s"
}

build_kubernetes() {
  local out="$1" d gomod commit date
  d=$(new_wrapper kubernetes)
  gomod=$(mod_gomod k8s.io/kubernetes "$K8S_VERSION")
  {
    echo; echo "require k8s.io/kubernetes $K8S_VERSION"; echo
    # every staging module kubernetes replaces with ./staging/... -> the published tag
    awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod" | sort -u \
      | grep -v '^k8s.io/sample-' \
      | while read -r m; do echo "replace $m => $m $K8S_STAGING_VERSION"; done
  } >> "$d/go.mod"
  copy_excludes "$gomod" "$d"
  local info; info=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | jq -r .Info)
  commit=$(jq -r '.Origin.Hash // empty' "$info")
  [[ -n "$commit" ]] || commit=0000000000000000000000000000000000000000
  date=$(jq -r .Time "$info")
  date=$(date -u -d "$date" +%Y-%m-%dT%H:%M:%SZ)
  local major=${K8S_VERSION#v}; major=${major%%.*}
  local minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    ld+=" -X $p.gitCommit=$commit -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubeadm kube-proxy kubectl)
  ( cd "$d"
    local pkgs=("${cmds[@]/#/k8s.io/kubernetes/cmd/}")
    # packages with an explicit @version: a bare `go get pkg` would upgrade kubernetes
    go get "k8s.io/kubernetes@$K8S_VERSION" "${pkgs[@]/%/@$K8S_VERSION}"
    grep -q "k8s.io/kubernetes $K8S_VERSION" go.mod || die "kubernetes version drifted in wrapper go.mod"
    CGO_ENABLED=0 go build -trimpath -tags selinux,notest,grpcnotrace \
      -ldflags "all=$ld" -o "$out/" "${cmds[@]/#/k8s.io/kubernetes/cmd/}" )
  # pause: static C binary from the kubernetes module
  local kdir; kdir=$(mod_dir k8s.io/kubernetes "$K8S_VERSION")
  gcc -Os -Wall -Werror -static -DVERSION=v3.10.1-kindslurm -o "$out/pause" "$kdir/build/pause/linux/pause.c"
  strip "$out/pause"
}

build_etcd() {
  local out="$1" d
  d=$(new_wrapper etcd)
  ( cd "$d"
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION" \
           "go.etcd.io/etcd/etcdutl/v3@$ETCD_VERSION"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcdctl" go.etcd.io/etcd/etcdctl/v3
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcdutl" go.etcd.io/etcd/etcdutl/v3 )
}

build_coredns() {
  local out="$1" d
  d=$(new_wrapper coredns)
  copy_excludes "$(mod_gomod github.com/coredns/coredns "$COREDNS_VERSION")" "$d"
  ( cd "$d"
    go get "github.com/coredns/coredns@$COREDNS_VERSION"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/coredns" github.com/coredns/coredns )
}

build_containerd() {
  local out="$1" d m=github.com/containerd/containerd/v2
  d=$(new_wrapper containerd)
  copy_excludes "$(mod_gomod "$m" "$CONTAINERD_VERSION")" "$d"
  local ld="-s -w -X $m/version.Version=$CONTAINERD_VERSION -X $m/version.Package=github.com/containerd/containerd/v2"
  ( cd "$d"
    go get "$m@$CONTAINERD_VERSION" "$m/cmd/containerd@$CONTAINERD_VERSION" "$m/cmd/ctr@$CONTAINERD_VERSION" \
      "$m/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
    CGO_ENABLED=1 go build -trimpath -tags "no_aufs no_zfs no_btrfs no_devmapper" -ldflags "$ld" \
      -o "$out/" "$m/cmd/containerd" "$m/cmd/ctr"
    CGO_ENABLED=0 go build -trimpath -tags "no_aufs no_zfs no_btrfs no_devmapper" -ldflags "$ld" \
      -o "$out/" "$m/cmd/containerd-shim-runc-v2" )
}

build_runc() {
  local out="$1" d m=github.com/opencontainers/runc
  d=$(new_wrapper runc)
  copy_excludes "$(mod_gomod "$m" "$RUNC_VERSION")" "$d"
  ( cd "$d"
    go get "$m@$RUNC_VERSION"
    CGO_ENABLED=1 go build -trimpath -tags seccomp \
      -ldflags "-s -w -X main.version=${RUNC_VERSION#v} -X main.gitCommit=kindslurm" -o "$out/runc" "$m" )
  "$out/runc" --version | grep -q 'libseccomp' || die "runc built without seccomp"
}

build_crictl() {
  local out="$1" d m=sigs.k8s.io/cri-tools
  d=$(new_wrapper crictl)
  copy_excludes "$(mod_gomod "$m" "$CRICTL_VERSION")" "$d"
  ( cd "$d"
    go get "$m@$CRICTL_VERSION" "$m/cmd/crictl@$CRICTL_VERSION"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X $m/pkg/version.Version=$CRICTL_VERSION" \
      -o "$out/crictl" "$m/cmd/crictl" )
}

build_cni() {
  local out="$1" d m=github.com/containernetworking/plugins
  d=$(new_wrapper cni)
  ( cd "$d"
    local p pk=()
    for p in plugins/main/ptp plugins/main/bridge plugins/main/loopback plugins/ipam/host-local plugins/meta/portmap; do
      pk+=("$m/$p@$CNI_PLUGINS_VERSION")
    done
    go get "$m@$CNI_PLUGINS_VERSION" "${pk[@]}"
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" \
      -o "$out/" "$m/plugins/main/ptp" "$m/plugins/main/bridge" "$m/plugins/main/loopback" \
      "$m/plugins/ipam/host-local" "$m/plugins/meta/portmap" )
}

build_local_path() {
  local out="$1" d m=github.com/rancher/local-path-provisioner
  d=$(new_wrapper local-path)
  copy_excludes "$(mod_gomod "$m" "$LOCAL_PATH_VERSION")" "$d"
  ( cd "$d"
    go get "$m@$LOCAL_PATH_VERSION"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.VERSION=$LOCAL_PATH_VERSION" \
      -o "$out/local-path-provisioner" "$m" )
}

build_fuse_snapshotter() {
  local out="$1" d m=github.com/containerd/fuse-overlayfs-snapshotter/v2
  d=$(new_wrapper fuse-overlayfs)
  copy_excludes "$(mod_gomod "$m" "$FUSE_OVERLAYFS_SNAPSHOTTER_VERSION")" "$d"
  ( cd "$d"
    go get "$m@$FUSE_OVERLAYFS_SNAPSHOTTER_VERSION" "$m/cmd/containerd-fuse-overlayfs-grpc@$FUSE_OVERLAYFS_SNAPSHOTTER_VERSION"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
      -o "$out/containerd-fuse-overlayfs-grpc" "$m/cmd/containerd-fuse-overlayfs-grpc" )
}

build_kind_module() {  # just make sure the kind module (base-image files) is in GOMODCACHE
  local out="$1" dir
  dir=$(mod_dir sigs.k8s.io/kind "$KIND_VERSION")
  [[ -d "$dir/images/base/files" ]] || die "kind module has no images/base/files"
  echo "$dir" > "$out/dir"
}

phase "go builds"
done_or_build kubernetes "$K8S_VERSION" build_kubernetes
done_or_build etcd "$ETCD_VERSION" build_etcd
done_or_build coredns "$COREDNS_VERSION" build_coredns
done_or_build containerd "$CONTAINERD_VERSION" build_containerd
done_or_build runc "$RUNC_VERSION" build_runc
done_or_build crictl "$CRICTL_VERSION" build_crictl
done_or_build cni "$CNI_PLUGINS_VERSION" build_cni
done_or_build local-path "$LOCAL_PATH_VERSION" build_local_path
done_or_build fuse-overlayfs-snapshotter "$FUSE_OVERLAYFS_SNAPSHOTTER_VERSION" build_fuse_snapshotter
done_or_build kind-module "$KIND_VERSION" build_kind_module

K8S_BIN="$BIN_CACHE/kubernetes-$K8S_VERSION"
ETCD_BIN="$BIN_CACHE/etcd-$ETCD_VERSION"
COREDNS_BIN="$BIN_CACHE/coredns-$COREDNS_VERSION"
CTRD_BIN="$BIN_CACHE/containerd-$CONTAINERD_VERSION"
RUNC_BIN="$BIN_CACHE/runc-$RUNC_VERSION"
CRICTL_BIN="$BIN_CACHE/crictl-$CRICTL_VERSION"
CNI_BIN="$BIN_CACHE/cni-$CNI_PLUGINS_VERSION"
LP_BIN="$BIN_CACHE/local-path-$LOCAL_PATH_VERSION"
FUSE_BIN="$BIN_CACHE/fuse-overlayfs-snapshotter-$FUSE_OVERLAYFS_SNAPSHOTTER_VERSION"
KIND_MOD="$(cat "$BIN_CACHE/kind-module-$KIND_VERSION/dir")"

if [[ "$MODE" == binaries ]]; then
  install -m 0755 "$K8S_BIN/kubectl" /usr/local/bin/kubectl
  print_timings; exit 0
fi

# ---------------------------------------------------------------------------
# Debian root filesystems (debootstrap), cached as tarballs keyed by package list
DEBIAN_MIRROR="${DEBIAN_MIRROR:-}"
if [[ -z "$DEBIAN_MIRROR" ]]; then
  DEBIAN_MIRROR="$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  [[ -n "$DEBIAN_MIRROR" ]] || DEBIAN_MIRROR="$(awk '$1=="deb" && $0 !~ /security/ && $0 ~ /debian/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  [[ -n "$DEBIAN_MIRROR" ]] || DEBIAN_MIRROR=http://deb.debian.org/debian
fi
ROOTFS_CACHE="$CACHE/rootfs"
DEB_CACHE="$CACHE/debs"
mkdir -p "$ROOTFS_CACHE" "$DEB_CACHE"

# debootstrap_cached NAME TARGETDIR PKG,PKG,...  -> TARGETDIR populated
debootstrap_cached() {
  local name="$1" target="$2" pkgs="$3" h tarball
  h=$(printf '%s %s %s' "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$pkgs" | sha256sum | cut -c1-12)
  tarball="$ROOTFS_CACHE/$name-$DEBIAN_SUITE-$h.tar"
  rm -rf "$target"; mkdir -p "$target"
  if [[ -f "$tarball" ]]; then
    log "rootfs $name: cached $tarball"
    tar -C "$target" --numeric-owner -xpf "$tarball"
    return 0
  fi
  log "debootstrap $name ($DEBIAN_SUITE from $DEBIAN_MIRROR): $pkgs"
  debootstrap --variant=minbase --cache-dir="$DEB_CACHE" --include="$pkgs" \
    "$DEBIAN_SUITE" "$target" "$DEBIAN_MIRROR" > "$WORK/debootstrap-$name.log" 2>&1 \
    || { tail -30 "$WORK/debootstrap-$name.log" >&2; die "debootstrap $name failed (log: $WORK/debootstrap-$name.log)"; }
  trim_rootfs "$target"
  tar -C "$target" --numeric-owner -cpf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  # keep only the newest tarball per name
  find "$ROOTFS_CACHE" -name "$name-*.tar" ! -name "$(basename "$tarball")" -delete
}

trim_rootfs() {
  local r="$1"
  rm -rf "$r"/usr/share/doc/* "$r"/usr/share/man/* "$r"/usr/share/info/* \
         "$r"/usr/share/locale/* "$r"/usr/share/doc-base/* "$r"/usr/share/lintian/* \
         "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin "$r"/var/lib/apt/lists/* \
         "$r"/var/cache/debconf/*-old "$r"/var/log/* "$r"/tmp/* "$r"/var/tmp/*
  : > "$r/etc/resolv.conf" 2>/dev/null || true
  rm -f "$r/etc/hostname"
}

WORK="$WORK_ROOT/assemble"
mkdir -p "$WORK"
NODE_ROOT="$WORK/node-rootfs"
PROXY_ROOT="$WORK/kube-proxy-rootfs"
IMGS="$WORK/images"

# kind's base image package list (images/base/Dockerfile), minus open-iscsi
NODE_PKGS="systemd,systemd-sysv,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,fuse-overlayfs,nfs-common,bash,ca-certificates,curl,jq,procps,socat,ebtables,hostname"
PROXY_PKGS="iptables,nftables,conntrack,ipset,kmod"

phase "debootstrap node rootfs"
debootstrap_cached node "$NODE_ROOT" "$NODE_PKGS"
phase "debootstrap kube-proxy rootfs"
debootstrap_cached kube-proxy "$PROXY_ROOT" "$PROXY_PKGS"

# ---------------------------------------------------------------------------
phase "node rootfs: kind base files"
KB="$KIND_MOD/images/base/files"
R="$NODE_ROOT"
install -d -m 0755 "$R/kind" "$R/kind/bin" "$R/kind/manifests" "$R/LICENSES" \
  "$R/etc/containerd" "$R/etc/default" "$R/etc/sysctl.d" "$R/etc/systemd/system/kubelet.service.d" \
  "$R/etc/kubernetes/manifests" "$R/opt/cni/bin" "$R/usr/local/sbin" "$R/etc/cni/net.d"
install -m 0755 "$KB"/usr/local/bin/* "$R/usr/local/bin/"
install -m 0644 "$KB"/kind/README.txt "$R/kind/"
install -m 0755 "$KB"/kind/bin/* "$R/kind/bin/"
install -m 0644 "$KB"/LICENSES/* "$R/LICENSES/"
install -m 0644 "$KB"/etc/crictl.yaml "$R/etc/"
install -m 0644 "$KB"/etc/containerd/* "$R/etc/containerd/"
install -m 0644 "$KB"/etc/default/* "$R/etc/default/"
install -m 0644 "$KB"/etc/sysctl.d/* "$R/etc/sysctl.d/"
install -m 0644 "$KB"/etc/systemd/system/*.service "$KB"/etc/systemd/system/*.slice "$R/etc/systemd/system/"
install -m 0644 "$KB"/etc/systemd/system/kubelet.service.d/* "$R/etc/systemd/system/kubelet.service.d/"
install -m 0644 "$HERE/files/kindslurm-net-sysctl.service" "$R/etc/systemd/system/"

# kind's Dockerfile: unit pruning, journald, init
find "$R/lib/systemd/system/sysinit.target.wants/" -name "systemd-tmpfiles-setup.service" -delete
rm -f "$R"/lib/systemd/system/multi-user.target.wants/* \
      "$R"/etc/systemd/system/*.wants/* \
      "$R"/lib/systemd/system/local-fs.target.wants/* \
      "$R"/lib/systemd/system/sockets.target.wants/*udev* \
      "$R"/lib/systemd/system/sockets.target.wants/*initctl* \
      "$R"/lib/systemd/system/basic.target.wants/*
grep -q '^ReadKMsg=no' "$R/etc/systemd/journald.conf" || echo "ReadKMsg=no" >> "$R/etc/systemd/journald.conf"
ln -sf /lib/systemd/systemd "$R/sbin/init"

phase "node rootfs: binaries"
install -m 0755 "$CTRD_BIN"/containerd "$CTRD_BIN"/ctr "$CTRD_BIN"/containerd-shim-runc-v2 "$R/usr/local/bin/"
install -m 0755 "$RUNC_BIN/runc" "$R/usr/local/sbin/runc"
install -m 0755 "$CRICTL_BIN/crictl" "$R/usr/local/bin/"
install -m 0755 "$FUSE_BIN/containerd-fuse-overlayfs-grpc" "$R/usr/local/bin/"
install -m 0755 "$CNI_BIN"/host-local "$CNI_BIN"/loopback "$CNI_BIN"/ptp "$CNI_BIN"/portmap "$CNI_BIN"/bridge "$R/opt/cni/bin/"
install -m 0755 "$K8S_BIN"/kubeadm "$K8S_BIN"/kubelet "$K8S_BIN"/kubectl "$R/usr/bin/"
echo "$K8S_VERSION" > "$R/kind/version"

# systemd units (offline `systemctl enable` in the chroot)
chroot "$R" systemctl enable kubelet.service containerd.service undo-mount-hacks.service kindslurm-net-sysctl.service >/dev/null 2>&1
# a privileged node must not write host-global sysctls / binfmt
chroot "$R" systemctl mask systemd-binfmt.service systemd-sysctl.service >/dev/null 2>&1
for u in kubelet containerd undo-mount-hacks kindslurm-net-sysctl; do
  ls "$R"/etc/systemd/system/multi-user.target.wants/ | grep -q "^$u.service$" || die "systemctl enable $u failed"
done

# containerd base runtime spec (as kind's Dockerfile does) + config
"$CTRD_BIN/ctr" oci spec \
  | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
  | jq 'del(.process.rlimits)' > "$R/etc/containerd/cri-base.json"
# no CAP_SYS_RESOURCE on these hosts: negative oom_score_adj would kill every sandbox
sed -i 's/^\(\s*restrict_oom_score_adj\s*=\s*\)false/\1true/' "$R/etc/containerd/config.toml"
grep -q 'restrict_oom_score_adj = true' "$R/etc/containerd/config.toml" || die "could not set restrict_oom_score_adj"

# manifests kind applies at create time
install -m 0644 "$HERE/manifests/default-cni.yaml" "$R/kind/manifests/default-cni.yaml"
install -m 0644 "$HERE/manifests/default-storage.yaml" "$R/kind/manifests/default-storage.yaml"

# ---------------------------------------------------------------------------
phase "component images"
rm -rf "$IMGS"; mkdir -p "$IMGS"
mkimg() {  # mkimg ROOTFS OUT.tar -- mkimage.py args
  local root="$1" out="$2"; shift 2
  python3 "$HERE/mkimage.py" --rootfs "$root" --out "$IMGS/$out" "$@"
}
# minimal filesystem skeleton for static binaries
skel() {
  local d="$1"
  rm -rf "$d"; mkdir -p "$d"/{etc,tmp,usr/local/bin,var/run,root}
  chmod 1777 "$d/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin\n' > "$d/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\nnonroot:x:65532:\n' > "$d/etc/group"
  printf 'hosts: files dns\n' > "$d/etc/nsswitch.conf"
  mkdir -p "$d/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$d/etc/ssl/certs/" 2>/dev/null || true
}
with_busybox() {
  local d="$1"
  mkdir -p "$d/bin" "$d/sbin" "$d/usr/bin" "$d/usr/sbin"
  install -m 0755 /bin/busybox "$d/bin/busybox"
  chroot "$d" /bin/busybox --install -s
}
S="$WORK/skel"
reg=registry.k8s.io
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  skel "$S"; install -m 0755 "$K8S_BIN/$c" "$S/usr/local/bin/"
  mkimg "$S" "$c.tar" --tag "$reg/$c:$K8S_VERSION" --entrypoint "[\"/usr/local/bin/$c\"]"
done
skel "$S"; install -m 0755 "$ETCD_BIN"/etcd "$ETCD_BIN"/etcdctl "$ETCD_BIN"/etcdutl "$S/usr/local/bin/"
mkdir -p "$S/var/lib/etcd"
mkimg "$S" etcd.tar --tag "$reg/etcd:$ETCD_TAG" --entrypoint '["/usr/local/bin/etcd"]'
skel "$S"; install -m 0755 "$COREDNS_BIN/coredns" "$S/coredns"
mkimg "$S" coredns.tar --tag "$reg/coredns/coredns:$COREDNS_TAG" --entrypoint '["/coredns"]' \
  --label "io.kindslurm.note=CoreDNS $COREDNS_VERSION tagged as $COREDNS_TAG (the tag kubeadm expects)"
skel "$S"; install -m 0755 "$K8S_BIN/pause" "$S/pause"
pause_tags=(); for t in $PAUSE_TAGS; do pause_tags+=(--tag "$reg/pause:$t"); done
mkimg "$S" pause.tar "${pause_tags[@]}" --entrypoint '["/pause"]'
# kube-proxy: Debian rootfs with iptables/nft/conntrack + backend-following wrapper
P="$PROXY_ROOT"
install -m 0755 "$K8S_BIN/kube-proxy" "$P/usr/local/bin/kube-proxy"
install -m 0755 "$HERE/files/iptables-wrapper" "$P/usr/sbin/iptables-wrapper"
for c in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf /usr/sbin/iptables-wrapper "$P/usr/sbin/$c"
done
mkimg "$P" kube-proxy.tar --tag "$reg/kube-proxy:$K8S_VERSION" --entrypoint '["/usr/local/bin/kube-proxy"]'
# local-path provisioner + helper (busybox), CNI (busybox + kubectl + script)
skel "$S"; with_busybox "$S"; install -m 0755 "$LP_BIN/local-path-provisioner" "$S/usr/local/bin/"
mkimg "$S" local-path-provisioner.tar --tag "localhost/kindslurm/local-path-provisioner:$LOCAL_PATH_VERSION" \
  --entrypoint '["/usr/local/bin/local-path-provisioner"]'
skel "$S"; with_busybox "$S"
mkimg "$S" local-path-helper.tar --tag localhost/kindslurm/local-path-helper:v1 --cmd '["/bin/sh"]'
# the examples' busybox, preloaded so workloads/hello needs no image archive
skel "$S"; with_busybox "$S"
mkimg "$S" busybox.tar --tag localhost/kindslurm/busybox:1 --cmd '["/bin/sh"]'
skel "$S"; with_busybox "$S"; install -m 0755 "$K8S_BIN/kubectl" "$S/usr/local/bin/kubectl"
install -m 0755 "$HERE/files/kindslurm-cni.sh" "$S/kindslurm-cni.sh"
mkimg "$S" cni.tar --tag localhost/kindslurm/cni:v1 --cmd '["/bin/sh","/kindslurm-cni.sh"]'

# ---------------------------------------------------------------------------
phase "preload images (private containerd)"
CT="$WORK/ctrd"
rm -rf "$CT"; mkdir -p "$CT"
cat > "$CT/config.toml" <<EOF
version = 3
root = "$R/var/lib/containerd"
state = "$CT/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.nri.v1.nri", "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.sandbox.controller.v1.shim"]
[grpc]
  address = "$CT/containerd.sock"
[ttrpc]
  address = "$CT/containerd.sock.ttrpc"
[debug]
  address = ""
EOF
"$CTRD_BIN/containerd" --config "$CT/config.toml" > "$CT/containerd.log" 2>&1 &
CTRD_PID=$!
stop_ctrd() { kill "$CTRD_PID" 2>/dev/null && wait "$CTRD_PID" 2>/dev/null || true; }
trap 'rc=$?; stop_ctrd; if (( rc != 0 )); then log "FAILED (exit $rc) in phase: ${PHASE_NAME:-?}"; fi' EXIT
for _ in $(seq 100); do
  [[ -S "$CT/containerd.sock" ]] && "$CTRD_BIN/ctr" -a "$CT/containerd.sock" version >/dev/null 2>&1 && break
  kill -0 "$CTRD_PID" 2>/dev/null || { cat "$CT/containerd.log" >&2; die "private containerd exited"; }
  sleep 0.1
done
for t in "$IMGS"/*.tar; do
  "$CTRD_BIN/ctr" -a "$CT/containerd.sock" -n k8s.io images import \
    --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests "$t" >/dev/null
done
"$CTRD_BIN/ctr" -a "$CT/containerd.sock" -n k8s.io images ls -q | grep -v '@sha256' | sed 's/^/    /' >&2
stop_ctrd
rm -rf "$R/var/lib/containerd/tmpmounts" "$R/var/lib/containerd/io.containerd.runtime.v2.task"

# ---------------------------------------------------------------------------
phase "podman import node image"
trim_rootfs "$R"
labels=(
  "${LABEL_PREFIX}.key=$KEY"
  "${LABEL_PREFIX}.kind=$KIND_VERSION"
  "${LABEL_PREFIX}.kubernetes=$K8S_VERSION"
  "${LABEL_PREFIX}.etcd=$ETCD_VERSION"
  "${LABEL_PREFIX}.coredns=$COREDNS_VERSION"
  "${LABEL_PREFIX}.coredns-note=CoreDNS $COREDNS_VERSION is tagged as registry.k8s.io/coredns/coredns:$COREDNS_TAG (the tag kubeadm $K8S_VERSION expects; $COREDNS_TAG is not on the Go module proxy)"
  "${LABEL_PREFIX}.containerd=$CONTAINERD_VERSION"
  "${LABEL_PREFIX}.runc=$RUNC_VERSION"
  "${LABEL_PREFIX}.crictl=$CRICTL_VERSION"
  "${LABEL_PREFIX}.cni-plugins=$CNI_PLUGINS_VERSION"
  "${LABEL_PREFIX}.local-path-provisioner=$LOCAL_PATH_VERSION"
  "${LABEL_PREFIX}.fuse-overlayfs-snapshotter=$FUSE_OVERLAYFS_SNAPSHOTTER_VERSION"
  "${LABEL_PREFIX}.debian=$DEBIAN_SUITE"
  "${LABEL_PREFIX}.go=$GO_VER"
  "${LABEL_PREFIX}.cni=kindslurm-cni (ptp+host-local+portmap)"
)
changes=(
  --change 'ENV container=docker'
  --change 'STOPSIGNAL SIGRTMIN+3'
  --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]'
)
for l in "${labels[@]}"; do changes+=(--change "LABEL ${l%%=*}=\"${l#*=}\""); done
tar -C "$R" --numeric-owner -cf - . | podman import -q "${changes[@]}" - "$IMAGE_NAME" >/dev/null
[[ "$(image_key)" == "$KEY" ]] || die "imported image does not carry the key label"
podman image inspect --format '{{ index .Labels "io.kindslurm.node.coredns-note" }}' "$IMAGE_REF" >&2

phase "save archive"
podman save -q -o "$ARCHIVE.tmp" "$IMAGE_REF"
mv "$ARCHIVE.tmp" "$ARCHIVE"
ln -sfn "node-$KEY.tar" "$IMAGE_DIR/kindslurm-node.tar"
# drop archives of older keys
find "$IMAGE_DIR" -maxdepth 1 -name 'node-*.tar' ! -name "node-$KEY.tar" -delete
prune_old_images

phase "host tools"
install_host_tools
rm -rf "$WORK"
log "built $IMAGE_REF ($(podman image inspect --format '{{.Size}}' "$IMAGE_REF") bytes), archive $ARCHIVE"
print_timings
