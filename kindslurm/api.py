"""The submit side of `kindslurm run`: validate, write the job directory, then
hand the run to sbatch, srun, or the node side right here (--local, or inside
an existing allocation).

Nothing is submitted until every input has been checked; if submission fails,
the job directory and state record it created are removed again.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

from kindslurm import exitcodes, paths, records
from kindslurm.scheduler import render
from kindslurm.config import Config
from kindslurm.errors import CommandTimeout, KindslurmError, SchedulerError
from kindslurm.paths import JobPaths
from kindslurm.scheduler.slurm import Slurm
from kindslurm.spec import JobSpec


def prepare(spec: JobSpec, cfg: Config) -> tuple[JobPaths, JobSpec]:
    """Create the job directory with copies of the inputs, the spec and the
    rendered batch script; returns the spec that points at the copies."""
    from kindslurm.spec import stage_inputs

    job = JobPaths(Path(spec.job_dir))
    script = render.render(spec, cfg.template, render.kindslurm_command(cfg.kindslurm_command))
    paths.ensure_private_dir(job.root)
    spec = stage_inputs(spec)
    job.spec.write_text(spec.to_json())
    job.batch_script.write_text(script)
    job.batch_script.chmod(0o700)
    records.save(records.Record(run_id=spec.run_id, mode=spec.mode, user=spec.user, job_dir=spec.job_dir,
                            prefix=spec.prefix, phase="submitted"))
    return job, spec


def _undo(spec: JobSpec) -> None:
    records.remove(spec.run_id)
    shutil.rmtree(spec.job_dir, ignore_errors=True)


def submit_comment(run_id: str) -> str:
    """Tags the job so a submission whose answer was lost can be found again."""
    return f"kindslurm-run:{run_id}"


def submit_batch(spec: JobSpec, cfg: Config, slurm: Slurm) -> str:
    job, spec = prepare(spec, cfg)
    try:
        job_id = slurm.submit(str(job.batch_script), extra=[f"--comment={submit_comment(spec.run_id)}"])
    except CommandTimeout:
        # slurmctld may have queued the job all the same: never drop its directory then
        found = slurm.find_by_comment(spec.user, submit_comment(spec.run_id))
        if found is None:
            records.update(spec.run_id, phase="unknown", reason="sbatch did not answer")
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


def srun_command(spec: JobSpec, cfg: Config, slurm: Slurm) -> list[str]:
    """The foreground equivalent of the batch script (srun reads no #SBATCH lines)."""
    return slurm.srun_argv(
        job_name=f"kindslurm-{spec.prefix}", time=spec.time, warning_seconds=spec.warning_seconds,
        output_dir=spec.submit_dir, partition=spec.partition, cpus=spec.cpus, mem=spec.mem, gpus=spec.gpus,
        account=spec.account, qos=spec.qos, extra=spec.sbatch_args,
        command=[*render.kindslurm_command(cfg.kindslurm_command), "node-run", str(JobPaths(Path(spec.job_dir)).spec)],
    )


def run_srun(spec: JobSpec, cfg: Config, slurm: Slurm) -> int:
    job, spec = prepare(spec, cfg)
    argv = srun_command(spec, cfg, slurm)
    # srun forwards Ctrl-C to the step itself; we only wait for it.
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        rc = subprocess.call(argv)
    except FileNotFoundError:
        _undo(spec)
        raise KindslurmError(f"{argv[0]} not found on PATH: install Slurm's client commands or set tools.srun") from None
    finally:
        signal.signal(signal.SIGINT, old)
    try:
        return int(job.exitcode.read_text().strip())
    except (OSError, ValueError):
        records.update(spec.run_id, phase="failed", reason=f"srun exited {rc} before the node side finished")
        return rc if rc else exitcodes.SCHEDULER


def run_here(spec: JobSpec, cfg: Config) -> int:
    """--local, or inside an allocation: the node side in this very process."""
    from kindslurm.node.lifecycle import Lifecycle

    _, spec = prepare(spec, cfg)
    return Lifecycle(spec).run()


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
        import sys

        print(f"kindslurm: {socket.gethostname()} is not a node of job {alloc.job_id} "
              f"({', '.join(alloc.nodes) or 'no node list'}): running it there with srun", file=sys.stderr)
    return where or "sbatch"
