#!/bin/sh
# Slurm Epilog: remove whatever a kindslurm job left on this node (after a
# SIGKILL, say). Install as root:
#   install -m 0755 setup/epilog.sh /etc/slurm/kindslurm-epilog.sh
#   and in slurm.conf: Epilog=/etc/slurm/kindslurm-epilog.sh
# It must always exit 0: a failing Epilog drains the node.
[ -n "${SLURM_JOB_ID:-}" ] || exit 0
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
KS=${KINDSLURM_BIN:-/usr/local/bin/kindslurm}
[ -x "$KS" ] || exit 0
LOG=${KINDSLURM_EPILOG_LOG:-/var/log/slurm/kindslurm-epilog.log}
if [ "${SLURM_JOB_UID:-0}" = 0 ]; then
    [ -d /run/user/0 ] && export XDG_RUNTIME_DIR=/run/user/0
    timeout 120 "$KS" gc --job "$SLURM_JOB_ID" --quiet >>"$LOG" 2>&1
else
    home=$(getent passwd "$SLURM_JOB_USER" | cut -d: -f6)
    timeout 120 runuser -u "$SLURM_JOB_USER" -- env HOME="$home" \
        XDG_RUNTIME_DIR="/run/user/$SLURM_JOB_UID" "$KS" gc --job "$SLURM_JOB_ID" --quiet >>"$LOG" 2>&1
fi
exit 0
