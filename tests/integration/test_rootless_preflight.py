"""A non-root user on these cgroup v1 machines: rootless kind is impossible,
and both `doctor` and the node side must say exactly why before booting."""

from __future__ import annotations

import json
import os
import pwd
import shutil
from pathlib import Path

import pytest

from .conftest import REPO, kind_containers, sh, wait_job_gone

USER = "kstest"
VENV_PY = Path(os.environ.get("KINDSLURM_VENV", "/opt/kindslurm")) / "bin" / "python"
REASON = "rootless kind needs cgroup v2 with delegated controllers, but this node runs cgroup v1"


@pytest.fixture
def user_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if os.geteuid() != 0:
        pytest.fail("these tests switch to the test user and need root")
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        pytest.fail(f"test user {USER} missing: bash setup/install.sh --tests creates it")
    if not VENV_PY.exists():
        pytest.fail(f"{VENV_PY} missing: bash setup/install.sh creates the shared venv")
    root = Path(f"/tmp/kindslurm-rootless-{os.getpid()}-{len(os.listdir('/tmp'))}")
    root.mkdir(mode=0o755)
    # a copy of this checkout's package the test user can read (the checkout may sit under /root)
    shutil.copytree(REPO / "kindslurm", root / "src" / "kindslurm")
    shutil.copytree(REPO / "batch_templates", root / "src" / "batch_templates")
    (root / "home").mkdir()
    script = root / "w.sh"
    script.write_text("#!/bin/bash\necho should-not-run\n")
    sh(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", str(root)])
    sh(["chmod", "-R", "a+rX", str(root)])
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(root / "home"),
        "USER": USER,
        "PYTHONPATH": str(root / "src"),
        "KINDSLURM_SITE_CONFIG": "/etc/kindslurm/config.yaml",
        "ROOT": str(root),
    }
    yield env
    shutil.rmtree(root, ignore_errors=True)


def as_user(env: dict[str, str], *argv: str, cwd: str | None = None):
    envs = [f"{k}={v}" for k, v in env.items() if k != "ROOT"]
    return sh(["runuser", "-u", USER, "--", "env", "-i", *envs, *argv], cwd=cwd or env["ROOT"], timeout=120)


def test_doctor_names_the_cgroup_v1_reason_and_the_fix(user_env):
    res = as_user(user_env, str(VENV_PY), "-m", "kindslurm", "doctor")
    assert res.returncode == 70, res.stdout + res.stderr
    assert REASON in res.stdout
    assert "fix: boot the node with systemd.unified_cgroup_hierarchy=1, or run kindslurm as root" in res.stdout
    assert f"This node cannot host kindslurm clusters: cgroup: {REASON}" in res.stderr
    data = json.loads(as_user(user_env, str(VENV_PY), "-m", "kindslurm", "doctor", "--json").stdout)
    assert {"name": "cgroup", "status": "error"}.items() <= next(c for c in data if c["name"] == "cgroup").items()


def test_node_side_stops_before_booting(user_env):
    before = kind_containers()
    res = as_user(user_env, str(VENV_PY), "-m", "kindslurm", "run", "--local", f"{user_env['ROOT']}/w.sh")
    assert res.returncode == 70, res.stdout + res.stderr
    assert f"error: cgroup: {REASON}" in res.stdout
    assert "should-not-run" not in res.stdout
    assert kind_containers() == before
    runs = list(Path(user_env["HOME"], ".local/state/kindslurm/runs").glob("*.json"))
    rec = json.loads(runs[0].read_text())
    assert rec["phase"] == "failed" and rec["exit_code"] == 70 and REASON in rec["reason"]


@pytest.mark.slurm
def test_node_side_stops_before_booting_in_a_slurm_job(user_env):
    res = as_user(user_env, str(VENV_PY), "-m", "kindslurm", "run", f"{user_env['ROOT']}/w.sh", "--parsable")
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.strip()
    wait_job_gone(job_id)
    state = sh(["scontrol", "show", "job", job_id, "-o"]).stdout
    assert "JobState=FAILED" in state and "ExitCode=70:0" in state, state
    runs = list(Path(user_env["HOME"], ".local/state/kindslurm/runs").glob("*.json"))
    rec = json.loads(runs[0].read_text())
    assert rec["job_id"] == job_id and rec["exit_code"] == 70 and REASON in rec["reason"]
