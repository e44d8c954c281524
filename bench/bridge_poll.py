#!/usr/bin/env python3
"""What one poll of `kindslurm bridge` costs at 10, 100 and 500 pods, and the bridge's memory,
against one-call-per-pod polling (what interLink's Slurm plugin does) measured in the same run.

A real outer control plane (tests/bridge/controlplane.py) holds N pods bound to a virtual node, each
noted with its own Slurm job: held jobs (`sbatch --hold --wrap 'sleep 600'`), so no cluster boots
and the machine stays idle. A child process runs the bridge's controller over them and reports:
the first poll (which writes every pod's status once), the steady poll (median of 5: one squeue for
every job, the run files, no API writes when nothing changed) and its resident memory. The baseline
asks squeue about each job in turn, as per-pod polling does.

    /opt/kindslurm/bin/python bench/bridge_poll.py [--sizes 10,100,500]   (as root: it submits Slurm jobs)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))



def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(kubeconfig: str, node: str) -> None:
    """The bridge's controller over every pod of the bench node, as `kindslurm bridge` runs it."""
    from kindslurm import api, config, naming
    from kindslurm.bridge import config as bridge_config
    from kindslurm.bridge.controller import Controller, NodeCtx
    from kindslurm.bridge.lease import Lease, identity
    from kindslurm.bridge.nodes import NodeView
    from kindslurm.bridge.outer import Outer
    from kindslurm.bridge.runs import Runs
    from kindslurm.scheduler import sinfo

    cfg = config.load()
    bcfg = bridge_config.load({})
    outer = Outer(kubeconfig)
    parts = sinfo.partitions(api.get_transport())
    lease = Lease(outer, node, identity(), 40)
    assert lease.renew()
    nodes = {node: NodeCtx(NodeView(node, "debug", "127.0.0.1", 10250, 1000), lease, parts["debug"])}
    scheduler = api.get_scheduler(cfg)
    controller = Controller(outer, Runs(scheduler, naming.current_user()), scheduler, nodes, bcfg, "01:00:00")
    base = rss_mb()
    pods, _ = outer.pods(node)
    controller.synced(node, pods)
    del pods
    t = time.perf_counter()
    controller.poll()
    first = time.perf_counter() - t
    steady = []
    for _ in range(5):
        t = time.perf_counter()
        controller.poll()
        steady.append(time.perf_counter() - t)
    gc.collect()
    lease.release()
    print(json.dumps({"pods": len(controller.pods), "first_ms": first * 1000,
                      "poll_ms": statistics.median(steady) * 1000, "rss_mb": rss_mb(), "rss_base_mb": base}))


def sh(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if res.returncode:
        raise SystemExit(f"{' '.join(argv[:4])} exited {res.returncode}: {res.stderr[-3000:]}")
    return res


def per_pod_poll(ids: list[str]) -> float:
    """One squeue per pod, as a plugin polling each pod's job does."""
    t = time.perf_counter()
    for job in ids:
        sh(["squeue", "-h", "-j", job, "-o", "%i|%T|%r"])
    return (time.perf_counter() - t) * 1000


def run_size(cp: object, n: int) -> dict[str, float]:
    from tests.bridge.controlplane import ControlPlane

    assert isinstance(cp, ControlPlane)
    node = f"kindslurm-bench-{n}"
    ids = [sh(["sbatch", "--parsable", "--hold", "--job-name=ks-bench", "-o", "/dev/null", "--wrap", "sleep 600"])
           .stdout.strip().split(";")[0] for _ in range(n)]
    try:
        items = [{"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": f"bench-{i}", "namespace": "default",
                               "annotations": {"kindslurm.io/job-id": job}},
                  "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox"}]}}
                 for i, job in enumerate(ids)]
        cp.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
                   timeout=300)
        out = sh([sys.executable, __file__, "--child", str(cp.admin), node], env={**os.environ, "PYTHONPATH": str(REPO)},
                 timeout=900)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["per_pod_ms"] = per_pod_poll(ids)
        return result
    finally:
        sh(["scancel", *ids])
        cp.kubectl("delete", "pods", "--all", "--force", "--grace-period=0", "--wait=false", timeout=300)
        deadline = time.monotonic() + 120
        while cp.kubectl("get", "pods", "-o", "name").stdout.strip() and time.monotonic() < deadline:
            time.sleep(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,500")
    ap.add_argument("--child", nargs=2, metavar=("KUBECONFIG", "NODE"))
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    from tests.bridge.controlplane import ControlPlane

    cp = ControlPlane.start()
    try:
        print(f"{'pods':>5} {'bridge poll':>12} {'per-pod poll':>13} {'ratio':>7} {'first poll':>11} {'bridge RSS':>11}")
        for n in (int(x) for x in args.sizes.split(",")):
            r = run_size(cp, n)
            assert r["pods"] == n, r
            print(f"{n:>5} {r['poll_ms']:>10.1f}ms {r['per_pod_ms']:>11.1f}ms {r['per_pod_ms'] / r['poll_ms']:>6.1f}x "
                  f"{r['first_ms']:>9.0f}ms {r['rss_mb']:>8.1f} MB  (idle {r['rss_base_mb']:.1f} MB)", flush=True)
    finally:
        cp.stop()


if __name__ == "__main__":
    main()
