"""What the API needs from a batch scheduler, and the job states it reports.

Slurm is the only scheduler; the Protocol is the seam that lets the API be
tested with a fake one and lets Slurm's commands run on another host (the
transport) without the API noticing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

from kindslurm.errors import SchedulerError


@dataclass
class JobState:
    job_id: str
    slurm_state: str
    reason: str = ""
    exit_code: int | None = None

    @property
    def state(self) -> str:
        """kindslurm's word for the Slurm state: pending, running, completed, cancelled, failed, timeout or unknown."""
        from kindslurm.scheduler.slurm import STATES

        word = self.slurm_state.split()[0].rstrip("+") if self.slurm_state else ""
        return STATES.get(word, "unknown")

    @property
    def active(self) -> bool:
        from kindslurm.scheduler.slurm import ACTIVE

        return self.state in ACTIVE or self.state == "unknown"

    @property
    def explanation(self) -> str:
        from kindslurm.scheduler.slurm import PENDING_REASONS

        return PENDING_REASONS.get(self.reason, self.reason if self.reason not in ("None", "") else "")


class StatesUnknown(SchedulerError):
    """squeue failed, so no absence means "gone"; `partial` holds what sacct did say."""

    def __init__(self, message: str, partial: dict[str, JobState]) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass(frozen=True)
class Resources:
    """What a run asks of the scheduler, from its spec: the one source of both
    the batch script's #SBATCH lines and srun's options."""

    job_name: str
    time: str
    warning_seconds: int
    chdir: str
    partition: str | None = None
    cpus: int | None = None
    mem: str | None = None
    gpus: str | None = None
    account: str | None = None
    qos: str | None = None
    extra: tuple[str, ...] = ()


@runtime_checkable
class Scheduler(Protocol):
    def submit(self, script: str, extra: Sequence[str] = ()) -> str:
        """Queue the batch script at `script` (a path on the scheduler's host); returns the job id."""
        ...

    def srun_argv(self, resources: Resources, command: Sequence[str]) -> list[str]:
        """The foreground command that runs `command` as a job of its own."""
        ...

    def overlap_argv(self, job_id: str, command: Sequence[str]) -> list[str]:
        """The foreground command that runs `command` inside the running job `job_id`."""
        ...

    def states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """Each id the scheduler knows; an id left out is gone. Raises
        StatesUnknown when it cannot tell what is gone."""
        ...

    def state(self, job_id: str) -> JobState | None:
        ...

    def cancel(self, job_id: str, step_id: str | None = None) -> None:
        ...

    def partitions(self) -> list[str]:
        ...

    def check_partition(self, partition: str | None) -> None:
        """SpecError for a partition that does not exist: checked before anything is submitted."""
        ...

    def find_by_comment(self, user: str, comment: str) -> str | None:
        """The job tagged with `comment`: finds a submission whose answer was lost."""
        ...
