"""`up`, `down`, `kubeconfig` and `tunnel` (interactive clusters), and the
hidden `node-relay` and `remote-info` that tunnels and laptops call."""

from __future__ import annotations

import sys
from typing import Any

import click

from kindslurm.cli import handle_errors, main
from kindslurm.cli.run import run as run_command

# `up` takes `run`'s options for the job and the cluster (not those for a workload)
UP_OPTIONS = ("partition", "time", "cpus", "mem", "gpus", "account", "qos", "sbatch_args", "workers", "node_image",
              "node_image_archive", "extra_mounts", "kind_config", "load_images")


@main.command(epilog="""\b
Examples:
  kindslurm up --name dev --time 2:00:00 --cpus 8 --mem 32G
  kubectl --kubeconfig "$(kindslurm kubeconfig dev)" get nodes
  kindslurm down dev
""")
@click.option("--name", help="The cluster's name (unique among your live ones; the job id is appended). Default ks-USER.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Return once the cluster is Ready and say how to use it, or print only the job id at once.")
@click.option("--run-id", hidden=True, help="The run id a laptop chose (remote mode).")
@handle_errors
def up(name: str | None, wait: bool, run_id: str | None, **options: Any) -> None:
    """Boot a cluster in a Slurm job and hold it for kubectl until `down`, scancel or the time limit."""
    from kindslurm import api

    if api.is_remote():
        from kindslurm.remote import interactive as remote

        sys.exit(remote.up(name, options, wait))
    from kindslurm.interactive import clusters

    submitted = clusters.up(name, options, run_id=run_id)
    if not wait:
        click.echo(submitted.job_id)
        return
    click.echo(f"Submitted job {submitted.job_id} (run {submitted.run_id}, cluster {submitted.cluster})", err=True)
    click.echo(clusters.usage(clusters.wait_ready(submitted)), nl=False)


up.params.extend(p for p in run_command.params if p.name in UP_OPTIONS)


@main.command()
@click.argument("name")
@handle_errors
def down(name: str) -> None:
    """End an interactive cluster (by name, job id or run id): it is torn down and its job ends."""
    from kindslurm import api

    if api.is_remote():
        from kindslurm.remote import interactive as remote

        sys.exit(remote.passthrough("down", name))
    from kindslurm.interactive import clusters

    code, message = clusters.down(name)
    click.echo(message, err=code != 0)
    sys.exit(code)


@main.command()
@click.argument("name")
@click.option("--tunnel", "force_tunnel", is_flag=True, help="Go through a tunnel even on the cluster's own node.")
@handle_errors
def kubeconfig(name: str, force_tunnel: bool) -> None:
    """Print the path of a kubeconfig for cluster NAME that works from here
    (on its node the job's own; elsewhere a tunnel's, started if needed)."""
    from kindslurm import api

    if api.is_remote():
        from kindslurm.remote import interactive as remote

        click.echo(str(remote.kubeconfig(name, force_tunnel)))
        return
    from kindslurm.interactive import reach

    click.echo(str(reach.kubeconfig(name, force_tunnel)))


@main.command()
@click.argument("name")
@click.option("--tunnel", "force_tunnel", is_flag=True, hidden=True,
              help="With --host: through the login node's tunnel even if it is the cluster's node.")
@handle_errors
def tunnel(name: str, force_tunnel: bool) -> None:
    """Keep a tunnel to cluster NAME open in the foreground (Ctrl-C ends it);
    it prints the kubeconfig to use and ends with the cluster."""
    from kindslurm import api

    if api.is_remote():
        from kindslurm.remote import interactive as remote

        sys.exit(remote.serve(name, force_tunnel, sys.stdout))
    from kindslurm.interactive import reach

    sys.exit(reach.serve(name, sys.stdout))


@main.command("node-relay", hidden=True)
@click.argument("port", type=click.IntRange(1, 65535))
def node_relay(port: int) -> None:
    """The node end of a tunnel: stdin/stdout to 127.0.0.1:PORT."""
    from kindslurm.node.relay import relay

    sys.exit(relay(port))


@main.command("remote-info", hidden=True)
@handle_errors
def remote_info() -> None:
    """What a laptop needs to know about this login node's kindslurm (JSON)."""
    import json
    import socket

    from kindslurm import config, naming, paths

    click.echo(json.dumps({"user": naming.current_user(), "host": socket.gethostname(),
                           "records_dir": str(paths.records_dir()),
                           "job_root": str(config.load().job_root_path())}))
