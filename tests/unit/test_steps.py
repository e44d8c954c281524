"""The step runner on its own: order, reverse undo, which undos run after a
failure or a signal, best-effort undos, the retain hold and the phases."""

from __future__ import annotations

import signal

import pytest

from kindslurm.node import actions
from kindslurm.node.lifecycle import Interrupt
from kindslurm.node.steps import Decided, Runner, Step
from kindslurm.phases import Phase


class Log(list):
    pass


class Act(Step[Log]):
    def __init__(self, name: str, phase: Phase = Phase.CREATING, *, fail: BaseException | None = None,
                 undo_fails: bool = False, undo: bool = True, left: bool = True, before_hold: bool = False,
                 undo_phase: Phase | None = None, wanted: bool = True, decide: bool = False) -> None:
        self.label, self.phase, self.fail, self.undo_fails = name, phase, fail, undo_fails
        self.undo_what = f"undo {name}" if undo else None
        self.left, self.before_hold, self.undo_phase, self.want, self.decide = left, before_hold, undo_phase, wanted, decide

    def wanted(self, log: Log) -> bool:
        return self.want

    def do(self, log: Log) -> None:
        log.append(f"do {self.label}")
        if self.fail is not None:
            raise self.fail
        if self.decide:
            raise Decided

    def undo(self, log: Log) -> None:
        log.append(f"undo {self.label}")
        if self.undo_fails:
            raise OSError("disk full")

    def left_something(self, log: Log, error: BaseException) -> bool:
        return self.left


def runner(*steps: Act) -> tuple[Runner[Log], Log, list[str]]:
    log, warnings = Log(), []
    r = Runner(list(steps), log, warn=lambda what, e: warnings.append(f"{what}: {e}"))
    return r, log, warnings


def test_steps_run_in_order_and_undo_in_reverse():
    r, log, _ = runner(Act("a"), Act("b"), Act("c"))
    r.run()
    r.undo()
    assert log == ["do a", "do b", "do c", "undo c", "undo b", "undo a"]


def test_a_failing_step_is_undone_with_those_before_it_and_later_ones_never_run():
    r, log, _ = runner(Act("a"), Act("b"), Act("c", fail=RuntimeError("boom")), Act("d"))
    with pytest.raises(RuntimeError):
        r.run()
    r.undo()
    assert log == ["do a", "do b", "do c", "undo c", "undo b", "undo a"]


def test_a_step_whose_failure_left_nothing_is_not_undone():
    r, log, _ = runner(Act("a"), Act("b", fail=RuntimeError("taken"), left=False))
    with pytest.raises(RuntimeError):
        r.run()
    r.undo()
    assert log == ["do a", "do b", "undo a"]


def test_a_failing_undo_does_not_stop_the_others():
    r, log, warnings = runner(Act("a"), Act("b", undo_fails=True), Act("c"))
    r.run()
    r.undo()
    assert log == ["do a", "do b", "do c", "undo c", "undo b", "undo a"]
    assert warnings == ["undo b: disk full"]


def test_an_interrupt_mid_step_undoes_too():
    r, log, _ = runner(Act("a"), Act("b", fail=Interrupt(signal.SIGTERM)), Act("c"))
    with pytest.raises(Interrupt):
        r.run()
    r.undo()
    assert log == ["do a", "do b", "undo b", "undo a"]


def test_retain_holds_before_the_first_undo_that_takes_the_cluster_away():
    r, log, _ = runner(Act("cluster"), Act("api", undo=False), Act("workload", before_hold=True))
    r.run()
    r.undo(hold=lambda: log.append("hold"))
    assert log == ["do cluster", "do api", "do workload", "undo workload", "hold", "undo cluster"]


def test_undo_runs_once():
    r, log, _ = runner(Act("a"))
    r.run()
    r.undo()
    r.undo()
    assert log == ["do a", "undo a"]


def test_a_decided_run_skips_the_rest_without_failing():
    r, log, _ = runner(Act("a"), Act("b", decide=True), Act("c"))
    r.run()
    r.undo()
    assert log == ["do a", "do b", "undo b", "undo a"]


def test_the_phases_come_from_the_steps():
    seen: list[Phase] = []
    log = Log()
    r = Runner([Act("pre", Phase.PREFLIGHT), Act("img", Phase.PREFLIGHT), Act("skip", Phase.APPLYING, wanted=False),
                Act("create", Phase.CREATING, undo_phase=Phase.TEARING_DOWN), Act("run", Phase.RUNNING, undo=False)],
               log, warn=lambda what, e: None, on_phase=seen.append)
    r.run()
    r.undo()
    r.close()
    assert seen == [Phase.PREFLIGHT, Phase.CREATING, Phase.RUNNING, Phase.TEARING_DOWN]
    assert [s.phase for s in r.spans] == seen and all(s.end is not None for s in r.spans)


def test_the_lifecycles_steps_in_order():
    names = [s.name for s in actions.steps()]
    assert names == ["Preflight", "NodeImage", "LeasePort", "WriteMirrors", "KindConfig", "ClaimName",
                     "ReserveCapacity", "CreateCluster", "LimitResources", "LoadImages", "LoadFromPodman", "ConnectAPI",
                     "WatchPulls", "PrepareContract", "ApplyManifests", "RunWorkload", "ManifestOutcome",
                     "WaitManifests", "HoldCluster"]
    undone = [s.name for s in reversed(actions.steps()) if s.undo_what]
    # K8S_PORT goes back only after the cluster (whose node binds it) is deleted
    assert undone == ["RunWorkload", "WatchPulls", "ConnectAPI", "CreateCluster", "ClaimName", "LeasePort"]


def test_only_a_name_held_by_someone_else_means_the_create_left_nothing():
    from kindslurm.errors import ClusterExistsError

    create = actions.CreateCluster()
    assert not create.left_something(None, ClusterExistsError("ks-t exists"))  # type: ignore[arg-type]
    assert create.left_something(None, RuntimeError("kind create died"))  # type: ignore[arg-type]
    assert create.left_something(None, Interrupt(signal.SIGTERM))  # type: ignore[arg-type]
    assert not actions.ClaimName().left_something(None, Interrupt(signal.SIGTERM))  # type: ignore[arg-type]
