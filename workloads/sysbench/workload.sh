#!/bin/bash
# A CPU benchmark inside the job's cluster. Run with:
#   kindslurm run workloads/sysbench/workload.sh --manifest workloads/sysbench/pod.yaml \
#       --load-image /var/cache/kindslurm/images/python.tar --cpus 2
set -euo pipefail
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded --timeout=300s pod/sysbench
kubectl logs pod/sysbench | tee /dev/stderr | grep -E 'events per second'
