#!/usr/bin/env bash
# Submission latency: `kindslurm run` (no --wait) against a raw `sbatch --wrap`
# of the same script on the same Slurm, in one hyperfine run. Every job is
# submitted held (--hold) and cancelled afterwards, so nothing boots.
# Target: at most 1.3x raw sbatch. A second baseline, a Python process that
# only runs the same sbatch, shows the floor for any launcher written in Python;
# a third imports this project's stack (click, PyYAML, jinja2) first.
#   bash bench/submit_latency.sh
set -euo pipefail
PY=${PYTHON:-$(python3 -c "import sys; print(sys.executable)")}
KS=${KINDSLURM:-"$PY -m kindslurm"}
work=$(mktemp -d)
export XDG_STATE_HOME=$work/state XDG_DATA_HOME=$work/data XDG_CONFIG_HOME=$work/config
cleanup() { scancel --name=kindslurm-bench >/dev/null 2>&1 || true; scancel --name=bench-raw >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
script=$work/w.sh
printf '#!/bin/bash\necho hello\n' > "$script"
hyperfine -N --warmup 2 --runs "${RUNS:-20}" --export-json "$work/out.json" \
    -n sbatch "sbatch --hold --job-name=bench-raw -o /dev/null --wrap 'bash $script'" \
    -n python+sbatch "$PY -c 'import subprocess; subprocess.run([\"sbatch\", \"--hold\", \"--job-name=bench-raw\", \"-o\", \"/dev/null\", \"--wrap\", \"bash $script\"], stdout=subprocess.DEVNULL)'" \
    -n stack+sbatch "$PY -c 'import click, yaml, jinja2, subprocess; subprocess.run([\"sbatch\", \"--hold\", \"--job-name=bench-raw\", \"-o\", \"/dev/null\", \"--wrap\", \"bash $script\"], stdout=subprocess.DEVNULL)'" \
    -n kindslurm "$KS run $script --name bench --sbatch-arg=--hold --sbatch-arg=--job-name=kindslurm-bench" >/dev/null
python3 - "$work/out.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["sbatch"]["mean"]
print(f"{'command':<14}{'mean ms':>10}{'stddev':>9}{'ratio':>8}  target")
for name in ("sbatch", "python+sbatch", "stack+sbatch", "kindslurm"):
    x = r[name]
    ratio = x["mean"] / base
    target = "<= 1.3x  " + ("ok" if ratio <= 1.3 else "MISSED") if name == "kindslurm" else ""
    print(f"{name:<14}{x['mean']*1000:>10.1f}{x['stddev']*1000:>9.1f}{ratio:>7.2f}x  {target}")
floor = r["stack+sbatch"]["mean"]
print(f"kindslurm's own cost beyond importing its libraries and running sbatch: {(r['kindslurm']['mean'] - floor)*1000:.1f} ms")
PY
