#!/bin/bash
# KSI's workload-pod-sysbench: a CPU benchmark pod, its log followed while it runs.
#   kindslurm run workloads/ksi/workload-pod-sysbench.sh --cpus 2
set -x # Print each command before execution

kubectl create --context "$K8S_CLUSTER_NAME" namespace bench
kubectl create -n bench --context "$K8S_CLUSTER_NAME" -f - <<YAML
apiVersion: v1
kind: Pod
metadata:
  labels:
    app: sysbench
  name: sysbench-cpu
spec:
  containers:
  - command:
    - sysbench
    - cpu
    - --threads=56
    - --cpu-max-prime=20000
    - run
    image: severalnines/sysbench
    name: sysbench-cpu
  restartPolicy: Never
YAML

# Until the container has started (KSI waits for Ready, which a short pod can pass before the wait looks)
for _ in $(seq 600); do
  phase=$(kubectl get pod -n bench --context "$K8S_CLUSTER_NAME" sysbench-cpu -o jsonpath='{.status.phase}')
  [ "$phase" = Pending ] || break
  sleep 1
done
# Follow the log until the benchmark ends
kubectl logs -f sysbench-cpu -n bench --context "$K8S_CLUSTER_NAME"
kubectl wait -n bench --context "$K8S_CLUSTER_NAME" --for=jsonpath='{.status.phase}'=Succeeded --timeout=10m pod/sysbench-cpu
status=$?

kubectl delete --context "$K8S_CLUSTER_NAME" namespace bench
exit $status
