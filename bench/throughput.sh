#!/usr/bin/env bash
# Throughput through the single-node Slurm: N short kindslurm jobs (each boots
# a cluster, runs `kubectl get nodes`, tears down) against N raw sbatch jobs of
# the same script without a cluster, both submitted at once; jobs per minute.
#   bash bench/throughput.sh [N_KINDSLURM] [N_RAW]
set -euo pipefail
N=${1:-8}
NRAW=${2:-100}
PY=${PYTHON:-$(python3 -c "import sys; print(sys.executable)")}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export XDG_STATE_HOME=$work/state XDG_DATA_HOME=$work/data XDG_CONFIG_HOME=$work/config
printf '#!/bin/bash\nkubectl get nodes >/dev/null 2>&1 || true\n' > "$work/w.sh"

wait_all() {  # job ids on stdin; returns when none is pending or running
    local ids; ids=$(paste -sd, -)
    while [ -n "$(squeue -h -j "$ids" -t PD,R,CG -o %i 2>/dev/null)" ]; do sleep 0.5; done
}

t0=$(date +%s.%N)
for _ in $(seq "$NRAW"); do sbatch --parsable -o /dev/null --wrap "bash $work/w.sh"; done > "$work/raw.ids"
wait_all < "$work/raw.ids"
t1=$(date +%s.%N)
for _ in $(seq "$N"); do $PY -m kindslurm run "$work/w.sh" --parsable; done > "$work/ks.ids"
wait_all < "$work/ks.ids"
t2=$(date +%s.%N)
ok=$($PY -m kindslurm ls -a --json | python3 -c "import json,sys; print(sum(r['exit_code']==0 for r in json.load(sys.stdin)))")
python3 - "$t0" "$t1" "$t2" "$N" "$NRAW" "$ok" <<'PY'
import sys
t0, t1, t2 = map(float, sys.argv[1:4]); n, nraw, ok = map(int, sys.argv[4:7])
raw, ks = nraw / (t1 - t0) * 60, n / (t2 - t1) * 60
print(f"raw sbatch : {nraw} jobs in {t1 - t0:6.1f} s = {raw:7.1f} jobs/min")
print(f"kindslurm  : {n} jobs in {t2 - t1:6.1f} s = {ks:7.1f} jobs/min ({ok}/{n} succeeded), {ks / raw:.3f}x raw")
PY
