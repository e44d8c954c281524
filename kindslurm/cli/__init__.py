"""The `kindslurm` command line.

Modules that are slow to import (the Kubernetes client, rich, jinja2) are
imported inside the commands that need them, so `kindslurm --help` stays fast.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import click

from kindslurm import __version__
from kindslurm.errors import KindslurmError, SpecError

EPILOG = """\b
Examples:
  kindslurm run workloads/hello/workload.sh --manifest workloads/hello/job.yaml --wait
  kindslurm run train.sh --time 02:00:00 --cpus 8 --mem 16G --workers 1
  kindslurm run --srun workloads/hello/workload.sh     # foreground, interactive
  kindslurm run --local workloads/hello/workload.sh    # no Slurm, this host
  kindslurm ls; kindslurm logs 1234 -f; kindslurm cancel 1234
  kindslurm doctor                                      # can this node host clusters?
  kindslurm gc --dry-run                                # what a killed job left behind
"""


def _fail(e: KindslurmError) -> None:
    click.echo(f"kindslurm: error: {e}", err=True)
    sys.exit(e.exit_code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KindslurmError as e:
            _fail(e)

    return wrapper


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "KINDSLURM"})
@click.version_option(__version__, "-V", "--version", prog_name="kindslurm")
def main() -> None:
    """Throwaway Kubernetes (kind) clusters inside Slurm jobs.

    `run` wraps a workload script in a Slurm job that boots its own kind
    cluster, applies your manifests, runs the script with KUBECONFIG pointing
    at that cluster, saves every pod's logs and tears it all down.
    """


@main.command(epilog=EPILOG)
@click.argument("script", required=False)
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option("-m", "--manifest", "manifests", multiple=True, help="Kubernetes YAML to apply before the script (repeatable).")
@click.option("--name", help="Cluster name prefix (kind-valid; the job id is appended). Default ks-USER.")
@click.option("-p", "--partition", help="Slurm partition (checked with sinfo).")
@click.option("-t", "--time", help="Time limit in Slurm's format, e.g. 30, 01:00:00, 1-00:00:00.")
@click.option("-c", "--cpus", type=int, help="CPUs for the job (and the cluster's nodes).")
@click.option("--mem", help="Memory for the job, e.g. 8G.")
@click.option("--gpus", help="GPUs, passed to Slurm's --gpus.")
@click.option("-A", "--account", help="Slurm account.")
@click.option("-q", "--qos", help="Slurm QOS.")
@click.option("--sbatch-arg", "sbatch_args", multiple=True, help="Extra sbatch/srun option, e.g. --sbatch-arg=--exclusive (repeatable).")
@click.option("-w", "--workers", type=int, help="Worker nodes besides the control plane (default 0).")
@click.option("--node-image", help="kind node image (default: config, else kind's own).")
@click.option("--node-image-archive", help="`podman save` tar to load when the node image is missing.")
@click.option("--mount", "extra_mounts", multiple=True, help="Extra mount HOST:CONTAINER[:ro] on every node (repeatable).")
@click.option("--kind-config", type=str, help="kind Cluster config merged over kindslurm's.")
@click.option("--load-image", "load_images", multiple=True, help="Image archive to load into the cluster (repeatable).")
@click.option("--timeout", help="Workload timeout, e.g. 30m (script plus the manifests' Jobs).")
@click.option("--keep-on-failure", is_flag=True, default=None, help="On failure keep the cluster until the job ends, for debugging.")
@click.option("--template", help="jinja2 batch template instead of the default.")
@click.option("--srun", "use_srun", is_flag=True, help="Run in the foreground with srun.")
@click.option("--local", "use_local", is_flag=True, help="Run on this host without Slurm.")
@click.option("--submit", "force_submit", is_flag=True, help="Submit with sbatch even inside an allocation.")
@click.option("--dry-run", is_flag=True, help="Print the batch script (or srun command) and submit nothing.")
@click.option("--wait", "wait", is_flag=True, help="After sbatch, follow the job and exit with its exit code.")
@click.option("--parsable", is_flag=True, help="Print only the job id.")
@handle_errors
def run(script: str | None, script_args: tuple[str, ...], manifests: tuple[str, ...], name: str | None,
        use_srun: bool, use_local: bool, force_submit: bool, dry_run: bool, wait: bool, parsable: bool,
        template: str | None, **options: Any) -> None:
    """Run SCRIPT [-- ARGS...] in a fresh kind cluster inside a Slurm job.

    On a login node the run is submitted with sbatch; inside an allocation
    (SLURM_JOB_ID set) it runs right there. The exit code is the script's own,
    or 0/1 from the manifests' Jobs and Pods when there is no script.
    """
    import shlex

    from kindslurm import config, api, spec as specmod
    from kindslurm.scheduler.slurm import Slurm

    if use_srun and use_local:
        raise SpecError("--srun and --local exclude each other: pick one")
    overrides = dict(options)
    for key in ("sbatch_args", "extra_mounts", "load_images"):
        overrides[key] = list(overrides[key])
    overrides["template"] = template
    cfg = config.load(overrides)
    if use_local:
        mode = "local"
    elif use_srun:
        mode = "srun"
    else:
        mode = api.placement(force_submit=force_submit or dry_run)
    spec = specmod.build(cfg, mode=mode, script=script, script_args=list(script_args), manifests=list(manifests), name=name)
    from kindslurm.node import allocation

    spec.in_allocation = mode in ("inline", "srun") and allocation.current() is not None
    slurm = Slurm(cfg.tools)
    if mode in ("sbatch", "srun"):
        slurm.check_partition(spec.partition)
    if dry_run:
        from kindslurm.scheduler import render

        if mode == "srun":
            click.echo(shlex.join(api.srun_command(spec, cfg, slurm)))
        else:
            click.echo(render.render(spec, cfg.template, render.kindslurm_command(cfg.kindslurm_command)), nl=False)
        return
    if mode == "sbatch":
        job_id = api.submit_batch(spec, cfg, slurm)
        if parsable:
            click.echo(job_id)
        else:
            click.echo(f"Submitted job {job_id} (run {spec.run_id}, cluster {spec.prefix}-{job_id})")
            click.echo(f"Job directory: {spec.job_dir}")
        if wait:
            from pathlib import Path

            from kindslurm.paths import JobPaths
            from kindslurm.scheduler.watch import wait_for_job

            sys.exit(wait_for_job(slurm, spec.run_id, job_id, stream=JobPaths(Path(spec.job_dir)).slurm_out))
        return
    if mode == "srun":
        sys.exit(api.run_srun(spec, cfg, slurm))
    sys.exit(api.run_here(spec, cfg))


@main.command("node-run", hidden=True)
@click.argument("spec_path")
@handle_errors
def node_run(spec_path: str) -> None:
    """Node side of a run (called by the batch script)."""
    from kindslurm.node.main import node_run

    sys.exit(node_run(spec_path))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("-a", "--all", "show_all", is_flag=True, help="Include finished runs.")
@handle_errors
def ls(as_json: bool, show_all: bool) -> None:
    """List your runs with their Slurm state and phase."""
    from kindslurm.cli import inspect

    inspect.ls(as_json=as_json, show_all=show_all)


@main.command()
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def status(job: str, as_json: bool) -> None:
    """Show one run (by Slurm job id, run id or cluster name)."""
    from kindslurm.cli import inspect

    sys.exit(inspect.status(job, as_json=as_json))


@main.command()
@click.argument("job")
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the run ends.")
@click.option("--job-output", is_flag=True, help="The whole job output (kindslurm's messages too), not just the workload's.")
@click.option("--pod", help="A saved pod log: NAMESPACE/POD[/CONTAINER] or POD.")
@handle_errors
def logs(job: str, follow: bool, job_output: bool, pod: str | None) -> None:
    """Print a run's workload output (or its job output, or a saved pod log)."""
    from kindslurm.cli import inspect

    inspect.logs(job, follow=follow, job_output=job_output, pod=pod)


