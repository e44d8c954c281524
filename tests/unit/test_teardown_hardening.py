"""Teardown with a stand-in provider: it runs first and whatever fails around it,
within the budget the exit path leaves, and only ever deletes this run's cluster."""

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kindslurm.node import capacity
from kindslurm import exitcodes, paths, records
from kindslurm.errors import ClusterExistsError
from kindslurm.kube import parse_cri_log
from kindslurm.node.harvest import Harvester
from kindslurm.node.lifecycle import Lifecycle
from kindslurm.node.teardown import MARGIN, Teardown
from kindslurm.spec import JobSpec


@pytest.fixture
def spec(no_site_config, tmp_path):
    return JobSpec(run_id="r1", mode="local", prefix="ks-t", user="t", submit_dir=str(tmp_path),
                   job_dir=str(tmp_path / "job"), script=None, manifests=[])


@pytest.fixture
def quiet_checks(mocker):
    mocker.patch("kindslurm.node.preflight.run_checks", return_value=[])
    mocker.patch("kindslurm.node.capacity.check", return_value=[])
    mocker.patch("kindslurm.node.capacity.release", return_value={})


def test_a_full_quota_does_not_skip_the_delete(spec, quiet_checks, mocker):
    provider = mocker.Mock()
    provider.delete.return_value = []
    lc = Lifecycle(spec, provider)

    def api_up_and_the_quota_full():
        mocker.patch("kindslurm.records.update", side_effect=OSError(errno.EDQUOT, "Disk quota exceeded"))
        mocker.patch.object(lc.paths.summary.__class__, "write_text", side_effect=OSError(errno.EDQUOT, "quota"))

    mocker.patch("kindslurm.kube.Kube").return_value.wait_api.side_effect = api_up_and_the_quota_full
    assert lc.run() == 0
    provider.delete.assert_called_once()
    assert any("state record" in w for w in lc.warnings)


def test_leftovers_make_a_successful_run_fail(spec, quiet_checks, mocker):
    provider = mocker.Mock()
    provider.delete.return_value = ["ks-t: container x"]
    mocker.patch("kindslurm.kube.Kube")
    lc = Lifecycle(spec, provider)
    assert lc.run() == exitcodes.TEARDOWN_INCOMPLETE
    assert json.loads(Path(spec.job_dir, "summary.json").read_text())["exit_code"] == exitcodes.TEARDOWN_INCOMPLETE
    assert lc.marker.exists()  # the marker is kept for gc
    lc.marker.unlink()


def test_a_name_taken_by_another_run_is_never_deleted(spec, quiet_checks, mocker):
    provider = mocker.Mock()
    provider.create.side_effect = ClusterExistsError("a cluster named x already exists")
    assert Lifecycle(spec, provider).run() == exitcodes.CLUSTER_CREATE
    provider.delete.assert_not_called()


def test_a_live_runs_marker_blocks_the_name_and_survives(spec, quiet_checks, mocker):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lc = Lifecycle(spec, mocker.Mock())
        paths.ensure_private_dir(lc.marker.parent)
        lc.marker.write_text(json.dumps({"pid": other.pid, "start": None, "booting": True, "nodes": 1}))
        assert lc.run() == exitcodes.CLUSTER_CREATE
        lc.provider.create.assert_not_called()
        lc.provider.delete.assert_not_called()
        assert json.loads(lc.marker.read_text())["pid"] == other.pid, "the other run's marker was removed"
    finally:
        other.kill()
        lc.marker.unlink(missing_ok=True)


def test_the_marker_names_its_owner_for_gc(spec, quiet_checks, mocker):
    seen = {}
    provider = mocker.Mock()
    provider.delete.return_value = []
    lc = Lifecycle(spec, provider)
    provider.create.side_effect = lambda *a, **kw: seen.update(json.loads(lc.marker.read_text()))
    lc.run()
    assert seen["run_id"] == "r1" and seen["kubeconfig"] == str(lc.kubeconfig) and seen["pid"] == os.getpid()
    assert seen["state_dir"] == str(paths.state_dir())
    assert not lc.marker.exists()


