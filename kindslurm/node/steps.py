"""A run as an ordered list of steps, each with the undo of what it may leave
behind: run in order, undone in reverse whatever ends the run (kind builds a
cluster from "actions" the same way).

The rule for a step that fails: its undo still runs once its `do` has
started, because a create cut short by an error or a signal may have left
half a cluster. A step whose failed `do` provably left nothing says so in
`left_something` (a name someone else holds must never be given back by us).
Every undo is best-effort: one that fails is reported and the others still
run, so a broken log harvest never keeps the cluster alive.

A throwaway cluster is undone at every end, success included: `undo` is not
an error path but the second half of every run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Generic, Sequence, TypeVar

from kindslurm.phases import Phase

C = TypeVar("C")


class Decided(Exception):
    """A step settled the run's outcome early (the workload's timeout expired):
    the steps after it are skipped, and that is not a failure."""


class Step(Generic[C]):
    """One action of a run. `phase` is what records and the summary show while
    `do` runs; `undo_phase` while `undo` runs (None: it stays in the current one).

    `undo_what` names the undo in "could not <what>" warnings; None means the
    step leaves nothing to undo (what it made goes with the cluster).
    `before_hold` undos run before a retain hold: the hold keeps the cluster
    for debugging, not the workload's process.
    """

    phase: Phase
    undo_phase: Phase | None = None
    undo_what: str | None = None
    before_hold: bool = False

    def wanted(self, ctx: C) -> bool:
        """Decided when the step's turn comes, so it can depend on earlier steps."""
        return True

    def do(self, ctx: C) -> None:
        raise NotImplementedError

    def undo(self, ctx: C) -> None:
        pass

    def left_something(self, ctx: C, error: BaseException) -> bool:
        """Whether `do`, failing with `error`, may have left something for `undo`."""
        return True

    @property
    def name(self) -> str:
        return type(self).__name__


@dataclass
class Span:
    """One phase as the summary lists it."""

    phase: Phase
    start: float
    end: float | None = None


class Runner(Generic[C]):
    """Runs the steps against a context, remembering which started, and undoes
    exactly those. `on_phase` hears every phase entered (the state record);
    `warn` every undo that failed."""

    def __init__(self, steps: Sequence[Step[C]], ctx: C, *, warn: Callable[[str, Exception], None],
                 on_phase: Callable[[Phase], None] | None = None) -> None:
        self.steps = list(steps)
        self.ctx = ctx
        self.warn = warn
        self.on_phase = on_phase
        self.started: list[Step[C]] = []
        self.undone: list[Step[C]] = []
        self.spans: list[Span] = []

    def has_started(self, kind: type[Step[C]]) -> bool:
        return any(isinstance(s, kind) for s in self.started)

    def enter(self, phase: Phase) -> None:
        if self.spans and self.spans[-1].end is None and self.spans[-1].phase == phase:
            return
        self.close()
        self.spans.append(Span(phase, time.time()))
        if self.on_phase is not None:
            self.on_phase(phase)

    def close(self, now: float | None = None) -> None:
        if self.spans and self.spans[-1].end is None:
            self.spans[-1].end = time.time() if now is None else now

    def run(self) -> None:
        """Raises what a step raised (an Interrupt too); `undo` is the caller's to call."""
        for step in self.steps:
            if not step.wanted(self.ctx):
                continue
            self.enter(step.phase)
            try:
                self.started.append(step)  # inside the try: a signal between the two still reaches the check
                step.do(self.ctx)
            except Decided:
                return
            except BaseException as e:
                if step in self.started and not step.left_something(self.ctx, e):
                    self.started.remove(step)
                raise

    def undo(self, hold: Callable[[], None] | None = None) -> None:
        """Undo the started steps in reverse; with `hold` (retain), call it once
        before the first undo that is not `before_hold`."""
        for step in reversed(self.started):
            if step in self.undone:
                continue
            self.undone.append(step)
            if step.undo_what is None:
                continue
            if hold is not None and not step.before_hold:
                self._best_effort("keep the cluster for debugging", hold)
                hold = None
            if step.undo_phase is not None:
                self.enter(step.undo_phase)
            self._best_effort(step.undo_what, lambda: step.undo(self.ctx))

    def _best_effort(self, what: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as e:
            self.warn(what, e)
