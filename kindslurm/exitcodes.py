"""Exit codes scripts can rely on.

A run's exit code is the workload script's own (or 0/1 from the manifests'
Jobs and Pods when there is no script). kindslurm's own failures use 64-79 so
they stand apart from common workload codes; signals follow the shell's 128+N.
"""

OK = 0
WORKLOAD_FAILED = 1  # a manifest Job or Pod failed (manifest-only runs)
USAGE = 64  # bad input: nothing was submitted
SCHEDULER = 65  # sbatch/srun/squeue failed or the job vanished
PREFLIGHT = 70  # the node cannot host the cluster (message names the fix)
CLUSTER_CREATE = 71  # kind create failed; partial cluster removed
APPLY = 72  # a manifest could not be applied
WORKLOAD_TIMEOUT = 73  # --timeout expired before the workload finished
TIME_LIMIT = 74  # Slurm's time limit warning arrived; torn down in time
INTERNAL = 75  # unexpected error in kindslurm itself
TEARDOWN_INCOMPLETE = 76  # the workload succeeded but teardown left something behind (kindslurm gc removes it)
REMOTE = 77  # the login node could not be reached or refused us over SSH (host key, key, connection)
BRIDGE = 78  # `kindslurm bridge` could not reach or act on the outer cluster
INTERRUPTED = 130  # SIGINT
CANCELLED = 143  # SIGTERM (scancel)

DESCRIPTIONS: dict[int, str] = {
    OK: "success",
    WORKLOAD_FAILED: "a manifest Job or Pod failed",
    USAGE: "bad input, nothing submitted",
    SCHEDULER: "Slurm command failed",
    PREFLIGHT: "node preflight failed",
    CLUSTER_CREATE: "cluster creation failed",
    APPLY: "manifest apply failed",
    WORKLOAD_TIMEOUT: "workload timeout (--timeout) expired",
    TIME_LIMIT: "Slurm time limit reached",
    INTERNAL: "internal error",
    TEARDOWN_INCOMPLETE: "teardown left resources behind: run `kindslurm gc`",
    REMOTE: "the login node could not be reached over SSH",
    BRIDGE: "the bridge could not reach or act on the outer cluster",
    INTERRUPTED: "interrupted (SIGINT)",
    CANCELLED: "cancelled (SIGTERM)",
}


def of_scheduler_end(state: str | None, exit_code: int | None = None) -> int:
    """A run's code when its job ended without the node side writing one: from
    kindslurm's word for the job's end state (JobState.state; None when the
    job is gone from Slurm) and the exit code Slurm reported for it."""
    if state is None:
        return SCHEDULER
    return {"cancelled": CANCELLED, "timeout": TIME_LIMIT, "completed": OK}.get(state, exit_code or SCHEDULER)
