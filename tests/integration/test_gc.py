"""`kindslurm gc`: removes what dead runs left, never a live run's cluster,
never another user's containers or a kind cluster made by hand.

The ownership and liveness tests use real podman containers carrying kind's
cluster label (what gc reads) with real Slurm jobs as owners; the orphan test
leaves a real cluster behind with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import KINDSLURM, REPO, Env, assert_no_leftovers, kind_containers, kind_volumes, sh, wait_job_gone

pytestmark = [pytest.mark.slurm]
BUSYBOX = "localhost/kindslurm/busybox:1"


def fake_node(cluster: str) -> str:
    """A container labelled like a kind node (gc decides by these labels)."""
    if sh(["podman", "image", "exists", BUSYBOX]).returncode:
        pytest.fail(f"{BUSYBOX} missing: bash setup/images/build-test-images.sh")
    vol = sh(["podman", "volume", "create", "--label", f"{cluster}-control-plane=true"])
    assert vol.returncode == 0, vol.stderr
    res = sh(["podman", "run", "-d", "--name", f"{cluster}-control-plane", "-v", f"{vol.stdout.strip()}:/var",
              "--label", f"io.x-k8s.kind.cluster={cluster}", "--label", "io.x-k8s.kind.role=control-plane",
              BUSYBOX, "sleep", "600"])
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def sbatch(*argv: str, env: Env) -> str:
    res = sh(["sbatch", "--parsable", "-o", "/dev/null", *argv], env=env.vars)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().split(";")[0]


@pytest.fixture
def fakes():
    made: list[str] = []
    yield made
    for c in made:
        sh(["podman", "rm", "-f", "-t", "0", f"{c}-control-plane"])
        for v in kind_volumes(c):
            sh(["podman", "volume", "rm", "-f", v])


def test_gc_ownership_and_liveness(env: Env, fakes: list[str]):
    env.vars["KINDSLURM_GC_GRACE"] = "0"
    done = sbatch("--wrap", "true", env=env)
    live = sbatch("--wrap", "sleep 300", env=env)
    wait_job_gone(done)
    user = "ks-root"
    orphan, alive, other, handmade = f"{user}-{done}", f"{user}-{live}", f"ks-bob-{done}", "handmade"
    for c in (orphan, alive, other, handmade):
        fake_node(c)
        fakes.append(c)
    try:
        dry = env.ks("gc", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert orphan in dry.stdout and "would remove" in dry.stdout
        assert f"job {done} COMPLETED" in dry.stdout
        for kept in (alive, other, handmade):
            assert kept not in dry.stdout
        assert kind_containers(orphan), "dry run removed something"

        res = env.ks("gc")
        assert res.returncode == 0, res.stdout + res.stderr
        assert orphan in res.stdout and "removed" in res.stdout
        assert kind_containers(orphan) == [] and kind_volumes(orphan) == []
        for kept in (alive, other, handmade):
            assert kind_containers(kept) and kind_volumes(kept), f"gc removed {kept}"

        again = env.ks("gc")
        assert again.returncode == 0 and "Nothing to collect" in again.stdout
    finally:
        sh(["scancel", live])


def test_gc_job_mode_only_touches_that_job(env: Env, fakes: list[str]):
    env.vars["KINDSLURM_GC_GRACE"] = "0"
    a = sbatch("--wrap", "true", env=env)
    b = sbatch("--wrap", "true", env=env)
    wait_job_gone(a)
    wait_job_gone(b)
    for j in (a, b):
        fake_node(f"ks-root-{j}")
        fakes.append(f"ks-root-{j}")
    res = env.ks("gc", "--job", a)
    assert res.returncode == 0, res.stderr
    assert kind_containers(f"ks-root-{a}") == [] and kind_containers(f"ks-root-{b}")


def test_gc_keeps_fresh_clusters_and_honours_older_than(env: Env, fakes: list[str]):
    done = sbatch("--wrap", "true", env=env)
    wait_job_gone(done)
    fake_node(f"ks-root-{done}")
    fakes.append(f"ks-root-{done}")
    res = env.ks("gc")  # default grace: created moments ago, may be mid-creation
    assert res.returncode == 0 and kind_containers(f"ks-root-{done}")
    env.vars["KINDSLURM_GC_GRACE"] = "0"
    res = env.ks("gc", "--older-than", "1h")
    assert res.returncode == 0 and kind_containers(f"ks-root-{done}")
    res = env.ks("gc", "--older-than", "0s")
    assert res.returncode == 0 and kind_containers(f"ks-root-{done}") == []


def test_concurrent_gc_runs_agree(env: Env, fakes: list[str]):
    env.vars["KINDSLURM_GC_GRACE"] = "0"
    done = sbatch("--wrap", "true", env=env)
    wait_job_gone(done)
    fake_node(f"ks-root-{done}")
    fakes.append(f"ks-root-{done}")
    procs = [subprocess.Popen([*KINDSLURM, "gc"], env=env.vars, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert sum("removed" in o for o, _ in outs) == 1, outs
    assert kind_containers(f"ks-root-{done}") == []


@pytest.mark.cluster
@pytest.mark.usefixtures("cluster_host")
def test_gc_removes_the_orphan_of_a_sigkilled_run_and_spares_a_live_one(env: Env, tmp_path: Path):
    env.vars["KINDSLURM_GC_GRACE"] = "0"
    script = tmp_path / "sleep.sh"
    script.write_text("#!/bin/bash\nexec sleep 600\n")
    live = env.ks("run", str(script), "--parsable")
    assert live.returncode == 0, live.stderr
    live_job = live.stdout.strip()
    victim = subprocess.Popen([*KINDSLURM, "run", "--local", str(script)], env=env.vars, cwd=str(REPO),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rec = env.wait_phase(str(victim.pid), ("running",)) if False else None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            recs = [r for r in env.records() if r["mode"] == "local" and r.get("phase") == "running"]
            if recs:
                rec = recs[0]
                break
            time.sleep(0.5)
        assert rec, env.records()
        live_rec = env.wait_phase(live_job, ("running",))
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        assert kind_containers(rec["cluster"]), "the killed run's cluster should still be there"

        res = env.ks("gc")
        assert res.returncode == 0, res.stdout + res.stderr
        assert rec["cluster"] in res.stdout and "pid" in res.stdout
        assert kind_containers(rec["cluster"]) == []
        assert not Path(rec["kubeconfig"]).exists()
        assert all(r["run_id"] != rec["run_id"] for r in env.records()), "orphan record kept"
        assert kind_containers(live_rec["cluster"]), "gc touched a live job's cluster"
        assert Path(live_rec["kubeconfig"]).exists()
    finally:
        if victim.poll() is None:
            victim.kill()
        sh(["scancel", live_job])
    wait_job_gone(live_job)
    assert_no_leftovers(env, env.record(live_job)["cluster"])


def test_finished_runs_stay_in_history_until_gc_all(env: Env, tmp_path: Path):
    job_dir = tmp_path / "jobdir"
    job_dir.mkdir()
    (job_dir / "summary.json").write_text("{}")
    runs = Path(env.vars["XDG_STATE_HOME"]) / "kindslurm" / "runs"
    runs.mkdir(parents=True, mode=0o700)
    rec = {"run_id": "r-old", "mode": "sbatch", "user": "root", "job_dir": str(job_dir), "job_id": "1",
           "cluster": "ks-root-1", "phase": "completed", "exit_code": 0, "created": 0, "updated": 0, "phases": {}}
    (runs / "r-old.json").write_text(json.dumps(rec))
    assert env.ks("gc").returncode == 0
    assert [r["run_id"] for r in env.records()] == ["r-old"]
    assert "r-old" in env.ks("ls", "-a").stdout
    res = env.ks("gc", "--all")
    assert res.returncode == 0 and "r-old" in res.stdout
    assert env.records() == [] and (job_dir / "summary.json").exists()
