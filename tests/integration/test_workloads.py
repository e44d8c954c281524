"""The example workloads run as documented in the README."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import REPO, Env, assert_no_leftovers

pytestmark = [pytest.mark.cluster, pytest.mark.slurm, pytest.mark.usefixtures("cluster_host")]
PYTHON_TAR = "/var/cache/kindslurm/images/python.tar"


def test_sysbench_example(env: Env):
    res = env.ks("run", "workloads/sysbench/workload.sh", "--manifest", "workloads/sysbench/pod.yaml",
                 "--load-image", PYTHON_TAR, "--cpus", "2", "--wait")
    assert res.returncode == 0, res.stdout + res.stderr
    rec = env.records()[-1]
    log = (Path(rec["job_dir"]) / "pods" / "default" / "sysbench" / "sysbench.log").read_text()
    assert "events per second" in log
    assert json.loads((Path(rec["job_dir"]) / "summary.json").read_text())["manifests"] == {"Pod/sysbench -n default": "succeeded"}
    assert_no_leftovers(env, rec["cluster"])


def test_pytorch_style_training_writes_to_the_submit_directory(env: Env):
    res = env.ks("run", "workloads/pytorch/workload.sh", "--load-image", PYTHON_TAR, "--wait")
    assert res.returncode == 0, res.stdout + res.stderr
    rec = env.records()[-1]
    out = REPO / "kindslurm-out" / rec["run_id"]
    try:
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["final_loss"] < metrics["first_loss"] and (out / "checkpoint.npz").stat().st_size > 0
        assert "trained: loss" in (Path(rec["job_dir"]) / "workload.log").read_text()
    finally:
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        if (REPO / "kindslurm-out").is_dir() and not any((REPO / "kindslurm-out").iterdir()):
            (REPO / "kindslurm-out").rmdir()
    assert_no_leftovers(env, rec["cluster"])
