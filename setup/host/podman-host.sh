#!/usr/bin/env bash
# Host settings rootful kind (podman provider) needs on kindslurm machines.
# Idempotent; run as root:   bash setup/host/podman-host.sh
#
# - /lib/modules must exist (kind bind-mounts it into every node)
# - podman: runtime runc (crun refuses cgroup v1 hybrid), default_ulimits within
#   the hard limits (podman's defaults exceed them: no CAP_SYS_RESOURCE here),
#   stop_timeout = 2 (nodes are disposable; `kind delete` otherwise waits ~15 s),
#   log_driver k8s-file (kind's "Reached target Multi-User System" log check)
#   -> a drop-in /etc/containers/containers.conf.d/50-kindslurm.conf
#      (podman >= 4.x reads containers.conf.d drop-ins), other settings untouched
# - inotify limits for several clusters at once
# - /dev/net/tun 0666 (rootless slirp4netns)
# Loads no kernel modules.
set -euo pipefail

log() { printf '[podman-host] %s\n' "$*"; }
[[ $(id -u) -eq 0 ]] || { echo "podman-host.sh: must run as root" >&2; exit 1; }

# 1. /lib/modules
if [[ ! -e /lib/modules ]]; then
  mkdir -p /lib/modules
  log "created /lib/modules"
fi

# 2. containers.conf drop-in
want_nofile=20000
want_nproc=32768
hard_nofile="$(ulimit -Hn)"
hard_nproc="$(ulimit -Hu)"
[[ "$hard_nofile" == unlimited ]] || (( want_nofile <= hard_nofile )) || want_nofile=$hard_nofile
[[ "$hard_nproc" == unlimited ]] || (( want_nproc <= hard_nproc )) || want_nproc=$hard_nproc

dropin_dir=/etc/containers/containers.conf.d
dropin="$dropin_dir/50-kindslurm.conf"
mkdir -p "$dropin_dir"
content="# Managed by kindslurm setup/host/podman-host.sh -- rootful kind on these hosts.
# default_ulimits are capped at the hard limits seen when this was written
# (nofile hard=$hard_nofile, nproc hard=$hard_nproc).
[containers]
default_ulimits = [
  \"nofile=${want_nofile}:${want_nofile}\",
  \"nproc=${want_nproc}:${want_nproc}\",
]
log_driver = \"k8s-file\"

[engine]
runtime = \"runc\"
stop_timeout = 2
"
if [[ ! -f "$dropin" ]] || [[ "$(cat "$dropin")" != "${content%$'\n'}" ]]; then
  printf '%s' "$content" > "$dropin.tmp"
  mv "$dropin.tmp" "$dropin"
  log "wrote $dropin"
fi
# A main /etc/containers/containers.conf that sets the same keys would be read
# before the drop-in (drop-ins win), so nothing there needs changing.

# 3. sysctls (runtime + persistent)
sysctl_file=/etc/sysctl.d/90-kindslurm.conf
sysctl_content="# Managed by kindslurm setup/host/podman-host.sh: several kind clusters per host
fs.inotify.max_user_watches = 524288
fs.inotify.max_user_instances = 512
"
if [[ ! -f "$sysctl_file" ]] || [[ "$(cat "$sysctl_file")" != "${sysctl_content%$'\n'}" ]]; then
  printf '%s' "$sysctl_content" > "$sysctl_file"
  log "wrote $sysctl_file"
fi
for kv in fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512; do
  key="${kv%%=*}" val="${kv#*=}"
  cur="$(sysctl -n "$key" 2>/dev/null || echo 0)"
  if (( cur < val )); then
    sysctl -q -w "$kv" && log "set $kv (was $cur)" || log "warning: could not set $kv"
  fi
done

# 4. /dev/net/tun for rootless slirp4netns
if [[ -c /dev/net/tun ]]; then
  mode="$(stat -c %a /dev/net/tun)"
  if [[ "$mode" != 666 ]]; then
    chmod 0666 /dev/net/tun && log "chmod 0666 /dev/net/tun (was $mode)"
  fi
fi

# 5. check podman picked the settings up
if command -v podman >/dev/null; then
  rt="$(podman info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null || echo '?')"
  [[ "$rt" == runc ]] || log "warning: podman reports OCI runtime '$rt', expected runc"
fi
log "ok"
