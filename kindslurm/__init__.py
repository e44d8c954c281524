"""kindslurm: throwaway Kubernetes (kind) clusters inside Slurm jobs.

    import kindslurm
    run = kindslurm.submit("workload.sh", manifests=["job.yaml"], cpus=2)
    code = kindslurm.wait(run)

The names below come from kindslurm.api, imported on first use (PEP 562):
`kindslurm --help` imports this package first, and must not pay for the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Cancelled", "Plan", "RunView", "Submitted", "cancel", "dry_run", "follow_log", "get_scheduler", "list_runs",
    "log_path", "plan", "pod_logs", "run_foreground", "run_here", "status", "submit", "wait",
    "KindslurmError", "SpecError", "SchedulerError",
]

_FROM_ERRORS = frozenset({"KindslurmError", "SpecError", "SchedulerError"})

if TYPE_CHECKING:
    from kindslurm.api import (Cancelled, Plan, RunView, Submitted, cancel, dry_run, follow_log, get_scheduler,
                               list_runs, log_path, plan, pod_logs, run_foreground, run_here, status, submit, wait)
    from kindslurm.errors import KindslurmError, SchedulerError, SpecError


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'kindslurm' has no attribute {name!r}")
    import importlib

    module = importlib.import_module("kindslurm.errors" if name in _FROM_ERRORS else "kindslurm.api")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
