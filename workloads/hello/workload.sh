#!/bin/bash
# Runs on the compute node; KUBECONFIG points at this job's own cluster and
# job.yaml (passed with --manifest) has already been applied.
set -euo pipefail
echo "cluster: $KINDSLURM_CLUSTER (context $K8S_CLUSTER_NAME)"
kubectl get nodes
kubectl wait --for=condition=complete --timeout=180s job/hello
kubectl logs job/hello
