"""A workflow tool in the run: a Parsl program (workloads/parsl) whose
KubernetesProvider starts its worker pods in the run's own cluster; the
workers connect back to the interchange on the compute node's address and
the apps' results come back, through the real Slurm."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .conftest import Env, assert_no_leftovers

pytestmark = [pytest.mark.cluster, pytest.mark.slurm, pytest.mark.usefixtures("cluster_host")]
PARSL_TAR = "/var/cache/kindslurm/images/parsl.tar"


def test_parsl_workers_run_in_the_cluster_and_results_come_back(env: Env):
    assert Path(PARSL_TAR).exists(), "no parsl worker image: bash setup/images/build-test-images.sh parsl"
    env.vars["PARSL_PYTHON"] = sys.executable  # the venv the tests run in has parsl (pyproject's test extra)
    res = env.ks("run", "workloads/parsl/workload.sh", "--load-image", PARSL_TAR, "--time", "15", "--wait", timeout=900)
    rec = env.records()[-1]
    job_dir = Path(rec["job_dir"])
    log = (job_dir / "workload.log").read_text()
    assert res.returncode == 0, res.stdout + res.stderr + log
    assert "squares: [0, 1, 4, 9, 16, 25, 36, 49]" in log and "sum: 140" in log
    assert "computed by worker pods: parsl-worker" in log
    pods = {p.parent.name for p in (job_dir / "pods" / "parsl").glob("*/*.log")}
    assert pods and all(p.startswith("parsl-worker") for p in pods), pods  # the worker pods' logs were kept
    assert json.loads((job_dir / "summary.json").read_text())["status"] == "completed"
    assert_no_leftovers(env, rec["cluster"])
