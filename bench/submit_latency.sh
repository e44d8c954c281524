#!/usr/bin/env bash
# Submission latency: `kindslurm run` (no --wait) against a raw `sbatch --wrap`
# of the same script on the same Slurm, in one hyperfine run. Every job is
# submitted held (--hold) and cancelled afterwards, so nothing boots.
# Target: at most 1.3x raw sbatch.
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
    -n kindslurm "$KS run $script --name bench --sbatch-arg=--hold --sbatch-arg=--job-name=kindslurm-bench" >/dev/null
python3 - "$work/out.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["sbatch"]["mean"]
print(f"{'command':<10}{'mean ms':>10}{'stddev':>9}{'ratio':>8}  target")
for name in ("sbatch", "kindslurm"):
    x = r[name]
    ratio = x["mean"] / base
    target = "" if name == "sbatch" else ("<= 1.3x  " + ("ok" if ratio <= 1.3 else "MISSED"))
    print(f"{name:<10}{x['mean']*1000:>10.1f}{x['stddev']*1000:>9.1f}{ratio:>7.2f}x  {target}")
PY
