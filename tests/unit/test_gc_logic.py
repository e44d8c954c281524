"""gc's decisions with a fake provider and a fake scheduler: whose clusters
these are (only what kindslurm wrote says so), which are live, what --job selects."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from kindslurm.node import gc
from kindslurm import paths, proc, records
from kindslurm.cluster.provider import ClusterResources, NodeContainer
from kindslurm.scheduler.slurm import JobState, StatesUnknown

HOST = "node-a"
OLD = time.time() - 3600


class FakeProvider:
    def __init__(self, *names: str, fail: tuple[str, ...] = ()) -> None:
        self.found = {n: ClusterResources(n, [NodeContainer(f"{n}-control-plane", n, "control-plane", "running", OLD)],
                                          [f"vol-{n}"]) for n in names}
        self.fail = fail
        self.calls: list[str] = []

    def clusters(self, timeout: float = 60.0) -> dict[str, ClusterResources]:
        self.calls.append("clusters")
        return dict(self.found)

    def remove_many(self, names: list[str], timeout: float = 120.0) -> list[str]:
        self.calls.append("remove_many")
        for n in names:
            if n not in self.fail:
                self.found.pop(n, None)
        return [f"{n}: container {n}-control-plane" for n in names if n in self.fail]

    def remove_unused_network(self, timeout: float = 30.0) -> bool:
        self.calls.append("remove_unused_network")
        return False


class Untouchable:
    """A provider and scheduler in one that fail the test when used at all."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{name} called")


class FakeSlurm:
    def __init__(self, states: dict[str, str] | None = None, down: bool = False) -> None:
        self.known = {j: JobState(j, s) for j, s in (states or {}).items()}
        self.down = down
        self.asked: list[list[str]] = []

    def states(self, job_ids: list[str]) -> dict[str, JobState]:
        self.asked.append(list(job_ids))
        if self.down:
            raise StatesUnknown("squeue failed: controller down", {j: JobState(j, "COMPLETED") for j in job_ids})
        return {j: self.known[j] for j in job_ids if j in self.known}


@pytest.fixture
def node(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    run = xdg / "run"
    monkeypatch.setattr(paths, "runtime_dir", lambda: run)
    monkeypatch.setattr(paths, "markers_dir", lambda: run / "creating")
    monkeypatch.setenv("KINDSLURM_GC_GRACE", "0")
    return xdg


def record(run_id: str, **kw: Any) -> records.Record:
    kw.setdefault("mode", "sbatch")
    kw.setdefault("phase", "running")
    rec = records.Record(run_id=run_id, user="u", job_dir=f"/nonexistent/{run_id}", **kw)
    records.save(rec)
    return rec


def marker(name: str, **fields: Any) -> Path:
    p = paths.markers_dir() / name
    paths.write_private(p, json.dumps({"pid": dead_pid(), "start": "1", "nodes": 1, "booting": False, **fields}))
    os.utime(p, (OLD, OLD))
    return p


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def collector(provider: Any, slurm: Any, **kw: Any) -> gc.Collector:
    c = gc.Collector(provider, slurm, **kw)
    c.host = HOST
    return c


def planned(c: gc.Collector) -> dict[tuple[str, str], str]:
    return {(a.kind, a.name): a.reason for a, _ in c.plan()}


def test_a_hand_made_cluster_with_the_default_prefix_is_never_touched(node):
    from kindslurm import naming

    handmade = f"{naming.default_prefix()}-dev"
    provider = FakeProvider(handmade, f"{naming.default_prefix()}-1234")
    actions = collector(provider, FakeSlurm()).run()
    assert actions == []
    assert set(provider.found) == {handmade, f"{naming.default_prefix()}-1234"}


def test_a_record_or_a_marker_makes_a_cluster_ours_and_the_job_decides(node):
    record("r-dead", job_id="11", cluster="c-dead")
    record("r-live", job_id="12", cluster="c-live")
    marker("c-marked", job_id="13")
    provider = FakeProvider("c-dead", "c-live", "c-marked", "c-foreign")
    slurm = FakeSlurm({"11": "COMPLETED", "12": "RUNNING"})
    plan = planned(collector(provider, slurm))
    assert ("cluster", "c-dead") in plan and "job 11 COMPLETED" in plan[("cluster", "c-dead")]
    assert ("cluster", "c-marked") in plan and "job 13 gone" in plan[("cluster", "c-marked")]
    assert ("record", "r-dead") in plan and ("marker", "c-marked") in plan
    assert not {k for k in plan if k[1] in ("c-live", "r-live", "c-foreign")}
    assert sorted(slurm.asked[0]) == ["11", "12", "13"]


def test_a_live_local_run_on_another_node_is_kept(node):
    record("r-elsewhere", mode="local", cluster="c-elsewhere", node="node-b", pid=dead_pid(), pid_start="1")
    record("r-here", mode="local", cluster="c-here", node=HOST, pid=dead_pid(), pid_start="1")
    c = collector(FakeProvider("c-here"), FakeSlurm())
    plan = planned(c)
    assert ("record", "r-elsewhere") not in plan
    assert ("record", "r-here") in plan and ("cluster", "c-here") in plan
    assert c._record_live(records.load("r-elsewhere"))[1] == "on node node-b: only gc there can tell"


def test_a_live_local_run_on_this_node_is_kept(node):
    me = os.getpid()
    record("r-me", mode="local", cluster="c-me", node=HOST, pid=me, pid_start=proc.start_time(me))
    assert planned(collector(FakeProvider("c-me"), FakeSlurm())) == {}


def test_when_squeue_fails_everything_with_a_job_is_kept(node):
    record("r-job", job_id="21", cluster="c-job")
    marker("c-marker-job", job_id="22")
    record("r-local", mode="local", cluster="c-local", node=HOST, pid=dead_pid(), pid_start="1")
    c = collector(FakeProvider("c-job", "c-marker-job", "c-local"), FakeSlurm(down=True))
    plan = planned(c)
    assert not c.slurm_ok
    assert set(plan) == {("cluster", "c-local"), ("record", "r-local")}  # sacct's "COMPLETED" proves nothing


def test_job_mode_exits_before_podman_or_slurm_when_nothing_names_the_job(node):
    record("r-other", job_id="31", cluster="c-other")
    marker("c-other-marker", job_id="32")
    assert collector(Untouchable(), Untouchable(), job="99").run() == []
    assert not paths.runtime_dir().joinpath("gc.lock").exists()


def test_job_mode_selects_by_what_kindslurm_wrote_not_by_the_name(node):
    marker("ks-u-555", job_id="777")
    record("r-555", job_id="555", cluster="ks-u-other")
    provider = FakeProvider("ks-u-555", "ks-u-other")
    slurm = FakeSlurm({"555": "COMPLETED", "777": "COMPLETING"})
    plan = planned(collector(provider, slurm, job="777"))
    assert set(plan) == {("cluster", "ks-u-555"), ("marker", "ks-u-555")}
    assert slurm.asked == [["777"]]


def test_epilog_mode_follows_the_marker_into_the_jobs_state_dir(node, tmp_path, monkeypatch):
    job_state = tmp_path / "job-home" / "kindslurm"
    monkeypatch.setenv("XDG_STATE_HOME", str(job_state.parent))
    rec = record("r-epi", job_id="41", cluster="c-epi", kubeconfig=str(job_state / "kubeconfigs" / "c-epi.yaml"))
    kubeconfig = Path(rec.kubeconfig or "")
    paths.write_private(kubeconfig, "apiVersion: v1\n")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "epilog-home"))  # the Epilog sees another HOME
    m = marker("c-epi", job_id="41", run_id="r-epi", kubeconfig=str(kubeconfig), state_dir=str(job_state))
    provider = FakeProvider("c-epi")
    actions = collector(provider, FakeSlurm({"41": "COMPLETING"}), job="41").run()
    assert {(a.kind, a.result) for a in actions} == {("cluster", "removed"), ("record", "removed"), ("marker", "removed")}
    assert provider.found == {} and not kubeconfig.exists() and not m.exists()
    assert not (job_state / "runs" / "r-epi.json").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another uid")
