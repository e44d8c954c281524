"""The bridge's controller and leases over stand-ins for the outer API, the runs and Slurm: the order of
what it does (annotate before sbatch, exactly one job per pod, the object removed only after its job),
what it does after a restart, and who may act for a node."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from kindslurm.api import Submitted
from kindslurm.bridge import config as bcfg
from kindslurm.bridge.controller import Controller, NodeCtx
from kindslurm.bridge.lease import Lease
from kindslurm.bridge.nodes import NodeView
from kindslurm.bridge.outer import Conflict
from kindslurm.bridge.runs import RunFiles
from kindslurm.errors import SchedulerError
from kindslurm.scheduler.base import JobState, StatesUnknown
from kindslurm.scheduler.sinfo import parse

UID = "11111111-2222-3333-4444-555555555555"
RUN = f"pod-{UID}"
PARTITIONS = parse("debug|n1|16|64000|(null)|(null)|infinite|idle|up\n")


class FakeOuter:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 0

    def annotate(self, ns: str, name: str, uid: str, annotations: dict[str, Any]) -> None:
        self.calls.append(("annotate", annotations))

    def patch_status(self, ns: str, name: str, status: dict[str, Any]) -> None:
        self.calls.append(("status", status["phase"], status.get("reason")))

    def remove_pod(self, ns: str, name: str, uid: str) -> None:
        self.calls.append(("remove", name))

    def event(self, pod: dict[str, Any], kind: str, reason: str, message: str, node: str) -> None:
        self.calls.append(("event", reason))

    def get(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        return None

    def lease(self, name: str) -> dict[str, Any] | None:
        return self.leases.get(name)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = {**body, "metadata": {**body.get("metadata", {}), "resourceVersion": str(self.version)}}
        self.leases[body["metadata"]["name"]] = stored
        return stored

    def create_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        if body["metadata"]["name"] in self.leases:
            raise Conflict("exists")
        return self._store(body)

    def replace_lease(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.leases[name]["metadata"]["resourceVersion"] != body["metadata"].get("resourceVersion"):
            raise Conflict("changed")
        return self._store(body)

    def kinds(self, kind: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == kind]


class FakeRuns:
    def __init__(self, outer: FakeOuter) -> None:
        self.outer = outer
        self.submitted: list[str] = []
        self.known: dict[str, str] = {}  # run id -> job id, as the job's comment would find it
        self.flight = False
        self.files = RunFiles()
        self.deletes: list[int] = []
        self.forgotten: list[str] = []

    def submit(self, run_id: str, req: Any, inner: Any, ns: str, name: str, meta: dict[str, Any]) -> Submitted:
        self.outer.calls.append(("sbatch", run_id))
        job = str(100 + len(self.submitted))
        self.submitted.append(job)
        self.known[run_id] = job
        return Submitted(job, run_id, f"kb-{name}-{job}", "/jobs/x")

    def find(self, run_id: str) -> str | None:
        return self.known.get(run_id)

    def in_flight(self, run_id: str) -> bool:
        return self.flight

    def forget(self, run_id: str) -> None:
        self.forgotten.append(run_id)

    def read(self, run_id: str, ended: bool) -> RunFiles:
        return self.files

    def request_delete(self, run_id: str, grace: int) -> bool:
        self.deletes.append(grace)
        return True

    def job_dir(self, run_id: str) -> None:
        return None

    def drop(self, run_id: str) -> None:
        pass

    def orphans(self, nodes: set[str], known: set[str]) -> list[Any]:
        return []


class FakeSlurm:
    def __init__(self) -> None:
        self.jobs: dict[str, JobState] = {}
        self.cancelled: list[str] = []
        self.fail = False
        self.asked: list[list[str]] = []

    def states(self, ids: list[str]) -> dict[str, JobState]:
        self.asked.append(list(ids))
        if self.fail:
            raise StatesUnknown("squeue failed", {})
        return {i: self.jobs[i] for i in ids if i in self.jobs}

    def cancel(self, job_id: str, step_id: str | None = None) -> None:
        self.cancelled.append(job_id)


def make(held: bool = True) -> tuple[Controller, FakeOuter, FakeRuns, FakeSlurm]:
    outer, slurm = FakeOuter(), FakeSlurm()
    runs = FakeRuns(outer)
    lease = Lease(outer, "kindslurm-debug", "me", 40)  # type: ignore[arg-type]
    lease.held = held
    nodes = {"kindslurm-debug": NodeCtx(NodeView("kindslurm-debug", "debug", "127.0.0.1", 1, 10), lease,
                                        PARTITIONS["debug"])}
    cfg = bcfg.load({"poll_seconds": 0.01})
    return Controller(outer, runs, slurm, nodes, cfg, "01:00:00"), outer, runs, slurm  # type: ignore[arg-type]


def pod(annotations: dict[str, str] | None = None, deleting: bool = False, phase: str = "Pending") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p", "namespace": "default", "uid": UID, "annotations": annotations or {}}
    if deleting:
        meta["deletionTimestamp"] = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30)).isoformat()
        meta["deletionGracePeriodSeconds"] = 30
    return {"metadata": meta, "spec": {"nodeName": "kindslurm-debug", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": phase}}


def test_a_new_pod_is_annotated_before_sbatch_and_submitted_once() -> None:
    c, outer, runs, slurm = make()
    c.seen("ADDED", pod())
    c.poll()
    order = [call[0] for call in outer.calls if call[0] in ("annotate", "sbatch")]
    assert order == ["annotate", "sbatch", "annotate"]
    assert outer.calls[0] == ("annotate", {"kindslurm.io/run-id": RUN})
    assert ("annotate", {"kindslurm.io/job-id": "100"}) in outer.calls
    slurm.jobs["100"] = JobState("100", "PENDING", "Priority")
    for _ in range(3):
        c.poll()
    assert runs.submitted == ["100"]
    assert outer.kinds("status")[-1] == ("status", "Pending", None)


def test_a_job_submitted_before_a_restart_is_adopted_not_submitted_again() -> None:
    c, outer, runs, slurm = make()
    runs.known[RUN] = "77"  # the bridge died between sbatch and the job-id annotation
    slurm.jobs["77"] = JobState("77", "RUNNING")
    c.seen("ADDED", pod({"kindslurm.io/run-id": RUN}))
    c.poll()
    c.poll()
    assert runs.submitted == [] and ("event", "Adopted") in outer.calls
    assert ("annotate", {"kindslurm.io/job-id": "77"}) in outer.calls


def test_a_submission_still_in_flight_is_waited_for_then_made_once() -> None:
    c, outer, runs, slurm = make()
    runs.flight = True
    c.seen("ADDED", pod({"kindslurm.io/run-id": RUN}))
    c.poll()
    assert runs.submitted == []
    runs.flight = False
    time.sleep(0.05)
    c.poll()
    c.poll()
    assert runs.forgotten == [RUN] and runs.submitted == ["100"]


def test_a_pod_with_its_job_id_is_followed_after_a_restart() -> None:
    c, outer, runs, slurm = make()
    slurm.jobs["9"] = JobState("9", "RUNNING")
    runs.files = RunFiles(phase="creating", node="n1")
    c.seen("ADDED", pod({"kindslurm.io/run-id": RUN, "kindslurm.io/job-id": "9"}))
    c.poll()
    assert runs.submitted == [] and slurm.asked == [["9"]]
    assert outer.kinds("status") == [("status", "Pending", None)]


def test_one_squeue_for_every_pod() -> None:
    c, outer, runs, slurm = make()
    for i in range(30):
        p = pod({"kindslurm.io/run-id": f"pod-{i:08d}-0000-0000-0000-000000000000", "kindslurm.io/job-id": str(i + 1)})
        p["metadata"].update(uid=f"{i:08d}-0000-0000-0000-000000000000", name=f"p{i}")
        c.seen("ADDED", p)
        slurm.jobs[str(i + 1)] = JobState(str(i + 1), "PENDING", "Resources")
    c.poll()
    assert len(slurm.asked) == 1 and len(slurm.asked[0]) == 30


def test_a_deleted_running_pod_goes_only_after_its_job() -> None:
    c, outer, runs, slurm = make()
    slurm.jobs["9"] = JobState("9", "RUNNING")
    runs.files = RunFiles(phase="running")
    c.seen("ADDED", pod({"kindslurm.io/job-id": "9"}, deleting=True))
    c.poll()
    assert runs.deletes == [30] and outer.kinds("remove") == [] and slurm.cancelled == []
    slurm.jobs["9"] = JobState("9", "COMPLETING")  # tearing down: still the job's
    c.poll()
    assert outer.kinds("remove") == []
    slurm.fail = True  # squeue failed: proves nothing
    c.poll()
    assert outer.kinds("remove") == []
    slurm.fail = False
    slurm.jobs["9"] = JobState("9", "COMPLETED")
    c.poll()
    assert outer.kinds("remove") == [("remove", "p")] and c.find("default", "p") is None


def test_a_deleted_pending_or_booting_pod_cancels_its_job() -> None:
    for state, phase in (("PENDING", "submitted"), ("RUNNING", "creating")):
        c, outer, runs, slurm = make()
        slurm.jobs["9"] = JobState("9", state)
        runs.files = RunFiles(phase=phase)
        c.seen("ADDED", pod({"kindslurm.io/job-id": "9"}, deleting=True))
        c.poll()
        assert slurm.cancelled == ["9"] and runs.deletes == [] and outer.kinds("remove") == []


def test_a_force_deleted_pod_still_cancels_its_job() -> None:
    c, outer, runs, slurm = make()
    c.seen("ADDED", pod({"kindslurm.io/job-id": "9"}))
    c.seen("DELETED", pod({"kindslurm.io/job-id": "9"}))
    assert slurm.cancelled == ["9"]


def test_a_refused_pod_fails_and_submits_nothing() -> None:
    c, outer, runs, slurm = make()
    c.seen("ADDED", pod({"kindslurm.io/cpus": "5"}))
    c.poll()
    c.poll()
    assert runs.submitted == [] and outer.kinds("status")[-1][1:] == ("Failed", "InvalidAnnotation")
    assert len(outer.kinds("status")) == 1  # terminal once, then left alone


def test_slurm_refusals_fail_but_an_unreachable_slurm_is_retried() -> None:
    c, outer, runs, slurm = make()

    def refuse(*a: Any) -> Submitted:
        raise SchedulerError("sbatch refused the job: Invalid account or account/partition combination")

    runs.submit = refuse  # type: ignore[method-assign]
    c.seen("ADDED", pod())
    c.poll()
    assert outer.kinds("status")[-1][1:] == ("Failed", "SlurmRefused")
    c, outer, runs, slurm = make()

    def down(*a: Any) -> Submitted:
        raise SchedulerError("sbatch refused the job: Unable to contact slurm controller (connect failure)")

    runs.submit = down  # type: ignore[method-assign]
    c.seen("ADDED", pod())
    c.poll()
    assert outer.kinds("status")[-1][1:] == ("Pending", None) and ("event", "SlurmUnavailable") in outer.calls


def test_nothing_is_done_for_a_node_whose_lease_another_bridge_holds() -> None:
    c, outer, runs, slurm = make(held=False)
    c.seen("ADDED", pod())
    c.poll()
    assert outer.calls == [] and runs.submitted == []


# -- the lease ----------------------------------------------------------------
def stamp(seconds_ago: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_lease_is_taken_renewed_and_refused_while_another_holds_it() -> None:
    outer = FakeOuter()
    a = Lease(outer, "n", "bridge-a", 40)  # type: ignore[arg-type]
    b = Lease(outer, "n", "bridge-b", 40)  # type: ignore[arg-type]
    assert a.renew() and a.renew()
    assert not b.renew() and b.other_holder() == "bridge-a"
    outer.leases["n"]["spec"]["renewTime"] = stamp(41)  # bridge-a stopped renewing
    assert b.renew() and outer.leases["n"]["spec"]["holderIdentity"] == "bridge-b"
    assert outer.leases["n"]["spec"]["leaseTransitions"] == 1
    assert not a.renew() and not a.held  # its next write conflicts: it stands aside


def test_two_bridges_racing_for_a_free_lease_get_one_winner() -> None:
    outer = FakeOuter()
    a = Lease(outer, "n", "bridge-a", 40)  # type: ignore[arg-type]
    b = Lease(outer, "n", "bridge-b", 40)  # type: ignore[arg-type]
    a.last = b.last = None
    assert a.renew()
    b.held = False
    b.last = None
    outer_lease = outer.lease
    outer.lease = lambda name: None  # type: ignore[method-assign]  # b read before a wrote
    try:
        assert not b.renew()
    finally:
        outer.lease = outer_lease  # type: ignore[method-assign]
    assert outer.leases["n"]["spec"]["holderIdentity"] == "bridge-a"


@pytest.mark.parametrize("released", [True, False])
def test_release_frees_the_lease_at_once(released: bool) -> None:
    outer = FakeOuter()
    a = Lease(outer, "n", "bridge-a", 40)  # type: ignore[arg-type]
    assert a.renew()
    if released:
        a.release()
    b = Lease(outer, "n", "bridge-b", 40)  # type: ignore[arg-type]
    assert b.renew() is released
