"""Which run a reference means (exact matches first, a prefix only when it fits
one run), and what `cancel` stops: the run, never the allocation around it."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import Any

import pytest
from click.testing import CliRunner

from kindslurm import api, exitcodes, proc, records
from kindslurm.cli import main
from kindslurm.errors import KindslurmError
from kindslurm.scheduler.slurm import Slurm


def record(run_id: str, created: float, **kw: Any) -> records.Record:
    kw.setdefault("mode", "sbatch")
    kw.setdefault("phase", "running")
    rec = records.Record(run_id=run_id, user="u", job_dir="/nonexistent", created=created, **kw)
    records.save(rec)
    return rec


@pytest.fixture
def runs(no_site_config):
    record("20261201-090000-aaaaaa", 1.0, job_id="2026", cluster="ks-u-2026")
    record("20261202-100000-bbbbbb", 2.0, job_id="31", cluster="ks-u-31")
    record("20261202-110000-cccccc", 3.0, job_id="32", cluster="ks-u-32")
    return no_site_config


def test_an_ambiguous_prefix_is_an_error_listing_the_candidates(runs):
    with pytest.raises(records.AmbiguousRef) as e:
        records.find("202612")
    msg = str(e.value)
    assert e.value.exit_code == exitcodes.USAGE and "\n" not in msg
    assert all(r in msg for r in ("20261201-090000-aaaaaa", "20261202-100000-bbbbbb", "20261202-110000-cccccc"))


def test_an_exact_job_id_wins_over_run_id_prefixes(runs):
    assert records.find("2026").run_id == "20261201-090000-aaaaaa"  # type: ignore[union-attr]


def test_exact_run_id_cluster_and_a_unique_prefix(runs):
    assert records.find("20261202-100000-bbbbbb").job_id == "31"  # type: ignore[union-attr]
    assert records.find("ks-u-32").job_id == "32"  # type: ignore[union-attr]
    assert records.find("20261202-11").job_id == "32"  # type: ignore[union-attr]
    assert records.find("nothing") is None and records.find("") is None


def test_two_runs_of_one_allocation_share_a_job_id_so_it_is_ambiguous(xdg):
    record("r-1", 1.0, mode="inline", job_id="40", cluster="ks-u-40-aaa")
    record("r-2", 2.0, mode="inline", job_id="40", cluster="ks-u-40-bbb")
    with pytest.raises(records.AmbiguousRef, match="r-2 .*r-1"):
        records.find("40")


def test_cli_cancel_with_an_ambiguous_prefix_cancels_nothing(runs, monkeypatch):
    cancelled: list[tuple[str, str | None]] = []
    monkeypatch.setattr(Slurm, "cancel", lambda self, job, step=None: cancelled.append((job, step)))
    res = CliRunner().invoke(main, ["cancel", "2026120"])
    assert res.exit_code == exitcodes.USAGE and cancelled == []
    assert "matches 3 runs" in res.output
    res = CliRunner().invoke(main, ["cancel", "2026"])
    assert res.exit_code == 0 and cancelled == [("2026", None)]


@pytest.fixture
def scancel(no_site_config, monkeypatch) -> list[tuple[str, str | None]]:
    calls: list[tuple[str, str | None]] = []
    monkeypatch.setattr(Slurm, "cancel", lambda self, job, step=None: calls.append((job, step)))
    return calls


def test_cancel_of_a_run_in_an_srun_step_cancels_only_that_step(scancel):
    record("r-step", 1.0, mode="inline", job_id="50", step_id="3", node="elsewhere")
    done = api.cancel("r-step")
    assert done.action == "step" and done.message.startswith("cancelled step 50.3")
    assert scancel == [("50", "3")]


def test_cancel_of_an_inline_run_signals_its_process_not_the_allocation(scancel):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        record("r-inline", 1.0, mode="inline", job_id="51", node=socket.gethostname(), pid=sleeper.pid,
               pid_start=proc.start_time(sleeper.pid))
        assert api.cancel("r-inline").action == "signal"
        assert sleeper.wait(timeout=10) == -15
        assert scancel == []
    finally:
        sleeper.kill()


def test_cancel_of_an_inline_run_on_another_node_says_where_to_cancel(scancel):
    record("r-far", 1.0, mode="inline", job_id="52", node="node-far", pid=1, pid_start="1")
    with pytest.raises(KindslurmError, match="runs on node node-far: run `kindslurm cancel r-far` there"):
        api.cancel("r-far")
    assert scancel == []


def test_cancel_of_sbatch_and_own_srun_jobs_cancels_the_job(scancel):
    record("r-batch", 1.0, job_id="53")
    record("r-srun", 2.0, mode="srun", job_id="54")
    assert api.cancel("r-batch").action == api.cancel("r-srun").action == "job"
    assert scancel == [("53", None), ("54", None)]


def test_cancel_of_a_dead_local_run_points_at_gc(scancel):
    gone = subprocess.Popen(["true"])
    gone.wait()
    record("r-dead", time.time(), mode="local", node=socket.gethostname(), pid=gone.pid, pid_start="1")
    with pytest.raises(KindslurmError, match="no live process"):
        api.cancel("r-dead")
