"""gc scaling: time `kindslurm gc` over 10, 100 and 1000 stale clusters and records.

Stale clusters are podman containers (created, not started) and volumes
labelled exactly as kind labels its nodes, owned by Slurm job ids that no
longer exist; each has a state record in a live phase and a kubeconfig. The
baseline, measured in the same run, is `kindslurm gc` with nothing to collect.
Target: 100 stale clusters in under 2 s.

    python3 bench/gc_scaling.py [--sizes 10,100,1000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

IMAGE = "localhost/kindslurm/busybox:1"


def run(argv: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def make_stale(n: int, env: dict[str, str], base_job: int) -> None:
    state = Path(env["XDG_STATE_HOME"]) / "kindslurm"
    (state / "runs").mkdir(parents=True, exist_ok=True, mode=0o700)
    (state / "kubeconfigs").mkdir(parents=True, exist_ok=True, mode=0o700)

    def one(i: int) -> None:
        job = str(base_job + i)
        name = f"ks-{os.environ.get('USER', 'root')}-{job}"
        vol = run(["podman", "volume", "create", "--label", f"{name}-control-plane=true"]).stdout.strip()
        run(["podman", "create", "--name", f"{name}-control-plane", "--label", f"io.x-k8s.kind.cluster={name}",
             "--label", "io.x-k8s.kind.role=control-plane", "-v", f"{vol}:/var", IMAGE, "true"])
        kube = state / "kubeconfigs" / f"{name}.yaml"
        kube.write_text("apiVersion: v1\nkind: Config\n")
        old = time.time() - 3600
        os.utime(kube, (old, old))
        rec = {"run_id": f"bench-{job}", "mode": "sbatch", "user": "root", "job_dir": "/nonexistent", "prefix": name.rsplit("-", 1)[0],
               "job_id": job, "cluster": name, "node": os.uname().nodename, "kubeconfig": str(kube), "phase": "running",
               "created": old, "updated": old, "phases": {}}
        (state / "runs" / f"bench-{job}.json").write_text(json.dumps(rec))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(n)))


def time_gc(env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    res = run([sys.executable, "-m", "kindslurm", "gc"], env=env)
    elapsed = time.perf_counter() - t
    if res.returncode != 0:
        raise SystemExit(f"gc failed: {res.stdout}{res.stderr}")
    return elapsed, res.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,100,1000")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if run(["podman", "image", "exists", IMAGE]).returncode:
        raise SystemExit(f"{IMAGE} missing: bash setup/images/build-test-images.sh")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_STATE_HOME": f"{tmp}/state", "XDG_RUNTIME_DIR": tmp, "KINDSLURM_GC_GRACE": "0"}
        base = min(time_gc(env)[0] for _ in range(3))
        for n in sizes:
            t = time.perf_counter()
            make_stale(n, env, 8_000_000 + n * 10)
            setup = time.perf_counter() - t
            elapsed, out = time_gc(env)
            removed = out.count(" removed")
            left = run(["podman", "ps", "-a", "-q", "--filter", "label=io.x-k8s.kind.cluster"]).stdout.split()
            rows.append((n, elapsed, removed, len(left), setup))
    print(f"baseline (nothing to collect): {base*1000:.0f} ms")
    print(f"{'stale':>6} {'gc s':>7} {'ms/cluster':>11} {'x baseline':>11} {'removed':>8} {'left':>5}  target")
    for n, elapsed, removed, left, _ in rows:
        target = ("< 2 s " + ("ok" if elapsed < 2 else "MISSED")) if n == 100 else ""
        print(f"{n:>6} {elapsed:>7.2f} {elapsed/n*1000:>11.1f} {elapsed/base:>10.1f}x {removed:>8} {left:>5}  {target}")


if __name__ == "__main__":
    main()
