#!/usr/bin/env bash
# Why kindslurm's one tool runner (kindslurm/proc.py) is plain subprocess and
# not the `sh` package the design names: what importing each costs a start,
# against `python -c pass`, and `kindslurm --help` beside them for scale.
# Every command kindslurm runs pays this once per process (--help, ls, submit).
#   bash bench/tool_runner.sh
set -euo pipefail
PY=${PYTHON:-$(python3 -c "import sys; print(sys.executable)")}
"$PY" -c "import sh" 2>/dev/null || { echo "the sh package is not installed in $PY: pip install sh" >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
hyperfine -N --warmup 3 --runs "${RUNS:-30}" --export-json "$out" \
    -n baseline "$PY -c pass" -n subprocess "$PY -c 'import subprocess'" -n sh "$PY -c 'import sh'" \
    -n help "$PY -m kindslurm --help" >/dev/null
python3 - "$out" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["baseline"]["mean"]
print(f"{'command':<12}{'mean ms':>10}{'stddev':>9}{'ratio':>8}{'+ms':>8}")
for name in ("baseline", "subprocess", "sh", "help"):
    x = r[name]
    print(f"{name:<12}{x['mean']*1000:>10.1f}{x['stddev']*1000:>9.1f}{x['mean']/base:>7.2f}x{(x['mean']-base)*1000:>8.1f}")
print(f"importing sh instead of subprocess would add {(r['sh']['mean'] - r['subprocess']['mean'])*1000:.1f} ms "
      f"to every start ({(r['sh']['mean'] - r['subprocess']['mean']) / (r['help']['mean'] - base) * 100:.0f}% of what --help costs beyond the interpreter)")
PY
