"""The Slurm scheduler: command lines for sbatch/srun/squeue/sacct/scancel and
parsing of what they print.

squeue forgets a job MinJobAge seconds after it ends and sacct needs
accounting, so state falls back from squeue to sacct, and the job's own exit
code is kept in its job directory by the node side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from kindslurm import proc
from kindslurm.errors import CommandError, SchedulerError, SpecError

# Slurm state -> kindslurm's view
STATES = {
    "PENDING": "pending",
    "CONFIGURING": "pending",
    "REQUEUED": "pending",
    "REQUEUE_HOLD": "pending",
    "REQUEUE_FED": "pending",
    "RESV_DEL_HOLD": "pending",
    "RUNNING": "running",
    "COMPLETING": "running",
    "SUSPENDED": "running",
    "STAGE_OUT": "running",
    "SIGNALING": "running",
    "RESIZING": "running",
    "STOPPED": "running",
    "COMPLETED": "completed",
    "CANCELLED": "cancelled",
    "FAILED": "failed",
    "TIMEOUT": "timeout",
    "NODE_FAIL": "failed",
    "PREEMPTED": "cancelled",
    "BOOT_FAIL": "failed",
    "DEADLINE": "failed",
    "OUT_OF_MEMORY": "failed",
    "SPECIAL_EXIT": "failed",
    "REVOKED": "cancelled",
}
ACTIVE = ("pending", "running")

PENDING_REASONS = {
    "Priority": "waiting behind higher-priority jobs",
    "Resources": "waiting for free resources",
    "ReqNodeNotAvail": "the requested nodes are unavailable (down, drained or reserved)",
    "PartitionTimeLimit": "--time exceeds the partition's limit: lower --time",
    "QOSMaxWallDurationPerJobLimit": "--time exceeds the QOS limit: lower --time",
    "AssocGrpCPULimit": "your account's CPU limit is reached",
    "JobHeldUser": "held by you: `scontrol release JOBID`",
    "JobHeldAdmin": "held by an administrator",
    "BeginTime": "waiting for its begin time",
    "Dependency": "waiting for a dependency",
    "PartitionDown": "the partition is down",
    "PartitionNodeLimit": "more nodes than the partition allows",
}


@dataclass
class JobState:
    job_id: str
    slurm_state: str
    reason: str = ""
    exit_code: int | None = None

    @property
    def state(self) -> str:
        word = self.slurm_state.split()[0].rstrip("+") if self.slurm_state else ""
        return STATES.get(word, "unknown")

    @property
    def active(self) -> bool:
        return self.state in ACTIVE or self.state == "unknown"

    @property
    def explanation(self) -> str:
        return PENDING_REASONS.get(self.reason, self.reason if self.reason not in ("None", "") else "")


def parse_parsable(out: str) -> str:
    """`sbatch --parsable` prints `jobid[;cluster]`."""
    line = out.strip().splitlines()[-1] if out.strip() else ""
    job_id = line.split(";")[0].strip()
    if not job_id.isdigit():
        raise SchedulerError(f"sbatch printed {out.strip()!r}, not a job id")
    return job_id


def parse_squeue(out: str) -> dict[str, JobState]:
    states: dict[str, JobState] = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            states[parts[0]] = JobState(parts[0], parts[1], parts[2] if len(parts) > 2 else "")
    return states


def parse_sacct(out: str) -> dict[str, JobState]:
    states: dict[str, JobState] = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 3 and parts[0] and "." not in parts[0]:
            code = parts[2].split(":")[0]
            states[parts[0]] = JobState(parts[0], parts[1], "", int(code) if code.isdigit() else None)
    return states


class Slurm:
    def __init__(self, tools: dict[str, str] | None = None) -> None:
        self.tools = tools or {}

    def _t(self, name: str) -> str:
        return self.tools.get(name) or name

    def partitions(self) -> list[str]:
        res = proc.run([self._t("sinfo"), "-h", "-o", "%R"], check=False, timeout=30)
        if not res.ok:
            raise SchedulerError(f"sinfo failed ({res.stderr.strip() or res.returncode}): is Slurm reachable from here?")
        return sorted({p.strip().rstrip("*") for p in res.stdout.split() if p.strip()})

    def check_partition(self, partition: str | None) -> None:
        if not partition:
            return
        known = self.partitions()
        if partition not in known:
            raise SpecError(f"unknown partition {partition!r}: use one of {', '.join(known) or '(none)'} (see `sinfo`)")

    def submit(self, script: str, extra: Sequence[str] = ()) -> str:
        try:
            res = proc.run([self._t("sbatch"), "--parsable", *extra, script], timeout=60)
        except CommandError as e:
            raise SchedulerError(f"sbatch refused the job: {e.output.strip().splitlines()[-1] if e.output.strip() else e}") from None
        return parse_parsable(res.stdout)

    def srun_argv(self, *, job_name: str, time: str, warning_seconds: int, output_dir: str, partition: str | None,
                  cpus: int | None, mem: str | None, gpus: str | None, account: str | None, qos: str | None,
                  extra: Sequence[str], command: Sequence[str]) -> list[str]:
        argv = [self._t("srun"), f"--job-name={job_name}", f"--time={time}", "--nodes=1", "--ntasks=1",
                f"--signal=USR1@{warning_seconds}", f"--chdir={output_dir}"]
        for flag, value in (("--partition", partition), ("--cpus-per-task", cpus), ("--mem", mem),
                            ("--gpus", gpus), ("--account", account), ("--qos", qos)):
            if value:
                argv.append(f"{flag}={value}")
        return [*argv, *extra, *command]

    def states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        ids = [j for j in job_ids if j]
        if not ids:
            return {}
        res = proc.run([self._t("squeue"), "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%r"], check=False, timeout=30)
        found = parse_squeue(res.stdout) if res.ok else {}
        missing = [j for j in ids if j not in found]
        if missing:
            acct = proc.run([self._t("sacct"), "-n", "-P", "-X", "-j", ",".join(missing), "-o", "JobID,State,ExitCode"],
                            check=False, timeout=30)
            if acct.ok:
                found.update(parse_sacct(acct.stdout))
        if not res.ok and not found:
            if "Invalid job id" not in res.stderr:
                raise SchedulerError(f"squeue failed: {res.stderr.strip() or res.returncode}")
        return found

    def state(self, job_id: str) -> JobState | None:
        return self.states([job_id]).get(job_id)

    def cancel(self, job_id: str) -> None:
        proc.run([self._t("scancel"), job_id], timeout=30)
