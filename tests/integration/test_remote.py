"""Remote mode end to end: a "laptop" (this host with its own XDG
directories) drives a "login node" (Debian's OpenSSH on loopback in front
of the real local Slurm, with the login user's own directories) with
`kindslurm --host`: a real cluster runs the workload while every SSH
connection is cut twice, and the job directory comes back whole."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .conftest import KINDSLURM, REPO, Env, assert_no_leftovers, sh, wait_job_gone
from .sshd import SSHServer

pytestmark = [pytest.mark.cluster, pytest.mark.slurm, pytest.mark.usefixtures("cluster_host")]

TICKS = 40
WORKLOAD = f"""#!/bin/bash
set -eu
kubectl get nodes >/dev/null
for i in $(seq 1 {TICKS}); do echo "tick $i"; sleep 0.25; done
echo "made on $KINDSLURM_CLUSTER" > result.txt
echo "workload done"
"""


@pytest.fixture(scope="module")
def login(tmp_path_factory: pytest.TempPathFactory):
    env = Env(tmp_path_factory.mktemp("login"))
    xdg = {k: env.vars[k] for k in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR")}
    server = SSHServer(xdg)
    yield server, env
    server.stop()


@pytest.fixture
def laptop(login: tuple[SSHServer, Env], env: Env) -> Env:
    login[0].laptop_config(Path(env.vars["XDG_CONFIG_HOME"]) / "kindslurm" / "config.yaml")
    return env


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def wait_for(what: str, check, timeout: float = 300) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_bad_input_is_refused_here_and_nothing_reaches_the_login_node(laptop: Env, login, tmp_path: Path):
    _, login_env = login
    res = laptop.ks("run", str(tmp_path / "missing.sh"))
    assert res.returncode == 64 and "workload script" in res.stderr and "does not exist" in res.stderr, res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Job\n")
    script = tmp_path / "w.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    res = laptop.ks("run", str(script), "--manifest", str(bad))
    assert res.returncode == 64 and "lacks apiVersion or kind" in res.stderr, res.stderr
    res = laptop.ks("run", str(script), "--partition", "nosuchpartition")  # checked by the login node's kindslurm
    assert res.returncode == 64 and "unknown partition 'nosuchpartition'" in res.stderr, res.stderr
    assert login_env.records() == []
    jobs = Path(login_env.vars["XDG_DATA_HOME"]) / "kindslurm" / "jobs"
    assert not jobs.exists() or list(jobs.iterdir()) == [], "an upload was left on the login node"


def test_run_wait_from_a_laptop_survives_drops_and_brings_the_job_directory_back(laptop: Env, login, tmp_path: Path):
    sshd, login_env = login
    script = tmp_path / "ticks.sh"
    script.write_text(WORKLOAD)
    script.chmod(0o755)
    run = subprocess.Popen([*KINDSLURM, "run", str(script), "--time", "10", "--wait"], env=laptop.vars, cwd=str(REPO),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(run.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    follow = None
    try:
        wait_for("the submission", lambda: any(line.startswith("Submitted job ") for line in out), 120)
        m = re.match(r"Submitted job (\d+) on \S+ \(run (\S+), cluster (\S+)\)", out[0])
        assert m, out
        job_id, run_id, cluster = m.groups()
        follow = subprocess.Popen([*KINDSLURM, "logs", run_id, "-f"], env=laptop.vars, cwd=str(REPO),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        rec = login_env.record(run_id)
        workload_log = Path(rec["job_dir"]) / "workload.log"
        drops = []
        for tick in (5, 20):
            wait_for(f"tick {tick}", lambda: workload_log.exists() and f"tick {tick}\n" in workload_log.read_text())
            drops.append(sshd.drop())
        code = run.wait(timeout=400)
        followed, follow_err = follow.communicate(timeout=120)
        reader.join(timeout=10)
    finally:
        for p in (run, follow):
            if p is not None and p.poll() is None:
                p.kill()
        for r in login_env.records():  # after a failure no job may run on to its time limit
            if r.get("job_id") and r["phase"] not in ("completed", "failed", "cancelled", "timeout"):
                sh(["scancel", r["job_id"]])
    assert code == 0, "".join(out) + run.stderr.read()
    assert all(drops), "no SSH connection was open to cut"
    remote_log = workload_log.read_text()
    assert followed == remote_log, follow_err  # every line exactly once, across both drops
    assert [f"tick {i}" for i in range(1, TICKS + 1)] == [line for line in followed.splitlines() if line.startswith("tick")]
    assert "workload done" in "".join(out)  # --wait streamed the job output too
    assert len([r for r in login_env.records()]) == 1, "more than one run on the login node"
    tags = sh(["squeue", "-h", "-t", "all", "-o", "%k"]).stdout.split()
    assert tags.count(f"kindslurm-run:{run_id}") == 1, "the job was submitted more than once"
    wait_job_gone(job_id)
    local = Path(laptop.vars["XDG_DATA_HOME"]) / "kindslurm" / "jobs" / run_id
    remote = Path(rec["job_dir"])
    assert tree(local) == tree(remote)
    assert (local / "work" / "result.txt").read_text() == f"made on {cluster}\n"
    assert {"summary.json", "slurm.out", "workload.log", "exitcode", "upload/ticks.sh"} <= set(tree(local))
    listed = laptop.ks("ls", "-a")
    assert listed.returncode == 0 and run_id in listed.stdout and "completed" in listed.stdout, listed.stderr
    assert_no_leftovers(login_env, cluster)
