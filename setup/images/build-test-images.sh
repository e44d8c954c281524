#!/usr/bin/env bash
# Small local images for tests and example workloads, built with no registry:
#   localhost/kindslurm/busybox:1  Debian's busybox-static, one layer (podman import)
#   localhost/kindslurm/python:3   debootstrap minbase bookworm + python3 + numpy + sysbench, trimmed
#   localhost/kindslurm/parsl:1    python:3 + Parsl (the version in kindslurm's venv), for Parsl's worker pods
# Each is also saved as $KINDSLURM_CACHE/images/{busybox,python,parsl}.tar (docker-archive,
# ready for `kind load image-archive`).  Idempotent and cached: an image whose
# io.kindslurm.image.key label matches the inputs is not rebuilt.
#   bash setup/images/build-test-images.sh [busybox|python|parsl|all]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${KINDSLURM_CACHE:-/var/cache/kindslurm}"
IMAGE_DIR="$CACHE/images"
WORK="$CACHE/work/test-images"
WHICH="${1:-all}"
SUITE=bookworm
PY_PKGS="python3,python3-numpy,sysbench"

log() { printf '[test-images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[test-images] ERROR: %s\n' "$*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root (rootful podman, debootstrap)"

need=()
for p in podman busybox-static debootstrap; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if ((${#need[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" \
    || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"; }
fi
mkdir -p "$IMAGE_DIR" "$WORK"

mirror() {
  local m
  m="$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  [[ -n "$m" ]] || m="$(awk '$1=="deb" && $0 !~ /security/ && $0 ~ /debian/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  echo "${DEBIAN_MIRROR:-${m:-http://deb.debian.org/debian}}"
}

image_key() { podman image inspect --format '{{ index .Labels "io.kindslurm.image.key" }}' "$1" 2>/dev/null || true; }

# ensure_image REF ARCHIVE KEY BUILDFUNC
ensure_image() {
  local ref="$1" archive="$2" key="$3" fn="$4" s
  s=$(date +%s)
  if [[ "$(image_key "$ref")" != "$key" ]]; then
    if [[ -f "$archive" ]]; then
      podman load -i "$archive" >/dev/null || true
    fi
    if [[ "$(image_key "$ref")" != "$key" ]]; then
      log "building $ref (key $key)"
      "$fn" "$ref" "$key"
      [[ "$(image_key "$ref")" == "$key" ]] || die "$ref: built image lacks key label"
      rm -f "$archive"
      # the previous build of this tag is now dangling: drop it
      podman images -q --filter dangling=true --filter label=io.kindslurm.image.key \
        | xargs -r podman rmi >/dev/null 2>&1 || true
    else
      log "$ref loaded from $archive"
    fi
  fi
  if [[ ! -f "$archive" ]]; then
    podman save -q --format docker-archive -o "$archive.tmp" "$ref" && mv "$archive.tmp" "$archive"
  fi
  log "$ref ready (key $key, archive $archive, $(( $(date +%s) - s ))s)"
}

script_hash() { sha256sum "$HERE/build-test-images.sh" | cut -c1-12; }

# --- busybox ---------------------------------------------------------------
build_busybox() {
  local ref="$1" key="$2" r="$WORK/busybox-rootfs"
  rm -rf "$r"; mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,var/www}
  chmod 1777 "$r/tmp"
  install -m 0755 /bin/busybox "$r/bin/busybox"
  chroot "$r" /bin/busybox --install -s
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$r/etc/group"
  printf 'hosts: files dns\n' > "$r/etc/nsswitch.conf"
  tar -C "$r" --numeric-owner -cf - . | podman import \
    --change 'CMD ["/bin/sh"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL io.kindslurm.image.key=$key" \
    --change "LABEL io.kindslurm.image.source=\"debian busybox-static $(dpkg-query -W -f='${Version}' busybox-static)\"" \
    - "$ref" >/dev/null
  rm -rf "$r"
}

# --- python ----------------------------------------------------------------
build_python() {
  local ref="$1" key="$2" r="$WORK/python-rootfs"
  rm -rf "$r"; mkdir -p "$r"
  debootstrap --variant=minbase --cache-dir="$CACHE/debs" --include="$PY_PKGS" \
    "$SUITE" "$r" "$(mirror)" > "$WORK/debootstrap-python.log" 2>&1 \
    || { tail -30 "$WORK/debootstrap-python.log" >&2; die "debootstrap failed"; }
  # trim: no apt/dpkg caches, docs, locales, tests, compiled caches
  rm -rf "$r"/usr/share/doc/* "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/* \
         "$r"/usr/share/lintian "$r"/var/cache/apt/* "$r"/var/lib/apt/lists/* "$r"/var/log/* \
         "$r"/tmp/* "$r"/var/tmp/* "$r"/usr/lib/python3/dist-packages/numpy/*/tests \
         "$r"/usr/lib/python3/dist-packages/numpy/tests "$r"/usr/lib/python3.*/test \
         "$r"/usr/lib/python3.*/idlelib "$r"/usr/lib/python3.*/tkinter "$r"/usr/lib/python3.*/ensurepip
  find "$r" -name __pycache__ -type d -prune -exec rm -rf {} +
  : > "$r/etc/resolv.conf"; rm -f "$r/etc/hostname"
  chroot "$r" python3 -c 'import numpy; print("numpy", numpy.__version__)' >&2
  tar -C "$r" --numeric-owner -cf - . | podman import \
    --change 'CMD ["/usr/bin/python3"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
    --change "LABEL io.kindslurm.image.key=$key" \
    --change "LABEL io.kindslurm.image.source=\"debian $SUITE minbase + $PY_PKGS\"" \
    - "$ref" >/dev/null
  rm -rf "$r"
}

# --- parsl ------------------------------------------------------------------
# Parsl's workers must run the same Parsl (and Python minor) as the program
# that starts them: the wheels come from PyPI through the venv's pip, built
# on top of the python image without a registry (`podman build --pull=never`).
VENV_PY="${KINDSLURM_VENV:-/opt/kindslurm}/bin/python"
parsl_version() { "$VENV_PY" -c 'import parsl; print(parsl.__version__)' 2>/dev/null || true; }
build_parsl() {
  local ref="$1" key="$2" ctx="$WORK/parsl-ctx" v
  v="$(parsl_version)"
  rm -rf "$ctx"; mkdir -p "$ctx/site" "$ctx/bin"
  "$VENV_PY" -m pip install -q --disable-pip-version-check --no-compile --target "$ctx/site" "parsl==$v" >&2
  if [[ -d "$ctx/site/bin" ]]; then mv "$ctx/site/bin/"* "$ctx/bin/"; rmdir "$ctx/site/bin"; fi
  sed -i '1s|^#!.*python.*$|#!/usr/bin/python3|' "$ctx/bin/"*
  printf 'FROM localhost/kindslurm/python:3\nCOPY site /usr/local/lib/python3.11/dist-packages\nCOPY bin /usr/local/bin\nLABEL io.kindslurm.image.key=%s\nLABEL io.kindslurm.image.source="python:3 + parsl %s"\n' \
    "$key" "$v" > "$ctx/Containerfile"
  podman build -q --pull=never -t "$ref" "$ctx" >/dev/null
  podman run --rm "$ref" python3 -c 'import parsl; print("parsl", parsl.__version__)' >&2
  rm -rf "$ctx"
}

bb_key="bb-$(script_hash)-$(dpkg-query -W -f='${Version}' busybox-static | sha256sum | cut -c1-8)"
py_key="py-$(script_hash)-$(printf '%s %s %s' "$SUITE" "$PY_PKGS" "$(mirror)" | sha256sum | cut -c1-8)"

parsl_key="parsl-$(script_hash)-${py_key}-$(parsl_version)"

case "$WHICH" in
  busybox) ensure_image localhost/kindslurm/busybox:1 "$IMAGE_DIR/busybox.tar" "$bb_key" build_busybox ;;
  python)  ensure_image localhost/kindslurm/python:3 "$IMAGE_DIR/python.tar" "$py_key" build_python ;;
  parsl)   ensure_image localhost/kindslurm/parsl:1 "$IMAGE_DIR/parsl.tar" "$parsl_key" build_parsl ;;
  all)
    ensure_image localhost/kindslurm/busybox:1 "$IMAGE_DIR/busybox.tar" "$bb_key" build_busybox
    ensure_image localhost/kindslurm/python:3 "$IMAGE_DIR/python.tar" "$py_key" build_python
    if [[ -n "$(parsl_version)" ]]; then
      ensure_image localhost/kindslurm/parsl:1 "$IMAGE_DIR/parsl.tar" "$parsl_key" build_parsl
    else
      log "no parsl in $VENV_PY: skipping localhost/kindslurm/parsl:1 (pip install parsl there first)"
    fi ;;
  *) die "usage: $0 [busybox|python|parsl|all]" ;;
esac
