#!/bin/bash
# A Parsl program whose workers run as pods in this run's own cluster:
#   kindslurm run workloads/parsl/workload.sh --load-image /var/cache/kindslurm/images/parsl.tar
# The program (squares.py) runs here, on the compute node; Parsl's
# KubernetesProvider starts worker pods through KUBECONFIG, and the workers
# connect back to the interchange on this node's own address (see README.md).
set -euo pipefail
: "${PARSL_PYTHON:=$(command -v python3)}"   # a Python with parsl installed (pip install parsl)
: "${PARSL_ADDRESS:=$(hostname -I | awk '{print $1}')}"   # where the worker pods reach this node
export PARSL_ADDRESS
PATH="$(dirname "$PARSL_PYTHON"):$PATH"   # Parsl starts its interchange.py from there
kubectl --context "$K8S_CLUSTER_NAME" create namespace parsl
exec "$PARSL_PYTHON" "$(dirname "$0")/squares.py" "$@"
