#!/bin/bash
# KSI's workload-kube-api: the REST API with the admin-user token, no kubectl.
#   kindslurm run workloads/ksi/workload-kube-api.sh
set -x # Print each command before execution
set -e

# List all namespaces
curl -sS --fail -X GET "$K8S_CLUSTER_API/api/v1/namespaces" --header "Authorization: Bearer $K8S_CLUSTER_API_TOKEN" --insecure
# List all pods in default namespace
curl -sS --fail -X GET "$K8S_CLUSTER_API/api/v1/namespaces/default/pods" --header "Authorization: Bearer $K8S_CLUSTER_API_TOKEN" --insecure
