"""Node-side overhead: the lifecycle's own time beyond kind's create and delete.

Runs `kindslurm run --local` (no Slurm in the way) on a tiny Job a few times
and splits each run's summary.json: kind create and kind delete are kind's;
the workload script and the wait for the manifest's Job are the workload's;
everything else (preflight, capacity check, config generation, waiting for
the API, apply, log and event collection, teardown bookkeeping) is kindslurm's.
The same-run baseline is kind itself: `kind create` + `kind delete` of an
identical cluster, timed directly. Target: overhead at most 2 s beyond kind.

    python3 bench/node_overhead.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JOB = """apiVersion: batch/v1
kind: Job
metadata: {name: tiny}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: tiny, image: localhost/kindslurm/busybox:1, imagePullPolicy: IfNotPresent, command: [echo, hi]}
"""
CONFIG = """kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking: {apiServerAddress: 127.0.0.1, apiServerPort: -1}
"""


def kindslurm_run(tmp: Path, env: dict[str, str]) -> dict:
    res = subprocess.run([sys.executable, "-m", "kindslurm", "run", "--local", "--manifest", str(tmp / "job.yaml"), str(tmp / "w.sh")],
                         env=env, capture_output=True, text=True, cwd=tmp)
    if res.returncode != 0:
        raise SystemExit(f"kindslurm run failed: {res.stdout}{res.stderr}")
    runs = sorted((Path(env["XDG_DATA_HOME"]) / "kindslurm" / "jobs").iterdir(), key=lambda p: p.stat().st_mtime)
    return json.loads((runs[-1] / "summary.json").read_text())


def kind_baseline(tmp: Path, image: str) -> tuple[float, float]:
    env = {**os.environ, "KIND_EXPERIMENTAL_PROVIDER": "podman"}
    name = f"bench-{os.getpid()}"
    t = time.perf_counter()
    subprocess.run(["kind", "create", "cluster", "--name", name, "--config", "-", "--image", image,
                    "--kubeconfig", str(tmp / "kubeconfig")], input=CONFIG, text=True, env=env, check=True, capture_output=True)
    create = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run(["kind", "delete", "cluster", "--name", name, "--kubeconfig", str(tmp / "kubeconfig")], env=env, check=True, capture_output=True)
    return create, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--image", default="localhost/kindslurm/node:v1.34.4")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "job.yaml").write_text(JOB)
        (tmp / "w.sh").write_text("#!/bin/bash\nkubectl wait --for=condition=complete job/tiny --timeout=120s >/dev/null\n")
        env = {**os.environ, "XDG_STATE_HOME": f"{d}/state", "XDG_DATA_HOME": f"{d}/data", "XDG_CONFIG_HOME": f"{d}/config"}
        rows, base = [], []
        for _ in range(args.runs):
            base.append(kind_baseline(tmp, args.image))
            s = kindslurm_run(tmp, env)
            t = s["timings"]
            kind_time = t["kind_create"] + t["kind_delete"]
            workload = t.get("workload", 0) + t.get("manifest_wait", 0)
            phases = {p["name"]: p["seconds"] for p in s["phases"]}
            rows.append((s["seconds"], kind_time, workload, s["seconds"] - kind_time - workload, phases))
    bc = statistics.mean(b[0] for b in base)
    bd = statistics.mean(b[1] for b in base)
    print(f"baseline kind alone: create {bc:.2f} s, delete {bd:.2f} s (mean of {len(base)})")
    print(f"{'run':>4} {'total s':>8} {'kind s':>7} {'workload s':>11} {'overhead s':>11}  per phase")
    for i, (total, kind_time, workload, overhead, phases) in enumerate(rows, 1):
        detail = " ".join(f"{k}={v:.2f}" for k, v in phases.items())
        print(f"{i:>4} {total:>8.2f} {kind_time:>7.2f} {workload:>11.2f} {overhead:>11.2f}  {detail}")
    mean_over = statistics.mean(r[3] for r in rows)
    mean_kind = statistics.mean(r[1] for r in rows)
    print(f"mean overhead {mean_over:.2f} s beyond kind (target <= 2 s: {'ok' if mean_over <= 2 else 'MISSED'}); "
          f"kind create+delete inside kindslurm {mean_kind:.2f} s vs {bc + bd:.2f} s alone ({mean_kind / (bc + bd):.2f}x)")


if __name__ == "__main__":
    main()
