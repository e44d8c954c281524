"""kindslurm as a library: what the CLI (and the bridge to come) call, and what
the README's `import kindslurm` examples use.

A run is planned first (`plan`: config, placement, spec, partition check),
so every input is refused before anything is written or submitted; then it is
submitted with sbatch, run in the foreground with srun, or run right here.
If submission fails, the job directory and record it created are removed.
Only this module and the scheduler see the transport.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Sequence

from kindslurm import exitcodes, paths, proc, records
from kindslurm.config import Config
from kindslurm.errors import CommandTimeout, KindslurmError, SchedulerError, SpecError
from kindslurm.paths import JobPaths
from kindslurm.phases import Phase
from kindslurm.scheduler.base import JobState, Scheduler, StatesUnknown
from kindslurm.scheduler.slurm import Slurm, resources_of
from kindslurm.transport import where
from kindslurm.transport.where import get_records, is_remote, remote_info, use_host  # noqa: F401  (the API's names)
from kindslurm.transport.base import Transport
from kindslurm.transport.local import LocalTransport

if TYPE_CHECKING:  # the spec and jinja2 only for starting a run: `ls` and `status` skip them
    from kindslurm.spec import JobSpec

__all__ = ["Cancelled", "Plan", "RunView", "Submitted", "cancel", "dry_run", "follow_log", "foreground_plan",
           "get_scheduler", "get_transport", "here_plan", "list_runs", "log_path", "plan", "pod_logs", "run_foreground",
           "run_here", "status", "submit", "submit_plan", "wait"]

# what `plan` takes besides the script: the config keys a command line may set
RUN_OPTIONS = frozenset({"partition", "time", "cpus", "mem", "gpus", "account", "qos", "sbatch_args", "workers",
                         "node_image", "node_image_archive", "extra_mounts", "kind_config", "load_images", "timeout",
                         "keep_on_failure", "template", "k8s_port"})


@dataclass(frozen=True)
class Submitted:
    """A run sbatch accepted: what `wait`, `status` and `cancel` take."""

    job_id: str
    run_id: str
    cluster: str
    job_dir: str


@dataclass
class Plan:
    """A checked run not yet started: `mode` is sbatch, srun, local or inline."""

    mode: str
    spec: JobSpec
    config: Config
    scheduler: Scheduler


@dataclass(frozen=True)
class RunView:
    """A run's record with what Slurm says of its job (None when it cannot be
    asked or has forgotten the job) and, for `status`, its summary."""

    record: records.Record
    job_state: JobState | None = None
    summary: dict[str, Any] | None = None


@dataclass(frozen=True)
class Cancelled:
    """What `cancel` did: `action` is none (the run had ended), job, step or signal."""

    run_id: str
    action: str
    message: str


def get_transport() -> Transport:
    """Where Slurm's commands and the job directories are: this host, or the login node
    over SSH (--host, remote.host). The one place it is chosen (transport/where.py)."""
    return where.transport()


def get_scheduler(cfg: Config | None = None) -> Scheduler:
    """Slurm, through the transport for wherever its commands run."""
    from kindslurm import config

    return Slurm(get_transport(), {} if is_remote() else (cfg or config.load()).tools)  # remote: the login node's


def placement(force_submit: bool = False) -> str:
    """sbatch from outside an allocation; inside one, right here on a node of
    it, or through srun from a host that is not one of its nodes (an salloc
    shell on a login node), never booting on the login node."""
    from kindslurm.node import allocation

    where = None if force_submit else allocation.placement()
    if where == "srun":
        alloc = allocation.current()
        assert alloc is not None
        import socket

        print(f"kindslurm: {socket.gethostname()} is not a node of job {alloc.job_id} "
              f"({', '.join(alloc.nodes) or 'no node list'}): running it there with srun", file=sys.stderr)
    return where or "sbatch"


def plan(script: str | None = None, script_args: Sequence[str] = (), *, manifests: Sequence[str] = (),
         name: str | None = None, srun: bool = False, local: bool = False, submit: bool = False,
         scheduler: Scheduler | None = None, run_id: str | None = None, hold: bool = False, **options: Any) -> Plan:
    """Check everything and choose how the run starts, submitting nothing.

    `srun` runs it in the foreground, `local` on this host without Slurm,
    `submit` forces sbatch even inside an allocation; by default it is sbatch
    outside an allocation and right here inside one; `hold` makes an `up` cluster. `options` are the config
    keys (RUN_OPTIONS) this run overrides, e.g. cpus=2, time="30".
    Raises SpecError for bad input.
    """
    from kindslurm import config
    from kindslurm import spec as specmod
    from kindslurm.node import allocation

    if srun and local:
        raise SpecError("--srun and --local exclude each other: pick one")
    unknown = sorted(set(options) - RUN_OPTIONS)
    if unknown:
        raise SpecError(f"unknown run option {unknown[0]!r}: use one of {', '.join(sorted(RUN_OPTIONS))}")
    overrides = {k: list(v) if k in ("sbatch_args", "extra_mounts", "load_images") and v is not None else v
                 for k, v in options.items()}
    if overrides.get("k8s_port") is None:
        from kindslurm import k8sport

        overrides["k8s_port"] = k8sport.from_environment(os.environ)
    cfg = config.load(overrides)
    mode = "local" if local else "srun" if srun else placement(force_submit=submit)
    spec = specmod.build(cfg, mode=mode, script=script, script_args=list(script_args), manifests=list(manifests),
                         name=name, run_id=run_id, hold=hold)
    spec.in_allocation = mode in ("inline", "srun") and allocation.current() is not None
    sched = scheduler or get_scheduler(cfg)
    if mode in ("sbatch", "srun"):
        sched.check_partition(spec.partition)
    return Plan(mode, spec, cfg, sched)


def dry_run(p: Plan) -> str:
    """What `--dry-run` prints: the srun command line, or the batch script."""
    from kindslurm.scheduler import render

    if p.mode == "srun":
        return shlex.join(srun_command(p.spec, p.config, p.scheduler)) + "\n"
    return render.render(p.spec, p.config.template, render.kindslurm_command(p.config.kindslurm_command))


def prepare(spec: JobSpec, cfg: Config) -> tuple[JobPaths, JobSpec]:
    """Create the job directory with copies of the inputs, the spec and the
    rendered batch script; returns the spec that points at the copies."""
    from kindslurm.scheduler import render
    from kindslurm.spec import stage_inputs

    job = JobPaths(Path(spec.job_dir))
    script = render.render(spec, cfg.template, render.kindslurm_command(cfg.kindslurm_command))
    paths.ensure_private_dir(job.root)
    spec = stage_inputs(spec)
    job.spec.write_text(spec.to_json())
    job.batch_script.write_text(script)
    job.batch_script.chmod(0o700)
    records.save(records.Record(run_id=spec.run_id, mode=spec.mode, user=spec.user, job_dir=spec.job_dir,
                                prefix=spec.prefix, phase=Phase.SUBMITTED, interactive=spec.hold))
    return job, spec


def _undo(spec: JobSpec) -> None:
    records.remove(spec.run_id)
    shutil.rmtree(spec.job_dir, ignore_errors=True)


def submit_comment(run_id: str) -> str:
    """Tags the job so a submission whose answer was lost can be found again."""
    return f"kindslurm-run:{run_id}"


def submit_batch(spec: JobSpec, cfg: Config, slurm: Scheduler) -> str:
    job, spec = prepare(spec, cfg)
    try:
        job_id = slurm.submit(str(job.batch_script), extra=[f"--comment={submit_comment(spec.run_id)}"])
    except CommandTimeout:
        # slurmctld may have queued the job all the same: never drop its directory then
        found = slurm.find_by_comment(spec.user, submit_comment(spec.run_id))
        if found is None:
            records.update(spec.run_id, phase=Phase.UNKNOWN, reason="sbatch did not answer")
            raise SchedulerError(
                f"sbatch did not answer and no job tagged {submit_comment(spec.run_id)} is queued yet: "
                f"check `squeue --me` in a minute; the job directory {spec.job_dir} was kept"
            ) from None
        job_id = found
    except BaseException:
        _undo(spec)
        raise
    records.update(spec.run_id, job_id=job_id)
    return job_id


def srun_command(spec: JobSpec, cfg: Config, slurm: Scheduler) -> list[str]:
    """The foreground equivalent of the batch script (srun reads no #SBATCH lines)."""
    from kindslurm.scheduler import render

    command = [*render.kindslurm_command(cfg.kindslurm_command), "node-run", str(JobPaths(Path(spec.job_dir)).spec)]
    return slurm.srun_argv(resources_of(spec), command)


def submit_plan(p: Plan) -> Submitted:
    job_id = submit_batch(p.spec, p.config, p.scheduler)
    return Submitted(job_id, p.spec.run_id, f"{p.spec.prefix}-{job_id}", p.spec.job_dir)


def foreground_plan(p: Plan) -> int:
    """srun in the foreground; the run's own exit code once it ends."""
    job, spec = prepare(p.spec, p.config)
    argv = srun_command(spec, p.config, p.scheduler)
    try:
        rc = proc.foreground(argv)
    except KindslurmError:
        _undo(spec)
        raise
    try:
        return int(job.exitcode.read_text().strip())
    except (OSError, ValueError):
        records.update(spec.run_id, phase=Phase.FAILED, reason=f"srun exited {rc} before the node side finished")
        return rc if rc else exitcodes.SCHEDULER


def here_plan(p: Plan) -> int:
    """--local, or inside an allocation: the node side in this very process."""
    from kindslurm.node.lifecycle import Lifecycle

    _, spec = prepare(p.spec, p.config)
    return Lifecycle(spec).run()


def submit(script: str | None = None, script_args: Sequence[str] = (), *, manifests: Sequence[str] = (),
           name: str | None = None, **options: Any) -> Submitted:
    """Submit a run with sbatch (even inside an allocation) and return at once.

    `kindslurm.submit("workload.sh", manifests=["job.yaml"], cpus=2)`; options
    are those of `plan`. Raises SpecError before submitting anything on bad input.
    """
    return submit_plan(plan(script, script_args, manifests=manifests, name=name, submit=True, **options))


def run_foreground(script: str | None = None, script_args: Sequence[str] = (), *, manifests: Sequence[str] = (),
                   name: str | None = None, **options: Any) -> int:
    """Run with srun and block until it ends (`kindslurm run --srun`); returns its exit code."""
    return foreground_plan(plan(script, script_args, manifests=manifests, name=name, srun=True, **options))


def run_here(script: str | None = None, script_args: Sequence[str] = (), *, manifests: Sequence[str] = (),
             name: str | None = None, **options: Any) -> int:
    """Run on this host without Slurm (`kindslurm run --local`); returns its exit code.
    The host must be able to boot kind clusters (`kindslurm doctor`)."""
    return here_plan(plan(script, script_args, manifests=manifests, name=name, local=True, **options))


def find(ref: str) -> records.Record:
    """A run by run id, job id or cluster name; KindslurmError (USAGE) if there is none."""
    rec = records.find(ref, get_records())  # AmbiguousRef (USAGE) lists the candidates
    if rec is None:
        on = f" on {remote_info().host}" if is_remote() else ""
        raise KindslurmError(f"no run {ref!r}{on}: see `kindslurm ls -a` for your runs", exit_code=exitcodes.USAGE)
    return rec


def wait(run: Submitted | str, *, scheduler: Scheduler | None = None, stream: bool = True,
         out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Block until a submitted run's job ends, streaming its job output (to
    `out`) and its status (to `err`); returns the run's exit code."""
    from kindslurm.scheduler.watch import wait_for_job

    if isinstance(run, Submitted):
        run_id, job_id, job_dir = run.run_id, run.job_id, run.job_dir
    else:
        rec = find(run)
        if not rec.job_id:
            raise KindslurmError(f"run {rec.run_id} has no Slurm job to wait for ({rec.mode})", exit_code=exitcodes.USAGE)
        run_id, job_id, job_dir = rec.run_id, rec.job_id, rec.job_dir
    sched = scheduler or get_scheduler()
    return wait_for_job(sched, run_id, job_id, out=out or sys.stdout, err=err or sys.stderr,
                        stream=JobPaths(Path(job_dir)).slurm_out if stream else None, transport=get_transport(),
                        source=get_records())


def _job_states(recs: list[records.Record], sched: Scheduler | None) -> dict[str, JobState]:
    """What Slurm says of these runs' jobs, as much as it can say: never an error."""
    ids = [r.job_id for r in recs if r.job_id]
    if not ids:
        return {}
    try:
        return (sched or get_scheduler()).states(ids)
    except StatesUnknown as e:
        return e.partial
    except KindslurmError:
        return {}


def list_runs(include_finished: bool = False, *, scheduler: Scheduler | None = None) -> list[RunView]:
    """Your runs, oldest first, with their jobs' Slurm states (asked for live runs only)."""
    recs = get_records().all()
    states = _job_states([r for r in recs if r.live], scheduler)
    return [RunView(r, states.get(r.job_id or "")) for r in recs if include_finished or r.live]


def status(run: Submitted | str, *, scheduler: Scheduler | None = None) -> RunView:
    """One run by run id, job id or cluster name, with its summary once it has ended."""
    rec = find(run.run_id if isinstance(run, Submitted) else run)
    js = _job_states([rec], scheduler).get(rec.job_id or "") if rec.job_id else None
    import json

    try:
        summary = json.loads(get_transport().read_text(str(JobPaths(Path(rec.job_dir)).summary)))
    except (OSError, ValueError):
        summary = None
    return RunView(rec, js, summary)


def cancel(run: Submitted | str, *, scheduler: Scheduler | None = None) -> Cancelled:
    """Stop one run and nothing else: an inline or srun run shares its
    allocation with whatever else the user runs there, so only sbatch runs and
    srun runs that made their own job are cancelled as whole jobs."""
    import os
    import signal
    import socket

    rec = find(run.run_id if isinstance(run, Submitted) else run)
    if not rec.live:
        return Cancelled(rec.run_id, "none", f"run {rec.run_id} already ended ({rec.phase})")
    cluster = rec.cluster or "(not created yet)"
    if rec.mode == "sbatch":
        if not rec.job_id:
            raise KindslurmError(f"run {rec.run_id} has no job id yet (being submitted): try again in a moment")
        (scheduler or get_scheduler()).cancel(rec.job_id)
        return Cancelled(rec.run_id, "job", f"cancelled job {rec.job_id}; it tears down cluster {cluster}")
    if rec.mode != "local" and rec.job_id and rec.step_id:
        (scheduler or get_scheduler()).cancel(rec.job_id, rec.step_id)
        return Cancelled(rec.run_id, "step",
                         f"cancelled step {rec.job_id}.{rec.step_id}; it tears down cluster {cluster}")
    if rec.mode == "srun":
        if not rec.job_id:
            raise KindslurmError(f"run {rec.run_id} is still waiting for srun to start it: press Ctrl-C where it runs")
        (scheduler or get_scheduler()).cancel(rec.job_id)
        return Cancelled(rec.run_id, "job", f"cancelled job {rec.job_id}; it tears down cluster {cluster}")
    if rec.node and rec.node != socket.gethostname():
        raise KindslurmError(f"run {rec.run_id} runs on node {rec.node}: run `kindslurm cancel {rec.run_id}` there")
    if proc.alive(rec.pid, rec.pid_start):
        assert rec.pid
        os.kill(rec.pid, signal.SIGTERM)
        return Cancelled(rec.run_id, "signal", f"sent SIGTERM to {rec.mode} run {rec.run_id} (pid {rec.pid}); "
                                               f"it tears down cluster {cluster}")
    raise KindslurmError(f"run {rec.run_id} has no live process: `kindslurm gc` removes what it left")


def log_path(run: Submitted | str, *, job_output: bool = False) -> Path:
    """The run's workload output, or with `job_output` its whole job output (kindslurm's messages too)."""
    job = JobPaths(Path(find(run.run_id if isinstance(run, Submitted) else run).job_dir))
    return job.slurm_out if job_output else job.workload_log


def pod_logs(run: Submitted | str, pod: str) -> list[Path]:
    """The saved logs of a pod, NAMESPACE/POD[/CONTAINER] or POD; KindslurmError naming the saved ones if none fit."""
    job = JobPaths(Path(find(run.run_id if isinstance(run, Submitted) else run).job_dir))
    parts = pod.split("/")
    matches = sorted(Path(m) for m in get_transport().list_dir(str(job.pod_logs), "*/*/*.log"))
    chosen = [m for m in matches if pod in ("/".join(m.with_suffix("").parts[-len(parts):]), m.parent.name,
                                            f"{m.parent.parent.name}/{m.parent.name}")]
    if not chosen:
        raise KindslurmError(f"no saved log for pod {pod!r} in {job.pod_logs}: pods saved are "
                             + ", ".join(sorted({f'{m.parent.parent.name}/{m.parent.name}' for m in matches})[:20]),
                             exit_code=exitcodes.USAGE)
    return chosen


def follow_log(run: Submitted | str, out: IO[str], *, job_output: bool = False, interval: float = 1.0) -> None:
    """Copy the run's output to `out` as it grows, until the run ends."""
    rec = find(run.run_id if isinstance(run, Submitted) else run)
    path = log_path(rec.run_id, job_output=job_output)

    source = get_records()

    def ended() -> bool:
        cur = source.load(rec.run_id)
        return cur is None or not cur.live

    for text in get_transport().follow(str(path), done=ended, interval=interval):
        out.write(text)
        out.flush()
