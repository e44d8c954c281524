#!/bin/sh
# Slurm Epilog: remove whatever a kindslurm job left on this node (after a
# SIGKILL, say). Install as root:
#   install -m 0755 setup/epilog.sh /etc/slurm/kindslurm-epilog.sh
#   and in slurm.conf: Epilog=/etc/slurm/kindslurm-epilog.sh
# It must always exit 0: a failing Epilog drains the node.
#
# Most jobs never used kindslurm: unless one of the job user's creation markers
# on this node names the job, neither Python nor podman is started. A run writes
# its marker before `kind create` and removes it only once its cluster is gone,
# so a job with no marker here left no cluster here (a stray record is removed
# by the user's next `kindslurm gc`).
[ -n "${SLURM_JOB_ID:-}" ] || exit 0
case $SLURM_JOB_ID in *[!0-9]*) exit 0 ;; esac
uid=${SLURM_JOB_UID:-0}
case $uid in '' | *[!0-9]*) exit 0 ;; esac
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
KS=${KINDSLURM_BIN:-/usr/local/bin/kindslurm}
[ -x "$KS" ] || exit 0
LOG=${KINDSLURM_EPILOG_LOG:-/var/log/slurm/kindslurm-epilog.log}

# Where this user's markers are (kindslurm.paths.runtime_dir): root's always in
# /run/kindslurm; anyone else's under XDG_RUNTIME_DIR, else in the default state
# directory, one per host. A directory we cannot read (a root-squashed home)
# cannot tell us anything: then gc runs.
home=
if [ "$uid" = 0 ]; then
    dirs=/run/kindslurm/creating
else
    home=$(getent passwd "$SLURM_JOB_USER" | cut -d: -f6)
    dirs="/run/user/$uid/kindslurm/creating"
    [ -n "$home" ] && dirs="$dirs $home/.local/state/kindslurm/run/$(uname -n)/creating"
fi
pattern="\"job_id\"[[:space:]]*:[[:space:]]*\"?$SLURM_JOB_ID\"?[[:space:]]*[,}]"
named=
for d in $dirs; do
    if [ -d "$d" ]; then
        if [ ! -r "$d" ] || [ ! -x "$d" ]; then
            named=unsure
        elif grep -Eqs -e "$pattern" -- "$d"/* 2>/dev/null; then
            named=yes
        fi
    else
        up=${d%/*}
        while [ -n "$up" ] && [ ! -e "$up" ]; do up=${up%/*}; done
        if [ -n "$up" ] && { [ ! -r "$up" ] || [ ! -x "$up" ]; }; then
            named=unsure
        fi
    fi
    [ -n "$named" ] && break
done
[ -n "$named" ] || exit 0

if [ "$uid" = 0 ]; then
    timeout 120 "$KS" gc --job "$SLURM_JOB_ID" --quiet >>"$LOG" 2>&1
else
    timeout 120 runuser -u "$SLURM_JOB_USER" -- env HOME="$home" \
        XDG_RUNTIME_DIR="/run/user/$uid" "$KS" gc --job "$SLURM_JOB_ID" --quiet >>"$LOG" 2>&1
fi
exit 0
