"""The `kindslurm` command line: the click group and what its commands share.

Commands parse options, call kindslurm.api and print; they live in run.py,
inspect.py and admin.py. Modules that are slow to import (the Kubernetes
client, rich, jinja2, the API itself) are imported inside the commands that
need them, so `kindslurm --help` stays fast.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable

import click

from kindslurm import __version__

if TYPE_CHECKING:
    from kindslurm.errors import KindslurmError

EPILOG = """\b
Examples:
  kindslurm run workloads/hello/workload.sh --manifest workloads/hello/job.yaml --wait
  kindslurm run train.sh --time 02:00:00 --cpus 8 --mem 16G --workers 1
  kindslurm run --srun workloads/hello/workload.sh     # foreground, interactive
  kindslurm run --local workloads/hello/workload.sh    # no Slurm, this host
  kindslurm ls; kindslurm logs 1234 -f; kindslurm cancel 1234
  kindslurm doctor                                      # can this node host clusters?
  kindslurm gc --dry-run                                # what a killed job left behind
  kindslurm up --name dev --time 2:00:00; kindslurm kubeconfig dev; kindslurm down dev
  kindslurm --host me@login.example.org run workload.sh --wait   # from a laptop
"""


def _fail(e: KindslurmError) -> None:
    click.echo(f"kindslurm: error: {e}", err=True)
    sys.exit(e.exit_code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """kindslurm's own errors end the command with their message and exit code, never a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from kindslurm.errors import KindslurmError

        try:
            return fn(*args, **kwargs)
        except KindslurmError as e:
            _fail(e)

    return wrapper


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "KINDSLURM"})
@click.version_option(__version__, "-V", "--version", prog_name="kindslurm")
@click.option("--host", metavar="[USER@]HOST[:PORT]", help="Work against this login node over SSH (remote mode; config remote.host).")
@click.option("--ssh-key", metavar="FILE", help="Private key for --host (config remote.key; the agent and ~/.ssh/config are tried too).")
@click.option("--accept-new-host-key", is_flag=True, help="Trust and save the host key of a login node seen for the first time.")
@click.option("--no-remote", is_flag=True, hidden=True, help="Ignore remote.host: how a laptop calls the login node's kindslurm.")
def main(host: str | None, ssh_key: str | None, accept_new_host_key: bool, no_remote: bool) -> None:
    """Throwaway Kubernetes (kind) clusters inside Slurm jobs.

    `run` wraps a workload script in a Slurm job that boots its own kind
    cluster, applies your manifests, runs the script with KUBECONFIG pointing
    at that cluster, saves every pod's logs and tears it all down.
    With --host (or remote.host in the config) every command works against a
    login node over SSH.
    """
    if host is not None or ssh_key or accept_new_host_key or no_remote:
        from kindslurm import api

        api.use_host(host, key=ssh_key, accept_new=accept_new_host_key, here=no_remote)


# The commands register themselves on `main`; their modules import only click
# at the top, so `kindslurm --help` stays fast.
from kindslurm.cli import admin, bridge, inspect, interactive, run  # noqa: E402,F401

if __name__ == "__main__":  # pragma: no cover
    main()
