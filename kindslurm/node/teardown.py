"""The teardown's time budget: how long harvest and delete may take, by exit path.

Slurm's kill arrives on its own schedule (KillWait after a cancel, the limit
itself after the time-limit warning): teardown must be done before it, or the
node containers outlive the job.
"""

from __future__ import annotations

import os
import time
from typing import Mapping

from kindslurm import proc
from kindslurm.node import allocation
from kindslurm.errors import KindslurmError

DELETE_RESERVE = 12.0  # seconds of the teardown budget kept for deleting the cluster (measured 3.5-6 s)
HARVEST_RESERVE = 6.0  # and for saving logs and events after a time-limit warning
MARGIN = 3.0  # seconds before Slurm's next signal that teardown aims to be done
IDLE_BUDGET = 120.0  # teardown budget when no signal set a deadline


class Teardown:
    """The teardown's time budget, set by what ended the run: a time-limit
    warning leaves `warning_seconds` before Slurm signals every process of the
    job, a cancel leaves KillWait before SIGKILL, a normal end the job's own end
    time. Harvest gets what is left after the delete's share is reserved."""

    def __init__(self) -> None:
        self.deadline: float | None = None

    def start(self, seconds: float) -> None:
        end = time.monotonic() + max(5.0, seconds - MARGIN)
        self.deadline = end if self.deadline is None else min(self.deadline, end)

    def start_default(self, environ: Mapping[str, str] = os.environ) -> None:
        if self.deadline is not None:
            return
        seconds = IDLE_BUDGET
        if end := allocation.end_time(environ):
            seconds = min(seconds, end - time.time())
        self.start(seconds)

    def left(self) -> float:
        if self.deadline is None:
            self.start_default()
        assert self.deadline is not None
        return max(0.0, self.deadline - time.monotonic())

    def for_harvest(self) -> float:
        return max(0.0, self.left() - DELETE_RESERVE)

    def for_delete(self) -> float:
        return max(5.0, self.left())


def kill_wait(scontrol: str) -> float:
    """Slurm's KillWait (seconds between SIGTERM and SIGKILL), default 30."""
    try:
        res = proc.run([scontrol, "show", "config"], check=False, timeout=10)
    except KindslurmError:
        return 30.0
    for line in res.stdout.splitlines() if res.ok else []:
        key, _, value = line.partition("=")
        if key.strip() == "KillWait" and value.split() and value.split()[0].isdigit():
            return float(value.split()[0])
    return 30.0
