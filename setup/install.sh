#!/usr/bin/env bash
# Everything a fresh Debian 12 machine needs to run kindslurm as root against a
# local single-node Slurm, with no container registry. Idempotent; cached
# builds make a second run take seconds.
#
#   bash setup/install.sh            # packages, kindslurm, kind, node image, host settings, Slurm
#   bash setup/install.sh --tests    # the same plus what the test suite needs
#
# kindslurm goes into a venv at /opt/kindslurm (readable by every user) and
# /usr/local/bin/kindslurm; the node image into podman and
# ${KINDSLURM_CACHE:-/var/cache/kindslurm}/images; the site config into
# /etc/kindslurm/config.yaml.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV=${KINDSLURM_VENV:-/opt/kindslurm}
CACHE=${KINDSLURM_CACHE:-/var/cache/kindslurm}
TESTS=0
[ "${1:-}" = "--tests" ] && TESTS=1

log() { printf '[install %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
[ "$(id -u)" = 0 ] || { echo "setup/install.sh: run as root" >&2; exit 1; }

log "Debian packages"
pkgs=(podman runc slirp4netns uidmap fuse-overlayfs slurm-wlm munge debootstrap libseccomp-dev
      busybox-static jq pigz iptables python3-venv gcc make git ca-certificates)
[ "$TESTS" = 1 ] && pkgs+=(openssh-server hyperfine docker-registry)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

log "kindslurm into $VENV"
[ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
# compat mode: a plain path entry instead of an import-hook finder, which every
# `kindslurm` start would otherwise pay for (templates are found beside the package)
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$REPO[test]" --config-settings editable_mode=compat
ln -sf "$VENV/bin/kindslurm" /usr/local/bin/kindslurm
chmod -R a+rX "$VENV"

log "kind"
bash "$HERE/install-kind.sh"
log "host settings for rootful kind"
bash "$HERE/host/podman-host.sh"
log "node image (cached in $CACHE)"
bash "$HERE/node-image/build.sh"
log "workload images"
bash "$HERE/images/build-test-images.sh"

log "site config /etc/kindslurm/config.yaml"
mkdir -p /etc/kindslurm
cat > /etc/kindslurm/config.yaml.tmp <<CONF
# Written by kindslurm's setup/install.sh: the offline node image for every run.
node_image: localhost/kindslurm/node:v1.34.4
node_image_archive: $CACHE/images/kindslurm-node.tar
CONF
mv /etc/kindslurm/config.yaml.tmp /etc/kindslurm/config.yaml

log "Slurm"
bash "$HERE/slurm.sh" start
install -m 0755 "$HERE/epilog.sh" /etc/slurm/kindslurm-epilog.sh

if [ "$TESTS" = 1 ]; then
    log "test user kstest (non-root: rootless preflight tests)"
    id kstest >/dev/null 2>&1 || useradd -m -s /bin/bash kstest
    grep -q '^kstest:' /etc/subuid || usermod --add-subuids 200000-265535 --add-subgids 200000-265535 kstest
fi
log "done: try 'kindslurm doctor'"
