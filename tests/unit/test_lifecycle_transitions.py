"""State transitions of the node side with a stand-in provider (no cluster):
which exit path sets which code, status and record phase, and that teardown
runs on each. The real paths are in tests/integration."""

import json
import signal
from pathlib import Path

import pytest

from kindslurm import exitcodes, records
from kindslurm.errors import ClusterCreateError
from kindslurm.node import actions
from kindslurm.node.lifecycle import Interrupt, Lifecycle
from kindslurm.spec import JobSpec


@pytest.fixture
def spec(no_site_config, tmp_path):
    s = JobSpec(run_id="r1", mode="local", prefix="ks-t", user="t", submit_dir=str(tmp_path), job_dir=str(tmp_path / "job"),
                script=None, manifests=[])
    return s


@pytest.fixture
def quiet_checks(mocker):
    mocker.patch("kindslurm.node.preflight.run_checks", return_value=[])
    mocker.patch("kindslurm.node.capacity.check", return_value=[])


def test_create_failure_tears_down_and_records_71(spec, quiet_checks, mocker, capsys):
    provider = mocker.Mock()
    provider.create.side_effect = ClusterCreateError("kind create cluster failed (exit 1): see kind.log")
    provider.delete.return_value = []
    code = Lifecycle(spec, provider).run()
    assert code == exitcodes.CLUSTER_CREATE
    provider.delete.assert_called_once()
    summary = json.loads(Path(spec.job_dir, "summary.json").read_text())
    assert summary["status"] == "failed" and summary["exit_code"] == 71
    assert [p["name"] for p in summary["phases"]] == ["preflight", "creating", "tearing-down"]
    rec = records.load("r1")
    assert rec.phase == "failed" and rec.exit_code == 71 and not rec.live
    assert Path(spec.job_dir, "exitcode").read_text() == "71\n"


def test_preflight_failure_boots_nothing(spec, mocker):
    from kindslurm.node.preflight import Check

    mocker.patch("kindslurm.node.preflight.run_checks", return_value=[Check("cgroup", "error", "no v2", "use v2")])
    provider = mocker.Mock()
    assert Lifecycle(spec, provider).run() == exitcodes.PREFLIGHT
    provider.create.assert_not_called()
    provider.delete.assert_not_called()
    assert records.load("r1").reason == "cgroup: no v2: use v2"


@pytest.mark.parametrize("signum,status,code", [(signal.SIGTERM, "cancelled", 143), (signal.SIGINT, "interrupted", 130),
                                                 (signal.SIGUSR1, "timeout", 74)])
def test_signals_during_create_map_to_status_and_still_tear_down(spec, quiet_checks, mocker, signum, status, code):
    provider = mocker.Mock()
    provider.delete.return_value = []
    lc = Lifecycle(spec, provider)

    def create(*a, **kw):
        lc._on_signal(signum, None)

    provider.create.side_effect = create
    assert lc.run() == code
    provider.delete.assert_called_once()
    summary = json.loads(Path(spec.job_dir, "summary.json").read_text())
    assert summary["status"] == status and summary["time_limit_reached"] == (status == "timeout")


def test_a_second_signal_during_teardown_is_only_noted(spec, quiet_checks, mocker):
    provider = mocker.Mock()
    lc = Lifecycle(spec, provider)
    provider.create.side_effect = lambda *a, **kw: lc._on_signal(signal.SIGTERM, None)

    def delete(*a, **kw):
        lc._on_signal(signal.SIGTERM, None)  # must not raise
        return []

    provider.delete.side_effect = delete
    assert lc.run() == 143
    assert json.loads(Path(spec.job_dir, "summary.json").read_text())["late_signals"] == [signal.SIGTERM]


def test_teardown_leftovers_are_reported(spec, quiet_checks, mocker):
    provider = mocker.Mock()
    provider.create.side_effect = ClusterCreateError("boom")
    provider.delete.return_value = ["ks-t: container x"]
    Lifecycle(spec, provider).run()
    assert "teardown left ks-t: container x (run `kindslurm gc`)" in records.load("r1").reason


def test_interrupt_is_not_an_exception():
    assert not issubclass(Interrupt, Exception)


def test_keep_on_failure_holds_after_the_workload_stops_and_teardown_keeps_its_order(spec, quiet_checks, mocker, tmp_path):
    """stop workload, hold, harvest, delete cluster, remove kubeconfig, remove marker, restore sysctls."""
    order = []
    script = tmp_path / "w.sh"
    script.write_text("exit 4\n")
    spec.script, spec.keep_on_failure = str(script), True
    mocker.patch("kindslurm.kube.Kube")
    mocker.patch("kindslurm.node.contract.admin_token", return_value="token")
    provider = mocker.Mock()
    provider.endpoint.return_value = "https://127.0.0.1:6443"
    lc = Lifecycle(spec, provider)
    provider.delete.side_effect = lambda *a, **kw: (order.append(("delete", lc.kubeconfig.exists(), lc.marker.exists())), [])[1]
    mocker.patch("kindslurm.node.capacity.release", side_effect=lambda p: (order.append(("release", lc.marker.exists())), {})[1])
    mocker.patch("kindslurm.node.harvest.collect", side_effect=lambda *a, **kw: order.append("harvest"))
    mocker.patch.object(Lifecycle, "_hold_for_debugging", side_effect=lambda: order.append("hold"))
    lc.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    lc.kubeconfig.write_text("")
    real_stop = actions.RunWorkload.undo
    mocker.patch.object(actions.RunWorkload, "undo", autospec=True,
                        side_effect=lambda step, ctx: (order.append("stop"), real_stop(step, ctx)))
    assert lc.run() == 4
    assert order == ["stop", "hold", "harvest", ("delete", True, True), ("release", False)]
    assert not lc.kubeconfig.exists()
    summary = json.loads(Path(spec.job_dir, "summary.json").read_text())
    assert [p["name"] for p in summary["phases"]] == ["preflight", "creating", "starting", "running", "collecting", "tearing-down"]


def test_the_workload_runs_through_proc_and_its_deadline_stops_it(tmp_path):
    import io
    import time

    from kindslurm.node.workload import Workload

    script = tmp_path / "w.sh"
    script.write_text("echo hello; exit 3\n")
    out = io.StringIO()
    w = Workload(str(script), [], cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"}, log=tmp_path / "w.log", out=out)
    assert w.run(None) == 3
    assert out.getvalue() == "hello\n" == (tmp_path / "w.log").read_text()
    script.write_text("sleep 30\n")
    w = Workload(str(script), [], cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"}, log=tmp_path / "w.log", out=out)
    t = time.monotonic()
    assert w.run(time.monotonic() + 0.5) is None and time.monotonic() - t < 10
