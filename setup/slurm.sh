#!/usr/bin/env bash
# A throwaway single-node Slurm cluster from Debian's packages, for trying
# kindslurm and for its tests. Idempotent.
#
#   setup/slurm.sh start    install (if needed), configure and start munged, slurmctld, slurmd
#   setup/slurm.sh stop     stop the daemons (config and packages stay)
#   setup/slurm.sh status   show the daemons and the node
#
# The node advertises KINDSLURM_SLURM_CPUS CPUs (default 16, more than the
# machine has) so that many small kindslurm jobs can run side by side.
set -euo pipefail

CPUS=${KINDSLURM_SLURM_CPUS:-16}
CONF=/etc/slurm/slurm.conf
EPILOG=/etc/slurm/kindslurm-epilog.sh
NODE=$(hostname -s)

die() { echo "setup/slurm.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts system daemons)"

install_packages() {
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
    fi
}

write_config() {
    local mem
    mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
    local new
    new=$(cat <<CONF
# Written by kindslurm's setup/slurm.sh: a single-node test cluster.
ClusterName=kindslurm
SlurmctldHost=$NODE
AuthType=auth/munge
SlurmUser=root
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/cgroup
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
KillWait=30
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
Epilog=$EPILOG
NodeName=$NODE CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
)
    if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$new" ]; then
        printf '%s\n' "$new" > "$CONF"
        CHANGED=1
    fi
    # proctrack/cgroup, as on production clusters: every process of a job dies
    # with it, even one that left its session (kind's containers are podman's
    # and live elsewhere: kindslurm removes those itself).
    local plugin=cgroup/v1
    [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && plugin=cgroup/v2
    printf 'CgroupPlugin=%s\nCgroupAutomount=yes\nConstrainCores=no\nConstrainRAMSpace=no\n' "$plugin" > /etc/slurm/cgroup.conf
    if [ ! -f "$EPILOG" ]; then
        # Replaced by `kindslurm gc --job` once kindslurm is installed (see README).
        printf '#!/bin/sh\nexit 0\n' > "$EPILOG"
        chmod 0755 "$EPILOG"
    fi
}

start_munge() {
    if pgrep -x munged >/dev/null; then return; fi
    [ -s /etc/munge/munge.key ] || { mungekey --create --force 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; }
    chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged
}

wait_idle() {
    for _ in $(seq 1 60); do
        st=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
        case "$st" in
            idle*|mixed*|allocated*) return 0 ;;
            down*|drain*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    die "node $NODE did not become idle (state: ${st:-unknown}); see /var/log/slurm/"
}

start() {
    install_packages
    CHANGED=0
    write_config
    [ "$CHANGED" = 1 ] && pgrep -x 'slurmd|slurmctld' >/dev/null && stop_slurm
    start_munge
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    wait_idle
    scontrol reconfigure >/dev/null 2>&1 || true
    echo "Slurm is up: $(sinfo -h -o '%P %D %T %c CPUs')"
}

stop_slurm() {
    for d in slurmd slurmctld; do pkill -x "$d" 2>/dev/null || true; done
    for _ in $(seq 1 20); do pgrep -x 'slurmd|slurmctld' >/dev/null || break; sleep 0.5; done
}

stop() {
    stop_slurm
    pkill -x munged 2>/dev/null || true
    echo "Slurm stopped"
}

status() {
    for d in munged slurmctld slurmd; do
        printf '%-10s %s\n' "$d" "$(pgrep -x "$d" >/dev/null && echo running || echo stopped)"
    done
    sinfo 2>/dev/null || true
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: setup/slurm.sh start|stop|status" ;;
esac
