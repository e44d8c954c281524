#!/bin/bash
# KSI's workload-yaml: a Job from a YAML file, in its own namespace.
#   kindslurm run workloads/ksi/workload-yaml.sh
set -x # Print each command before execution
here=$(dirname "$0")

kubectl create --context "$K8S_CLUSTER_NAME" namespace example
kubectl create --context "$K8S_CLUSTER_NAME" -n example -f "$here/job-hello-world.yaml"
kubectl wait --context "$K8S_CLUSTER_NAME" -n example --for=condition=complete --timeout=10h job/hello
kubectl logs --context "$K8S_CLUSTER_NAME" -n example job/hello
kubectl delete --context "$K8S_CLUSTER_NAME" namespace example
