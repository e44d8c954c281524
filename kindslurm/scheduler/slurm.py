"""The Slurm scheduler: command lines for sbatch/srun/squeue/sacct/scancel and
parsing of what they print.

squeue forgets a job MinJobAge seconds after it ends and sacct needs
accounting, so state falls back from squeue to sacct, and the job's own exit
code is kept in its job directory by the node side. Only a working squeue can
say a job is gone: when it fails, sacct's answers are kept for display but an
id it does not mention proves nothing (StatesUnknown).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

from kindslurm import proc
from kindslurm.errors import CommandError, KindslurmError, SchedulerError, SpecError
from kindslurm.scheduler.base import JobState, Resources, StatesUnknown
from kindslurm.transport.base import Transport

if TYPE_CHECKING:
    from kindslurm.spec import JobSpec

__all__ = ["ACTIVE", "PENDING_REASONS", "STATES", "JobState", "Resources", "Slurm", "StatesUnknown", "long_options",
           "parse_parsable", "parse_sacct", "parse_squeue", "resources_of"]

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

_WHAT = {"job-name": "job name", "chdir": "directory"}

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


def parse_parsable(out: str) -> str:
    """`sbatch --parsable` prints `jobid[;cluster]`."""
    line = out.strip().splitlines()[-1] if out.strip() else ""
    job_id = line.split(";")[0].strip()
    if not job_id.isdigit():
        raise SchedulerError(f"sbatch printed {out.strip()!r}, not a job id")
    return job_id


_TASK = re.compile(r"[_+]")


def _add(states: dict[str, JobState], key: str, js: JobState) -> None:
    """Array tasks (`123_4`, `123_[5-9]`) and het-job parts (`123+1`) are also
    filed under their base id; one active task keeps the base active."""
    if key and (key not in states or (js.active and not states[key].active)):
        states[key] = replace(js, job_id=key)


def _file(states: dict[str, JobState], shown: str, raw: str, js: JobState) -> None:
    _add(states, shown, js)
    base = _TASK.split(shown, maxsplit=1)[0]
    if base != shown and base.isdigit():
        _add(states, base, js)
    if raw.isdigit() and raw != shown:
        _add(states, raw, js)


def parse_squeue(out: str) -> dict[str, JobState]:
    """Lines `%i|%T|%r[|%A]`: the shown id, state, reason and the raw job id."""
    states: dict[str, JobState] = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0] and "." not in parts[0]:
            _file(states, parts[0], parts[3].strip() if len(parts) > 3 else "",
                  JobState(parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
    return states


def parse_sacct(out: str) -> dict[str, JobState]:
    """Lines `JobID|State|ExitCode[|JobIDRaw]`; steps (`123.batch`) are skipped."""
    states: dict[str, JobState] = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 3 and parts[0] and "." not in parts[0]:
            code = parts[2].split(":")[0]
            _file(states, parts[0], parts[3].strip() if len(parts) > 3 else "",
                  JobState(parts[0], parts[1], "", int(code) if code.isdigit() else None))
    return states


def resources_of(spec: JobSpec) -> Resources:
    return Resources(job_name=f"kindslurm-{spec.prefix}", time=spec.time, warning_seconds=spec.warning_seconds,
                     chdir=spec.submit_dir, partition=spec.partition, cpus=spec.cpus, mem=spec.mem, gpus=spec.gpus,
                     account=spec.account, qos=spec.qos, extra=tuple(spec.sbatch_args))


def long_options(res: Resources, *, output: str | None = None) -> list[tuple[str, str]]:
    """Slurm's long options for a run, as (name, value): with `output`, the
    batch script's #SBATCH lines (the signal goes to the batch shell, B:),
    without it srun's. The user's own `extra` options are not included."""
    if output is not None:
        opts = [("job-name", res.job_name), ("output", output), ("chdir", res.chdir), ("time", res.time),
                ("nodes", "1"), ("signal", f"B:USR1@{int(res.warning_seconds)}")]
    else:
        opts = [("job-name", res.job_name), ("time", res.time), ("nodes", "1"), ("ntasks", "1"),
                ("signal", f"USR1@{int(res.warning_seconds)}"), ("chdir", res.chdir)]
    for name, value in (("partition", res.partition), ("cpus-per-task", res.cpus), ("mem", res.mem),
                        ("gpus", res.gpus), ("account", res.account), ("qos", res.qos)):
        if value:
            opts.append((name, str(int(value)) if isinstance(value, int) else value))
    return opts


class Slurm:
    """Slurm's client commands, run wherever `transport` runs them."""

    def __init__(self, transport: Transport, tools: dict[str, str] | None = None) -> None:
        self.transport = transport
        self.tools = tools or {}

    def _t(self, name: str) -> str:
        return self.tools.get(name) or name

    def _ask(self, argv: list[str]) -> proc.Result:
        """A query that did not run (missing tool, timeout) is a failed query, not a crash."""
        try:
            return self.transport.run(argv, check=False, timeout=30)
        except KindslurmError as e:  # CommandTimeout included
            return proc.Result(argv, 127, "", str(e))

    def partitions(self) -> list[str]:
        res = self.transport.run([self._t("sinfo"), "-h", "-o", "%R"], check=False, timeout=30)
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
            res = self.transport.run([self._t("sbatch"), "--parsable", *extra, script], timeout=60)
        except CommandError as e:
            raise SchedulerError(f"sbatch refused the job: {e.output.strip().splitlines()[-1] if e.output.strip() else e}") from None
        return parse_parsable(res.stdout)

    def find_by_comment(self, user: str, comment: str) -> str | None:
        """The job tagged with `comment`: finds a submission whose answer was lost."""
        res = self._ask([self._t("squeue"), "-h", "-u", user, "-t", "all", "-o", "%i|%k"])
        for line in res.stdout.splitlines() if res.ok else []:
            job_id, _, tag = line.partition("|")
            if tag.strip() == comment:
                return job_id.strip()
        return None

    def srun_argv(self, resources: Resources, command: Sequence[str]) -> list[str]:
        options = long_options(resources)
        extra = resources.extra
        for what, value in (*((_WHAT.get(name, name), value) for name, value in options),
                            *(("option", e) for e in extra), *(("command word", c) for c in command)):
            if value and "\0" in str(value):
                raise SpecError(f"{what} {value!r} contains a NUL byte, which no program can be given: remove it")
        bad = next((e for e in extra if not e.startswith("-") or e in ("-", "--")), None)
        if bad is not None:
            raise SpecError(f"srun option {bad!r} is not an option: give each option with its value as one entry, "
                            f"e.g. --constraint=gpu")
        return [self._t("srun"), *(f"--{name}={value}" for name, value in options), *extra, "--", *command]

    def overlap_argv(self, job_id: str, command: Sequence[str]) -> list[str]:
        """`command` as one more task inside a running one-node job, beside what
        runs there (a tunnel's relay to an interactive cluster's API server).
        --unbuffered: slurmstepd otherwise holds output back until a newline,
        which a binary stream (TLS) may never send."""
        return [self._t("srun"), f"--jobid={job_id}", "--overlap", "--nodes=1", "--ntasks=1", "--quiet",
                "--unbuffered", "--", *command]

    def states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """The state of each id Slurm knows; an id left out is gone. Raises
        StatesUnknown when squeue fails: then nobody can tell what is gone."""
        ids = list(dict.fromkeys(j for j in job_ids if j))
        if not ids:
            return {}
        res = self._ask([self._t("squeue"), "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%r|%A"])
        # One unknown id alone makes squeue exit 1 "Invalid job id specified": an answer.
        answered = res.ok or "Invalid job id" in res.stderr
        shown = parse_squeue(res.stdout) if res.ok else {}
        found = {j: shown[j] for j in ids if j in shown}
        missing = [j for j in ids if j not in found]
        if missing:
            acct = self._ask([self._t("sacct"), "-n", "-P", "-X", "-j", ",".join(missing), "-o", "JobID,State,ExitCode,JobIDRaw"])
            if acct.ok:
                told = parse_sacct(acct.stdout)
                found.update({j: told[j] for j in missing if j in told})
        if not answered:
            raise StatesUnknown(f"squeue failed: {res.stderr.strip() or f'exit {res.returncode}'}", found)
        return found

    def state(self, job_id: str) -> JobState | None:
        """One job's state; with squeue down, sacct's word for this very job is taken."""
        try:
            return self.states([job_id]).get(job_id)
        except StatesUnknown as e:
            if job_id in e.partial:
                return e.partial[job_id]
            raise

    def cancel(self, job_id: str, step_id: str | None = None) -> None:
        self.transport.run([self._t("scancel"), f"{job_id}.{step_id}" if step_id else job_id], timeout=30)
