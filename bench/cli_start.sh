#!/usr/bin/env bash
# CLI start-up: `kindslurm --help` and `kindslurm ls` against `python -c pass`
# (the same interpreter), measured in the same hyperfine run. Target: at most 3x.
#   bash bench/cli_start.sh
set -euo pipefail
PY=${PYTHON:-$(python3 -c "import sys; print(sys.executable)")}
KS=${KINDSLURM:-"$PY -m kindslurm"}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
hyperfine -N --warmup 3 --runs "${RUNS:-30}" --export-json "$out" \
    -n baseline "$PY -c pass" -n help "$KS --help" -n ls "$KS ls" >/dev/null
python3 - "$out" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["baseline"]["mean"]
print(f"{'command':<10}{'mean ms':>10}{'stddev':>9}{'ratio':>8}  target")
for name in ("baseline", "help", "ls"):
    x = r[name]
    ratio = x["mean"] / base
    target = "" if name == "baseline" else ("<= 3.0x  " + ("ok" if ratio <= 3 else "MISSED"))
    print(f"{name:<10}{x['mean']*1000:>10.1f}{x['stddev']*1000:>9.1f}{ratio:>7.2f}x  {target}")
PY
