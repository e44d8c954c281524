#!/bin/bash
# Training on data in the shared submit directory (mounted at /app in every
# node). Run from the directory that holds workloads/, e.g. the repository:
#   kindslurm run workloads/pytorch/workload.sh --load-image /var/cache/kindslurm/images/python.tar
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
code=$(realpath --relative-to="$PWD" "$here")
case "$code" in ../*|/*) echo "run this from a directory that contains $here (it is mounted at /app)" >&2; exit 2 ;; esac
out="kindslurm-out/${KINDSLURM_RUN_ID:-manual}"
mkdir -p "$out"

# Synthetic regression data: y = sin(x0) + 0.5*x1^2 - x2 + noise
python3 - "$out/data.csv" <<'PY'
import random, math, sys
random.seed(1)
with open(sys.argv[1], "w") as f:
    f.write("x0,x1,x2,y\n")
    for _ in range(2000):
        x = [random.uniform(-2, 2) for _ in range(3)]
        y = math.sin(x[0]) + 0.5 * x[1] ** 2 - x[2] + random.gauss(0, 0.05)
        f.write(",".join(f"{v:.5f}" for v in x + [y]) + "\n")
PY

sed -e "s|@OUT@|/app/$out|g" -e "s|@CODE@|/app/$code|g" "$here/job.yaml" | kubectl apply -f -
kubectl wait --for=condition=complete --timeout=600s job/train
kubectl logs job/train | tail -3
python3 - "$out/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
assert m["final_loss"] < m["first_loss"], m
print(f"trained: loss {m['first_loss']:.3f} -> {m['final_loss']:.3f}; checkpoint in the submit directory")
PY
