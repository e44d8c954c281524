"""A run's phases: one vocabulary for records, the node lifecycle, `--wait`'s
live status and `ls`/`status`.

A StrEnum, so records keep plain strings in their JSON and old records load.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    # the submit side
    NEW = "new"
    SUBMITTED = "submitted"
    UNKNOWN = "unknown"  # the submission's answer was lost
    # the node side, in the order a run goes through them
    PREFLIGHT = "preflight"
    CREATING = "creating"
    STARTING = "starting"
    APPLYING = "applying"
    RUNNING = "running"
    WAITING = "waiting"
    HELD = "held"  # keep-on-failure: the cluster stays for debugging
    COLLECTING = "collecting"
    TEARING_DOWN = "tearing-down"
    # how a run ended
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    COLLECTED = "collected"  # records of earlier versions: gc removed what the run left

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED, Phase.TIMEOUT, Phase.INTERRUPTED, Phase.COLLECTED})


def is_terminal(phase: str) -> bool:
    return phase in TERMINAL
