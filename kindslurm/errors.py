"""The project's errors, each carrying the exit code it maps to.

Every error a user can cause or fix has a one-line message naming the problem
and the fix; the CLI prints it without a traceback.
"""

from __future__ import annotations

from kindslurm import exitcodes


class KindslurmError(Exception):
    exit_code = exitcodes.INTERNAL
    retryable = False  # whether the same call may succeed later (a timeout, a full node)

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class SpecError(KindslurmError):
    """Bad input: caught before anything is submitted or booted."""

    exit_code = exitcodes.USAGE


class SchedulerError(KindslurmError):
    exit_code = exitcodes.SCHEDULER


class PreflightError(KindslurmError):
    """The node cannot host the cluster as it is (cgroup v1, a missing tool): retrying does not help."""

    exit_code = exitcodes.PREFLIGHT


class NodeFullError(PreflightError):
    """The node could host the cluster but is busy with others: the same run may fit later."""

    retryable = True


class ClusterCreateError(KindslurmError):
    exit_code = exitcodes.CLUSTER_CREATE


class ClusterExistsError(ClusterCreateError):
    """The name is taken on this node: nothing was created, so nothing may be deleted."""


class ApplyError(KindslurmError):
    exit_code = exitcodes.APPLY


class CommandError(KindslurmError):
    """A tool we run failed; keeps its command line and output for the logs."""

    def __init__(self, argv: list[str], returncode: int, output: str) -> None:
        tail = output.strip().splitlines()[-1:] or [""]
        super().__init__(f"`{' '.join(argv)}` exited {returncode}: {tail[0]}")
        self.argv = argv
        self.returncode = returncode
        self.output = output


class CommandTimeout(KindslurmError):
    """A tool did not finish in time and was killed: its outcome is unknown."""

    retryable = True

    def __init__(self, argv: list[str], timeout: float) -> None:
        super().__init__(f"`{' '.join(argv)}` did not finish in {timeout:.0f}s and was stopped: retry, or check the tool")
        self.argv = argv
        self.timeout = timeout


class RemoteError(KindslurmError):
    """The login node could not be reached, or refused us, over SSH: the message names the fix."""

    exit_code = exitcodes.REMOTE


class HostKeyError(RemoteError):
    """An unknown or changed host key: connecting again changes nothing until a person decides."""


class SSHAuthError(RemoteError):
    """The login node refused every key offered."""


class Unreachable(RemoteError):
    """No connection (refused, timed out, dropped and not back): the host may come back."""

    retryable = True


class ConnectionLost(CommandTimeout):
    """The connection dropped while a command that must not run twice was running:
    whether it acted is unknown, so it is not sent again (sbatch is looked up instead)."""

    def __init__(self, argv: list[str], host: str) -> None:
        KindslurmError.__init__(self, f"the connection to {host} dropped while `{' '.join(argv)}` ran: "
                                      f"whether it acted is unknown, so it was not run again")
        self.argv = argv
        self.timeout = 0.0


class BridgeError(KindslurmError):
    """The bridge cannot act on the outer cluster (its API refused, a node held by another bridge)."""

    exit_code = exitcodes.BRIDGE


class OuterAPIError(BridgeError):
    """The outer API server did not answer or failed: the same call may work later."""

    retryable = True
    status: int | None = None  # the HTTP status, when the server answered


class PodRefused(SpecError):
    """A pod that cannot become a run as written (a bad annotation, a hostPath the admin does not
    allow): the pod ends Failed with `reason` and the message, retrying cannot help."""

    def __init__(self, message: str, reason: str = "InvalidPodSpec") -> None:
        super().__init__(message)
        self.reason = reason


class PodNotReady(KindslurmError):
    """A pod that cannot become a run yet (its ConfigMap does not exist yet, or it asks more than
    the partition's largest node): it stays Pending with `reason` and is tried again."""

    retryable = True

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
