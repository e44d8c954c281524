#!/bin/bash
# KSI's workload-job-pytorch: a training Job that reads and writes the submit
# directory through /app. KSI clones a PyTorch project; with no network this
# trains workloads/pytorch/train.py (numpy, same loop shape) and keeps the
# model in the submit directory.
#   kindslurm run workloads/ksi/workload-job-pytorch.sh      (from the repository's top)
set -x # Print each command before execution

code=$(realpath --relative-to="$PWD" "$(dirname "$0")/../pytorch")
case "$code" in ../*|/*) echo "run this from a directory that contains $code (it is mounted at /app)" >&2; exit 2 ;; esac
out="kindslurm-out/$K8S_CLUSTER_NAME"
mkdir -p "$out"
python3 - "$out/data.csv" <<'PY'
import math, random, sys
random.seed(1)
with open(sys.argv[1], "w") as f:
    f.write("x0,x1,x2,y\n")
    for _ in range(2000):
        x = [random.uniform(-2, 2) for _ in range(3)]
        f.write(",".join(f"{v:.5f}" for v in x + [math.sin(x[0]) + 0.5 * x[1] ** 2 - x[2]]) + "\n")
PY

kubectl create --context "$K8S_CLUSTER_NAME" namespace pytorch

kubectl create --context "$K8S_CLUSTER_NAME" -n pytorch -f - <<YAML
apiVersion: batch/v1
kind: Job
metadata:
  name: pytorch-example
spec:
  template:
    spec:
      securityContext:
        runAsUser: $UID
      containers:
      - name: pytorch
        image: bitnami/pytorch:2.0.1
        command: ['python3', '/app/$code/train.py', '--data', '/app/$out/data.csv', '--out', '/app/$out']
        volumeMounts:
          - name: project-vol
            mountPath: /app
      restartPolicy: OnFailure
      volumes:
        - name: project-vol
          hostPath:
            path: /app
            type: Directory
YAML
# wait for training to finish
kubectl wait --context "$K8S_CLUSTER_NAME" --for=condition=complete --timeout=10h job/pytorch-example -n pytorch
status=$?

kubectl logs --context "$K8S_CLUSTER_NAME" -n pytorch job/pytorch-example

kubectl delete --context "$K8S_CLUSTER_NAME" namespace pytorch
# Model remains in the submit directory
ls -al "$out/"
exit $status
