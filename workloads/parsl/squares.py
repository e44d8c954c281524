"""Parsl apps run by workers in the kindslurm run's own cluster.

The interchange listens on PARSL_ADDRESS (this compute node's address, which
pods reach through their node's network); KubernetesProvider creates the
worker pods with the run's KUBECONFIG. Each app returns its worker's host
name, so the output shows the work came back from pods.
"""

from __future__ import annotations

import os
import sys

import parsl
from parsl import python_app
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import KubernetesProvider


@python_app
def square(x: int) -> tuple[int, str]:
    import socket

    return x * x, socket.gethostname()


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    config = Config(
        executors=[HighThroughputExecutor(
            label="kind",
            address=os.environ["PARSL_ADDRESS"],
            # CurveZMQ needs Parsl's certificate directory on the workers' file system, which pods
            # do not share; the channel never leaves this node (pod -> kind node -> this host).
            encrypted=False,
            max_workers_per_node=2,
            provider=KubernetesProvider(
                namespace="parsl",
                image=os.environ.get("PARSL_WORKER_IMAGE", "localhost/kindslurm/parsl:1"),
                init_blocks=1, min_blocks=1, max_blocks=1,
                init_cpu=0.1, max_cpu=1, init_mem="100Mi", max_mem="1Gi",
                pod_name="parsl-worker",
            ),
        )],
        run_dir=os.path.join(os.environ.get("KINDSLURM_JOB_DIR", "."), "parsl-runinfo"),
        strategy="none",
    )
    with parsl.load(config):
        results = [square(i).result(timeout=300) for i in range(n)]
    values = [v for v, _ in results]
    hosts = sorted({h for _, h in results})
    print(f"squares: {values}")
    print(f"sum: {sum(values)}")
    print(f"computed by worker pods: {', '.join(hosts)}")
    return 0 if values == [i * i for i in range(n)] and all(h.startswith("parsl-worker") for h in hosts) else 1


if __name__ == "__main__":
    sys.exit(main())
