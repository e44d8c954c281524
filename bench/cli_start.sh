#!/usr/bin/env bash
# CLI start-up: `kindslurm --help` and `kindslurm ls` against `python -c pass`
# (the same interpreter), measured in the same hyperfine run. Target: at most 3x.
# A second baseline, the same interpreter importing click and nothing else,
# shows the floor for any CLI built on click.
#   bash bench/cli_start.sh
set -euo pipefail
PY=${PYTHON:-$(python3 -c "import sys; print(sys.executable)")}
KS=${KINDSLURM:-"$PY -m kindslurm"}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
hyperfine -N --warmup 3 --runs "${RUNS:-30}" --export-json "$out" \
    -n baseline "$PY -c pass" -n import-click "$PY -c 'import click'" -n help "$KS --help" -n ls "$KS ls" >/dev/null
python3 - "$out" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["baseline"]["mean"]
print(f"{'command':<14}{'mean ms':>10}{'stddev':>9}{'ratio':>8}  target")
for name in ("baseline", "import-click", "help", "ls"):
    x = r[name]
    ratio = x["mean"] / base
    target = "" if name in ("baseline", "import-click") else ("<= 3.0x  " + ("ok" if ratio <= 3 else "MISSED"))
    print(f"{name:<14}{x['mean']*1000:>10.1f}{x['stddev']*1000:>9.1f}{ratio:>7.2f}x  {target}")
floor = r["import-click"]["mean"]
print(f"kindslurm's own cost beyond importing click: --help {(r['help']['mean'] - floor)*1000:.1f} ms, "
      f"ls {(r['ls']['mean'] - floor)*1000:.1f} ms")
PY
