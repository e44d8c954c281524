"""`kindslurm run` end to end: real Slurm jobs booting real kind clusters.

Every test checks the result contract (exit code, job directory) and that no
container, volume, network, kubeconfig or live record is left behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import KINDSLURM, REPO, Env, assert_no_leftovers, host_sysctls, sh, wait_job_gone

pytestmark = [pytest.mark.cluster, pytest.mark.slurm, pytest.mark.usefixtures("cluster_host")]

HELLO = ["workloads/hello/workload.sh", "--manifest", "workloads/hello/job.yaml"]


def job_dir_of(env: Env, ref: str) -> Path:
    return Path(env.record(ref)["job_dir"])


def check_hello_outputs(job_dir: Path) -> dict:
    workload = (job_dir / "workload.log").read_text()
    assert "Hello from pod" in workload
    pod_logs = list((job_dir / "pods" / "default").glob("hello-*/hello.log"))
    assert pod_logs and "Hello from pod" in pod_logs[0].read_text()
    assert list((job_dir / "pods" / "kube-system").glob("*/*.log")), "system pods' logs missing"
    assert "Scheduled" in (job_dir / "events.txt").read_text()
    summary = json.loads((job_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["exit_code"] == 0
    names = [p["name"] for p in summary["phases"]]
    assert names[:3] == ["preflight", "creating", "starting"] and names[-1] == "tearing-down"
    assert summary["manifests"] == {"Job/hello -n default": "succeeded"}
    return summary


def test_hello_through_sbatch_wait(env: Env):
    res = env.ks("run", *HELLO, "--time", "00:20:00", "--cpus", "2", "--mem", "4G", "--wait")
    assert res.returncode == 0, res.stdout + res.stderr
    first = res.stdout.splitlines()[0]
    assert first.startswith("Submitted job "), first
    job_id = first.split()[2]
    assert "Hello from pod" in res.stdout  # streamed while waiting
    rec = env.record(job_id)
    assert rec["phase"] == "completed" and rec["exit_code"] == 0 and rec["cluster"] == f"{rec['prefix']}-{job_id}"
    summary = check_hello_outputs(Path(rec["job_dir"]))
    assert summary["job_id"] == job_id
    limits = summary["node_limits"][f"{rec['cluster']}-control-plane"]
    assert limits["cpus"] == 2 and limits["memory_mb"] == 4096 and limits["cpuset"]
    wait_job_gone(job_id)
    assert_no_leftovers(env, rec["cluster"])


def test_failing_workload_exit_code_comes_back(env: Env, tmp_path: Path):
    script = tmp_path / "fail.sh"
    script.write_text("#!/bin/bash\nkubectl get nodes >/dev/null\necho 'about to fail'\nexit 7\n")
    res = env.ks("run", str(script), "--wait")
    assert res.returncode == 7, res.stdout + res.stderr
    job_id = res.stdout.split()[2]
    rec = env.record(job_id)
    summary = json.loads((Path(rec["job_dir"]) / "summary.json").read_text())
    assert (summary["status"], summary["exit_code"]) == ("failed", 7)
    assert "about to fail" in (Path(rec["job_dir"]) / "workload.log").read_text()
    wait_job_gone(job_id)
    assert_no_leftovers(env, rec["cluster"])


def test_scancel_tears_the_cluster_down(env: Env, tmp_path: Path):
    script = tmp_path / "long.sh"
    script.write_text("#!/bin/bash\necho started\nexec sleep 600\n")
    res = env.ks("run", str(script), "--parsable")
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.strip()
    rec = env.wait_phase(job_id, ("running",))
    assert sh(["podman", "ps", "-q", "--filter", f"label=io.x-k8s.kind.cluster={rec['cluster']}"]).stdout.strip()
    cancel = env.ks("cancel", job_id)
    assert cancel.returncode == 0, cancel.stderr
    wait_job_gone(job_id)
    rec = env.record(job_id)
    assert rec["phase"] == "cancelled" and rec["exit_code"] == 143
    summary = json.loads((Path(rec["job_dir"]) / "summary.json").read_text())
    assert summary["status"] == "cancelled" and summary["phases"][-1]["name"] == "tearing-down"
    assert_no_leftovers(env, rec["cluster"])
    st = env.ks("status", job_id)
    assert "cancelled" in st.stdout


def test_srun_runs_in_the_foreground(env: Env):
    res = env.ks("run", "--srun", *HELLO, "--time", "15")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Hello from pod" in res.stdout
    rec = env.records()[-1]
    assert rec["mode"] == "srun" and rec["job_id"] and rec["phase"] == "completed"
    check_hello_outputs(Path(rec["job_dir"]))
    assert_no_leftovers(env, rec["cluster"])


def test_local_runs_without_slurm(env: Env):
    before = host_sysctls()
    res = env.ks("run", "--local", *HELLO)
    assert host_sysctls() == before, "the kubelet's host sysctl changes were not put back"
    assert res.returncode == 0, res.stdout + res.stderr
    rec = env.records()[-1]
    assert rec["mode"] == "local" and rec["job_id"] is None and "-l" in rec["cluster"]
    check_hello_outputs(Path(rec["job_dir"]))
    assert_no_leftovers(env, rec["cluster"])


def test_kindslurm_run_inside_an_sbatch_allocation(env: Env, tmp_path: Path):
    """`sbatch --wrap 'kindslurm run workload.sh'` runs the lifecycle in that job."""
    cmd = " ".join([*KINDSLURM, "run", *HELLO])
    out = tmp_path / "wrap.out"
    res = sh(["sbatch", "--parsable", "-o", str(out), f"--chdir={REPO}", "--wrap", cmd], env=env.vars)
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.strip().split(";")[0]
    wait_job_gone(job_id, timeout=300)
    rec = env.record(job_id)
    assert rec["mode"] == "inline" and rec["phase"] == "completed", out.read_text()
    assert f"-{job_id}-" in rec["cluster"]
    check_hello_outputs(Path(rec["job_dir"]))
    assert "Hello from pod" in out.read_text()
    assert_no_leftovers(env, rec["cluster"])


def test_kindslurm_run_inside_an_srun_step(env: Env):
    """`srun -N1 kindslurm run workload.sh`: the step id (and a run suffix) make the name unique."""
    res = sh(["srun", "-N1", "-c2", *KINDSLURM, "run", *HELLO], env=env.vars, cwd=str(REPO))
    assert res.returncode == 0, res.stdout + res.stderr
    rec = env.records()[-1]
    assert rec["mode"] == "inline" and rec["phase"] == "completed"
    assert f"-{rec['job_id']}-s0-" in rec["cluster"] and rec["step_id"] == "0"
    check_hello_outputs(Path(rec["job_dir"]))
    assert_no_leftovers(env, rec["cluster"])


def test_two_runs_in_one_allocation_each_get_their_own_cluster(env: Env, tmp_path: Path):
    """Two `kindslurm run` in one salloc shell used to share `<prefix>-<job>`: the
    second create failed and its teardown deleted the first run's live cluster."""
    script = tmp_path / "w.sh"
    script.write_text("#!/bin/bash\nset -e\nkubectl get nodes -o name\nsleep 8\nkubectl get nodes -o name\necho still-mine\n")
    ks = f"{' '.join(KINDSLURM)} run {script}"
    both = f"{ks} & p1=$!; {ks} & p2=$!; wait $p1; a=$?; wait $p2; b=$?; echo rc=$a,$b"
    res = sh(["salloc", "-N1", "-c2", "bash", "-c", both], env=env.vars, cwd=str(REPO), timeout=500)
    assert "rc=0,0" in res.stdout, res.stdout + res.stderr
    recs = env.records()
    assert len(recs) == 2 and {r["mode"] for r in recs} == {"inline"}
    assert recs[0]["job_id"] == recs[1]["job_id"] and recs[0]["cluster"] != recs[1]["cluster"]
    for r in recs:
        assert r["phase"] == "completed" and r["exit_code"] == 0, r
        assert "still-mine" in (Path(r["job_dir"]) / "workload.log").read_text()
        assert_no_leftovers(env, r["cluster"])
