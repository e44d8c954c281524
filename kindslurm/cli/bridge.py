"""`kindslurm bridge` and the hidden `node-pod` a bridged pod's run calls back."""

from __future__ import annotations

import sys

import click

from kindslurm.cli import handle_errors, main


@main.command()
@click.option("--kubeconfig", help="The outer cluster's kubeconfig (default $KUBECONFIG, ~/.kube/config, "
                                   "or the pod's service account).")
@click.option("-p", "--partition", "partitions", multiple=True, help="Slurm partition to serve as a node (repeatable).")
@click.option("--node-name", "node_names", multiple=True, metavar="PARTITION=NAME",
              help="Node name for a partition (default kindslurm-PARTITION).")
@click.option("--address", help="Address the API server reaches this bridge at (default: this host's).")
@click.option("--port", type=int, default=10250, show_default=True, help="Port of the kubelet endpoint.")
@click.option("--bind-address", help="Address to listen on (default: --address).")
@click.option("--tls-cert-file", help="Serving certificate (default: a self-signed one for --address).")
@click.option("--tls-key-file", help="Its key.")
@click.option("--client-ca-file", help="CA of the API server's client certificate (default: the kubeconfig's CA).")
@click.option("-v", "--verbose", is_flag=True, help="Log every poll.")
@handle_errors
def bridge(kubeconfig: str | None, partitions: tuple[str, ...], node_names: tuple[str, ...], address: str | None,
           port: int, bind_address: str | None, tls_cert_file: str | None, tls_key_file: str | None,
           client_ca_file: str | None, verbose: bool) -> None:
    """Serve Slurm partitions as nodes of an outer Kubernetes cluster.

    Each pod bound to one of these nodes runs as one kindslurm run: its own
    Slurm job with its own kind cluster. Runs until SIGTERM; a restarted
    bridge adopts the jobs of the pods it finds.
    """
    from kindslurm.bridge.main import Options, run

    sys.exit(run(Options(list(partitions), kubeconfig, list(node_names), address, port, bind_address, tls_cert_file,
                         tls_key_file, client_ca_file, verbose)))


@main.command("node-pod", hidden=True)
@click.argument("namespace")
@click.argument("name")
def node_pod(namespace: str, name: str) -> None:
    """Workload of a bridged pod's run: follows the pod in the run's cluster."""
    from kindslurm.node.podagent import main as agent

    sys.exit(agent(namespace, name))