def test_a_marker_never_leads_gc_to_another_users_record(node, tmp_path, monkeypatch):
    job_state = tmp_path / "other" / "kindslurm"
    monkeypatch.setenv("XDG_STATE_HOME", str(job_state.parent))
    record("r-theirs", job_id="51", cluster="c-theirs", phase="completed")
    os.chown(job_state / "runs" / "r-theirs.json", 12345, -1)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "mine"))
    marker("c-theirs", job_id="51", run_id="r-theirs", state_dir=str(job_state))
    c = collector(FakeProvider(), FakeSlurm({"51": "RUNNING"}), job="51")
    c.plan()
    assert "r-theirs" not in c.records_of
    assert (job_state / "runs" / "r-theirs.json").exists()


def test_a_live_marker_keeps_its_cluster_whatever_the_record_says(node):
    record("r-boot", job_id="61", cluster="c-boot", phase="completed")
    me = os.getpid()
    paths.write_private(paths.markers_dir() / "c-boot", json.dumps({"pid": me, "start": proc.start_time(me)}))
    assert planned(collector(FakeProvider("c-boot"), FakeSlurm({"61": "COMPLETED"}))) == {}


def test_a_garbled_marker_pid_never_counts_as_alive(node):
    paths.write_private(paths.markers_dir() / "c-garbled", json.dumps({"pid": "self", "start": None}))
    os.utime(paths.markers_dir() / "c-garbled", (OLD, OLD))
    plan = planned(collector(FakeProvider("c-garbled"), FakeSlurm()))
    assert ("cluster", "c-garbled") in plan


def test_record_and_marker_stay_while_their_cluster_could_not_be_removed(node):
    record("r-stuck", job_id="71", cluster="c-stuck")
    m = marker("c-stuck", job_id="71")
    actions = {(a.kind, a.name): a for a in collector(FakeProvider("c-stuck", fail=("c-stuck",)), FakeSlurm()).run()}
    assert actions[("cluster", "c-stuck")].failed
    assert actions[("record", "r-stuck")].failed and actions[("marker", "c-stuck")].failed
    assert records.load("r-stuck") is not None and m.exists()


def test_a_marker_pointing_at_an_odd_kubeconfig_removes_only_the_clusters_own(node, tmp_path):
    precious = tmp_path / "precious.yaml"
    precious.write_text("keep me")
    marker("c-odd", job_id="81", kubeconfig=str(precious))
    actions = collector(FakeProvider("c-odd"), FakeSlurm(), job="81").run()
    assert ("cluster", "removed") in {(a.kind, a.result) for a in actions}
    assert precious.read_text() == "keep me"