def test_cancel_gives_delete_what_killwait_leaves(spec, quiet_checks, mocker):
    provider = mocker.Mock()
    provider.delete.return_value = []
    lc = Lifecycle(spec, provider)
    lc.kill_wait = 20.0
    provider.create.side_effect = lambda *a, **kw: lc._on_signal(signal.SIGTERM, None)
    assert lc.run() == exitcodes.CANCELLED
    budget = provider.delete.call_args.kwargs["timeout"]
    assert 5.0 <= budget <= 20.0 - MARGIN


def test_time_limit_budget_is_the_warning_time():
    t = Teardown()
    t.start(60)
    assert 55 < t.left() <= 60 - MARGIN
    t.start(300)  # a later, looser signal never extends the deadline
    assert t.left() <= 60 - MARGIN
    assert t.for_harvest() < t.left()


def test_a_normal_end_is_bounded_by_the_jobs_end_time():
    import time

    t = Teardown()
    t.start_default({"SLURM_JOB_END_TIME": str(int(time.time()) + 30)})
    assert t.left() <= 30


def test_kubelet_log_files_parse_to_the_containers_lines():
    raw = ("2026-12-02T10:00:00.1Z stdout F started\n"
           "2026-12-02T10:00:01.1Z stdout P got SIG\n"
           "2026-12-02T10:00:01.2Z stdout F TERM, saving state\n"
           "2026-12-02T10:00:01.3Z stderr F bye\n")
    assert parse_cri_log(raw) == "started\ngot SIGTERM, saving state\nbye\n"


def test_an_unreadable_log_never_replaces_a_saved_one(tmp_path):
    harvester = Harvester(None, None, None)
    out = tmp_path / "default" / "p" / "main.log"
    harvester._keep(out, "started\ngot SIGTERM\n", failed=False)
    harvester._keep(out, "unable to retrieve container logs for containerd://abc", failed=True)
    assert out.read_text() == "started\ngot SIGTERM\n" and out not in harvester.unreadable
    missing = tmp_path / "default" / "q" / "main.log"
    harvester._keep(missing, "(no log: gone)\n", failed=True)
    assert missing in harvester.unreadable


def test_the_network_lock_is_taken_alone_when_the_network_went_meanwhile(mocker):
    from kindslurm.cluster import kind_podman

    answers = iter([True, False, False])
    kp = kind_podman.KindPodman()
    mocker.patch.object(kp, "network_exists", side_effect=lambda: next(answers))
    modes = []
    real = kind_podman.local_lock

    def spy(name, mode=fcntl.LOCK_EX):
        modes.append(mode)
        return real(name, mode)

    mocker.patch("kindslurm.cluster.kind_podman.local_lock", side_effect=spy)
    with kp._network_lock():
        pass
    assert modes == [fcntl.LOCK_SH, fcntl.LOCK_EX]


def test_a_lost_sbatch_answer_keeps_the_job_directory(spec, mocker, tmp_path):
    from kindslurm import api
    from kindslurm.config import Config
    from kindslurm.errors import CommandTimeout, SchedulerError

    spec.mode = "sbatch"
    slurm = mocker.Mock()
    slurm.submit.side_effect = CommandTimeout(["sbatch"], 60)
    slurm.find_by_comment.return_value = None
    with pytest.raises(SchedulerError, match="job directory .* was kept"):
        api.submit_batch(spec, Config(), slurm)
    assert Path(spec.job_dir, "batch.sh").exists() and records.load("r1") is not None
    slurm.find_by_comment.return_value = "4242"
    spec.run_id = "r2"
    spec.job_dir = str(tmp_path / "job2")
    assert api.submit_batch(spec, Config(), slurm) == "4242"
    assert records.load("r2").job_id == "4242"


@pytest.mark.parametrize("mode,in_allocation,step", [("srun", False, None), ("srun", True, "3"), ("inline", False, "3")])
def test_only_a_run_inside_someones_allocation_records_its_step(spec, mocker, monkeypatch, mode, in_allocation, step):
    """cancel stops a recorded step only; an srun that made its own job is cancelled whole."""
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    monkeypatch.setenv("SLURM_STEP_ID", "3")
    spec.mode, spec.in_allocation = mode, in_allocation
    lc = Lifecycle(spec, mocker.Mock())
    lc._register()
    rec = records.load("r1")
    assert rec.job_id == "99" and rec.step_id == step
