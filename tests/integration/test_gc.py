"""`kindslurm gc`: removes what dead runs left, never a live run's cluster,
never another user's containers or a kind cluster made by hand.

The ownership and liveness tests use real podman containers carrying kind's
cluster label (what gc lists) with real Slurm jobs as owners; kindslurm's own
state records and creation markers (what gc decides ownership by) are written
the way a run writes them. The orphan test leaves a real cluster behind with
SIGKILL.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import KINDSLURM, REPO, Env, assert_no_leftovers, kind_containers, kind_volumes, sh, wait_job_gone

pytestmark = [pytest.mark.slurm]
BUSYBOX = "localhost/kindslurm/busybox:1"


def fake_node(cluster: str) -> str:
    """A container labelled like a kind node (gc lists clusters by these labels)."""
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


def state_dir(env: Env) -> Path:
    return Path(env.vars["XDG_STATE_HOME"]) / "kindslurm"


def own(env: Env, cluster: str | None, job_id: str | None = None, *, run_id: str | None = None,
        mode: str = "sbatch", phase: str = "running", **fields: object) -> dict:
    """The state record a run writes (submit side, then the node side's registration)."""
    run_id = run_id or f"r-{cluster or secrets.token_hex(3)}"
    runs = state_dir(env) / "runs"
    runs.mkdir(parents=True, exist_ok=True, mode=0o700)
    rec = {"run_id": run_id, "mode": mode, "user": "root", "job_dir": str(env.root / "jobs" / run_id), "job_id": job_id,
           "cluster": cluster, "phase": phase, "node": socket.gethostname(), "created": time.time(),
           "updated": time.time(), "phases": {},
           "kubeconfig": str(state_dir(env) / "kubeconfigs" / f"{cluster}.yaml") if cluster else None, **fields}
    (runs / f"{run_id}.json").write_text(json.dumps(rec))
    return rec


def markers_dir(env: Env) -> Path:
    """Where kindslurm puts this env's creation markers (root's are shared: /run/kindslurm)."""
    res = sh([sys.executable, "-c", "from kindslurm import paths; print(paths.markers_dir())"], env=env.vars)
    assert res.returncode == 0, res.stderr
    return Path(res.stdout.strip())


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.fixture
def fakes():
    made: list[str] = []
    yield made
    for c in made:
        sh(["podman", "rm", "-f", "-t", "0", f"{c}-control-plane"])
        for v in kind_volumes(c):
            sh(["podman", "volume", "rm", "-f", v])


@pytest.fixture
def markers(env: Env):
    """Write creation markers as a run does; every one is removed afterwards."""
    made: list[Path] = []
    where = markers_dir(env)

    def mark(cluster: str, **fields: object) -> Path:
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
        p = where / cluster
        p.write_text(json.dumps({"pid": dead_pid(), "start": "1", "time": time.time(), "nodes": 1, "booting": False,
                                 **fields}))
        made.append(p)
        return p

    yield mark
    for p in made:
        p.unlink(missing_ok=True)


def unique(base: str) -> str:
    return f"{base}-{secrets.token_hex(3)}"


def test_gc_ownership_and_liveness(env: Env, fakes: list[str]):
    env.vars["KINDSLURM_GC_GRACE"] = "0"
    done = sbatch("--wrap", "true", env=env)
    live = sbatch("--wrap", "sleep 300", env=env)
    wait_job_gone(done)
    user = "ks-root"
    orphan, alive, other, handmade = f"{user}-{done}", f"{user}-{live}", f"ks-bob-{done}", "handmade"
    own(env, orphan, done)
    own(env, alive, live)
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
        assert [r["cluster"] for r in env.records()] == [alive], "the orphan's record should go, the live one's stay"
        for kept in (alive, other, handmade):
            assert kind_containers(kept) and kind_volumes(kept), f"gc removed {kept}"

        again = env.ks("gc")
        assert again.returncode == 0 and "Nothing to collect" in again.stdout
    finally:
        sh(["scancel", live])


def test_gc_never_touches_a_hand_made_cluster_with_the_default_prefix(env: Env, fakes: list[str]):
    env.vars["KINDSLURM_GC_GRACE"] = "0"
    fake_node("ks-root-dev")
    fakes.append("ks-root-dev")
    res = env.ks("gc", "--older-than", "0s")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ks-root-dev" not in res.stdout
    assert kind_containers("ks-root-dev") and kind_volumes("ks-root-dev"), "gc removed a cluster made by hand"


def test_gc_job_mode_only_touches_that_job(env: Env, fakes: list[str]):
    env.vars["KINDSLURM_GC_GRACE"] = "0"
    a = sbatch("--wrap", "true", env=env)
    b = sbatch("--wrap", "true", env=env)
    wait_job_gone(a)
    wait_job_gone(b)
    for j in (a, b):
        own(env, f"ks-root-{j}", j)
        fake_node(f"ks-root-{j}")
        fakes.append(f"ks-root-{j}")
    res = env.ks("gc", "--job", a)
    assert res.returncode == 0, res.stderr
    assert kind_containers(f"ks-root-{a}") == [] and kind_containers(f"ks-root-{b}")
    assert [r["job_id"] for r in env.records()] == [b]


def test_gc_job_mode_finds_the_job_through_the_marker_alone(env: Env, fakes: list[str], markers, tmp_path: Path):
    """The Epilog's HOME is not the job's: the marker leads gc to the kubeconfig and the record."""
    env.vars["KINDSLURM_GC_GRACE"] = "0"
    job = sbatch("--wrap", "true", env=env)
    wait_job_gone(job)
    cluster = unique(f"ks-root-{job}")
    rec = own(env, cluster, job)
    kubeconfig = Path(rec["kubeconfig"])
    kubeconfig.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    kubeconfig.write_text("apiVersion: v1\n")
    marker = markers(cluster, job_id=job, run_id=rec["run_id"], kubeconfig=str(kubeconfig), state_dir=str(state_dir(env)))
    fake_node(cluster)
    fakes.append(cluster)
    (tmp_path / "epilog-home").mkdir()
    epilog = Env(tmp_path / "epilog-home")
    epilog.vars["XDG_RUNTIME_DIR"] = env.vars["XDG_RUNTIME_DIR"]  # same node, same markers
    epilog.vars["KINDSLURM_GC_GRACE"] = "0"
    res = epilog.ks("gc", "--job", job)
    assert res.returncode == 0, res.stdout + res.stderr
    assert kind_containers(cluster) == [] and kind_volumes(cluster) == []
    assert not kubeconfig.exists() and not marker.exists()
    assert env.records() == [], "the record the marker points to should go too"


def test_gc_keeps_a_live_local_run_on_another_node(env: Env):
    env.vars["KINDSLURM_GC_GRACE"] = "0"
    rec = own(env, unique("ks-root-lremote"), mode="local", node="some-other-node", pid=dead_pid(), pid_start="1")
    kubeconfig = Path(rec["kubeconfig"])
    kubeconfig.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    kubeconfig.write_text("apiVersion: v1\n")
    os.utime(kubeconfig, (time.time() - 3600,) * 2)
    res = env.ks("gc", "--older-than", "0s")
    assert res.returncode == 0, res.stdout + res.stderr
    assert [r["run_id"] for r in env.records()] == [rec["run_id"]], "gc judged another node's pid"
    assert kubeconfig.exists()


def test_gc_keeps_everything_with_a_job_when_squeue_fails(env: Env, fakes: list[str], tmp_path: Path):
    env.vars["KINDSLURM_GC_GRACE"] = "0"
    done, running = "990001", "990002"
    squeue = tmp_path / "squeue"
    squeue.write_text("#!/bin/sh\necho 'squeue: error: Unable to contact slurm controller (connect failure)' >&2\nexit 1\n")
    sacct = tmp_path / "sacct"  # accounting knows only the finished job
    sacct.write_text(f"#!/bin/sh\necho '{done}|COMPLETED|0:0|{done}'\n")
    for tool in (squeue, sacct):
        tool.chmod(0o755)
    config = tmp_path / "config.yaml"
    config.write_text(f"tools:\n  squeue: {squeue}\n  sacct: {sacct}\n")
    env.vars["KINDSLURM_CONFIG"] = str(config)
    clusters = [unique(f"ks-root-{done}"), unique(f"ks-root-{running}")]
    for c, job in zip(clusters, (done, running)):
        own(env, c, job)
        fake_node(c)
        fakes.append(c)
    res = env.ks("gc", "--older-than", "0s")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Slurm could not be asked" in res.stderr
    for c in clusters:
        assert kind_containers(c), f"gc removed {c} while squeue was down"
    assert len(env.records()) == 2


def test_cancel_picks_an_exact_match_and_refuses_an_ambiguous_prefix(env: Env):
    first = sbatch("--wrap", "sleep 300", env=env)
    second = sbatch("--wrap", "sleep 300", env=env)
    try:
        own(env, f"ks-root-{first}", first, run_id="20260101-000000-aaaaaa", created=1.0)
        own(env, f"ks-root-{second}", second, run_id="20260102-000000-bbbbbb", created=2.0)
        res = env.ks("cancel", "2026")
        assert res.returncode == 64, res.stdout + res.stderr
        assert "20260101-000000-aaaaaa" in res.stderr and "20260102-000000-bbbbbb" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
        states = sh(["squeue", "-h", "-j", f"{first},{second}", "-o", "%T"]).stdout.split()
        assert len(states) == 2 and set(states) <= {"RUNNING", "PENDING"}, "an ambiguous cancel cancelled something"

        res = env.ks("cancel", first)
        assert res.returncode == 0, res.stdout + res.stderr
        deadline = time.monotonic() + 60
        while (st := job_state(first)) in ("RUNNING", "PENDING", "COMPLETING") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert st.startswith("CANCELLED"), st
        assert job_state(second) in ("RUNNING", "PENDING")
    finally:
        sh(["scancel", first, second])


def job_state(job: str) -> str:
    return sh(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"]).stdout.strip()


def fake_tool(path: Path, calls: Path, *, exit_code: int = 1) -> Path:
    path.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {calls}\nexit {exit_code}\n")
    path.chmod(0o755)
    return path


def test_gc_job_mode_starts_no_podman_when_nothing_names_the_job(env: Env, tmp_path: Path):
    calls = tmp_path / "calls"
    podman, kind = fake_tool(tmp_path / "podman", calls), fake_tool(tmp_path / "kind", calls)
    config = tmp_path / "config.yaml"
    config.write_text(f"tools:\n  podman: {podman}\n  kind: {kind}\n")
    env.vars["KINDSLURM_CONFIG"] = str(config)
    own(env, "ks-root-5550001", "5550001", phase="completed")
    res = env.ks("gc", "--job", "5550002", "--quiet")
    assert res.returncode == 0 and res.stdout == "", res.stdout + res.stderr
    assert not calls.exists(), calls.read_text()
    res = env.ks("gc", "--job", "5550001", "--quiet")  # a record names this one: podman is asked
    assert calls.exists() and "ps" in calls.read_text()


def test_epilog_script_runs_gc_only_for_a_job_a_marker_names(tmp_path: Path):
    calls = tmp_path / "calls"
    ks = fake_tool(tmp_path / "kindslurm", calls, exit_code=0)
    job = str(7_000_000 + secrets.randbelow(1_000_000))
    epilog_env = {"PATH": os.environ["PATH"], "SLURM_JOB_ID": job, "SLURM_JOB_UID": "0", "SLURM_JOB_USER": "root",
                  "KINDSLURM_BIN": str(ks), "KINDSLURM_EPILOG_LOG": str(tmp_path / "epilog.log")}
    root_markers = Path("/run/kindslurm/creating")  # root's markers, whoever's HOME the Epilog has
    root_markers.mkdir(parents=True, exist_ok=True, mode=0o700)
    near_miss = root_markers / unique(f"ks-root-{job}0")
    exact = root_markers / unique(f"ks-root-{job}")
    try:
        near_miss.write_text(json.dumps({"pid": os.getpid(), "job_id": f"{job}0"}))
        res = sh(["sh", str(REPO / "setup/epilog.sh")], env=epilog_env)
        assert res.returncode == 0, res.stderr
        assert not calls.exists(), "the Epilog started kindslurm for a job nothing names"
        exact.write_text(json.dumps({"pid": os.getpid(), "start": None, "job_id": job, "nodes": 1}))
        res = sh(["sh", str(REPO / "setup/epilog.sh")], env=epilog_env)
        assert res.returncode == 0, res.stderr
        assert calls.read_text().split()[1:] == ["gc", "--job", job, "--quiet"]
    finally:
        near_miss.unlink(missing_ok=True)
        exact.unlink(missing_ok=True)


@pytest.mark.skipif(not Path("/run/user").is_dir() or Path("/run/user/65534").exists(),
                    reason="needs /run/user without a directory for nobody")
def test_epilog_script_for_another_user_looks_in_their_runtime_dir(tmp_path: Path):
    """The non-root branch, for real: markers under /run/user/UID, gc run as that user."""
    import shutil

    shared = Path(f"/tmp/ks-epilog-{secrets.token_hex(3)}")  # nobody must run the fake and write its calls
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    runtime = Path("/run/user/65534")
    try:
        calls = shared / "calls"
        ks = fake_tool(shared / "kindslurm", calls, exit_code=0)
        job = str(8_000_000 + secrets.randbelow(1_000_000))
        epilog_env = {"PATH": os.environ["PATH"], "SLURM_JOB_ID": job, "SLURM_JOB_UID": "65534", "SLURM_JOB_USER": "nobody",
                      "KINDSLURM_BIN": str(ks), "KINDSLURM_EPILOG_LOG": str(tmp_path / "epilog.log")}
        res = sh(["sh", str(REPO / "setup/epilog.sh")], env=epilog_env)
        assert res.returncode == 0 and not calls.exists(), "the Epilog started kindslurm for a job nothing names"
        creating = runtime / "kindslurm" / "creating"
        creating.mkdir(parents=True, mode=0o700)
        (creating / f"ks-nobody-{job}").write_text(json.dumps({"pid": 1, "job_id": job}))
        for d in (runtime, runtime / "kindslurm", creating):
            os.chown(d, 65534, 65534)
        res = sh(["sh", str(REPO / "setup/epilog.sh")], env=epilog_env)
        assert res.returncode == 0, res.stderr
        assert calls.read_text().split()[1:] == ["gc", "--job", job, "--quiet"], (tmp_path / "epilog.log").read_text()
        assert calls.stat().st_uid == 65534, "gc must run as the job's user"
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)


def test_gc_keeps_fresh_clusters_and_honours_older_than(env: Env, fakes: list[str]):
    done = sbatch("--wrap", "true", env=env)
    wait_job_gone(done)
    own(env, f"ks-root-{done}", done)
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
    own(env, f"ks-root-{done}", done)
    fake_node(f"ks-root-{done}")
    fakes.append(f"ks-root-{done}")
    procs = [subprocess.Popen([*KINDSLURM, "gc"], env=env.vars, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert sum(f"ks-root-{done}" in o for o, _ in outs) == 1, outs
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
