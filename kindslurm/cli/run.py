"""`kindslurm run` and the hidden `node-run` the batch script calls back."""

from __future__ import annotations

import sys
from typing import Any

import click

from kindslurm.cli import EPILOG, handle_errors, main


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
@click.option("--k8s-port", help="K8S_PORT: host port (30000-32767) mapped to the control-plane node; default a free one.")
@click.option("--timeout", help="Workload timeout, e.g. 30m (script plus the manifests' Jobs).")
@click.option("--keep-on-failure", is_flag=True, default=None, help="On failure keep the cluster until the job ends, for debugging.")
@click.option("--template", help="jinja2 batch template instead of the default.")
@click.option("--srun", "use_srun", is_flag=True, help="Run in the foreground with srun.")
@click.option("--local", "use_local", is_flag=True, help="Run on this host without Slurm.")
@click.option("--submit", "force_submit", is_flag=True, help="Submit with sbatch even inside an allocation.")
@click.option("--dry-run", is_flag=True, help="Print the batch script (or srun command) and submit nothing.")
@click.option("--wait", "wait", is_flag=True, help="After sbatch, follow the job and exit with its exit code.")
@click.option("--parsable", is_flag=True, help="Print only the job id.")
@click.option("--run-id", hidden=True, help="The run id a laptop chose (remote mode).")
@handle_errors
def run(script: str | None, script_args: tuple[str, ...], manifests: tuple[str, ...], name: str | None,
        use_srun: bool, use_local: bool, force_submit: bool, dry_run: bool, wait: bool, parsable: bool,
        template: str | None, run_id: str | None, **options: Any) -> None:
    """Run SCRIPT [-- ARGS...] in a fresh kind cluster inside a Slurm job.

    On a login node the run is submitted with sbatch; inside an allocation
    (SLURM_JOB_ID set) it runs right there. The exit code is the script's own,
    or 0/1 from the manifests' Jobs and Pods when there is no script.
    """
    from kindslurm import api

    if api.is_remote():
        from kindslurm.remote import run as remote

        sys.exit(remote.run(script, script_args, manifests, name,
                            dict(options, template=template, use_srun=use_srun, use_local=use_local,
                                 force_submit=force_submit), wait=wait, parsable=parsable, dry_run=dry_run))
    p = api.plan(script, script_args, manifests=manifests, name=name, srun=use_srun, local=use_local,
                 submit=force_submit or dry_run, template=template, run_id=run_id, **options)
    if dry_run:
        click.echo(api.dry_run(p), nl=False)
        return
    if p.mode == "sbatch":
        run_ = api.submit_plan(p)
        if parsable:
            click.echo(run_.job_id)
        else:
            click.echo(f"Submitted job {run_.job_id} (run {run_.run_id}, cluster {run_.cluster})")
            click.echo(f"Job directory: {run_.job_dir}")
        if wait:
            sys.exit(api.wait(run_, scheduler=p.scheduler))
        return
    if p.mode == "srun":
        sys.exit(api.foreground_plan(p))
    sys.exit(api.here_plan(p))


@main.command("node-run", hidden=True)
@click.argument("spec_path")
@handle_errors
def node_run(spec_path: str) -> None:
    """Node side of a run (called by the batch script)."""
    from kindslurm.node.main import node_run

    sys.exit(node_run(spec_path))