@main.command()
@click.argument("job")
@handle_errors
def cancel(job: str) -> None:
    """Cancel a run; its job tears the cluster down before it exits."""
    from kindslurm.cli import inspect

    inspect.cancel(job)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def doctor(as_json: bool) -> None:
    """Check whether this node can host kindslurm clusters, with a fix for each problem."""
    from kindslurm.cli import inspect

    sys.exit(inspect.doctor(as_json=as_json))


@main.command()
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be removed; remove nothing.")
@click.option("--older-than", help="Only collect what is older than this, e.g. 2h.")
@click.option("--job", "job", help="Only what Slurm job JOBID left (Epilog mode).")
@click.option("--all", "include_finished", is_flag=True, help="Also forget finished runs (their records; job directories stay).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when there is nothing to do.")
@handle_errors
def gc(dry_run: bool, older_than: str | None, job: str | None, include_finished: bool, quiet: bool) -> None:
    """Remove clusters, kubeconfigs and records that dead runs left on this node.

    Only what a kindslurm record or creation marker names is considered, so a
    cluster made by hand or another user's is never touched; nor is a live run
    (its Slurm job pending or running, or its local process alive), a cluster
    being created, or anything with a job while Slurm cannot be asked.
    Exits 1 if something could not be removed.
    """
    from kindslurm import config
    from kindslurm.node import gc as gcmod
    from kindslurm.cluster.kind_podman import KindPodman
    from kindslurm.scheduler.slurm import Slurm
    from kindslurm.timefmt import duration_seconds

    if job is not None and not job.isdigit():
        raise SpecError(f"--job takes a numeric Slurm job id, not {job!r}: pass the number squeue shows")
    cfg = config.load()
    collector = gcmod.Collector(
        KindPodman(cfg.tool("kind"), cfg.tool("podman")), Slurm(cfg.tools), job=job,
        older_than=duration_seconds(older_than, "--older-than") if older_than else 0.0,
        include_finished=include_finished,
    )
    actions = collector.run(dry_run=dry_run)
    if actions or not quiet:
        gcmod.render_table(actions, dry_run)
    if not collector.slurm_ok:
        click.echo("warning: Slurm could not be asked; runs with a job id were kept", err=True)
    sys.exit(1 if any(a.failed for a in actions) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
