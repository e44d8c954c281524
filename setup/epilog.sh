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

# Every place kindslurm may keep this user's markers (paths.runtime_dir()).
dirs="/run/user/$uid/kindslurm/creating /tmp/kindslurm-$uid/creating"
[ "$uid" = 0 ] && dirs="/run/kindslurm/creating $dirs"
pattern="\"job_id\"[[:space:]]*:[[:space:]]*\"?$SLURM_JOB_ID\"?[[:space:]]*[,}]"
named=
for d in $dirs; do
    [ -d "$d" ] || continue
    if grep -Eqs -e "$pattern" -- "$d"/* 2>/dev/null; then
        named=yes
        break
    fi
done
[ -n "$named" ] || exit 0

if [ "$uid" = 0 ]; then
    [ -d /run/user/0 ] && export XDG_RUNTIME_DIR=/run/user/0
    timeout 120 "$KS" gc --job "$SLURM_JOB_ID" --quiet >>"$LOG" 2>&1
else
    home=$(getent passwd "$SLURM_JOB_USER" | cut -d: -f6)
    timeout 120 runuser -u "$SLURM_JOB_USER" -- env HOME="$home" \
        XDG_RUNTIME_DIR="/run/user/$uid" "$KS" gc --job "$SLURM_JOB_ID" --quiet >>"$LOG" 2>&1
fi
exit 0
