#!/bin/bash
# KSI's workload-pod-nginx: a web server behind a NodePort on K8S_PORT, which
# kindslurm maps from this compute node to the control-plane node. busybox's
# httpd (in `alpine`) serves where no nginx image is at hand. KSI serves until
# the job is cancelled; this fetches the page from the compute node's own
# address, then serves SERVE_SECONDS more (default 0) and ends.
#   kindslurm run workloads/ksi/workload-pod-nginx.sh       (K8S_PORT=31080 to choose the port)
set -x # Print each command before execution

echo "K8S_PORT: $K8S_PORT"

kubectl create --context "$K8S_CLUSTER_NAME" namespace nginx
kubectl create -n nginx --context "$K8S_CLUSTER_NAME" -f - <<YAML
kind: Pod
apiVersion: v1
metadata:
  name: nginx
  labels:
    app: nginx
spec:
  containers:
  - name: nginx
    image: alpine
    command: ['sh', '-c', 'mkdir -p /www && echo "hello from \$(hostname) through K8S_PORT" > /www/index.html && exec httpd -f -v -p 80 -h /www']
    ports:
    - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: nginx
spec:
  type: NodePort
  ports:
  - name: http
    nodePort: $K8S_PORT
    port: 80
  selector:
    app: nginx
YAML

kubectl wait -n nginx --context "$K8S_CLUSTER_NAME" --for condition=Ready --timeout=10m pod/nginx

# From outside the cluster: this compute node's address, as another host would use it
address=$(hostname -I 2>/dev/null | awk '{print $1}')
url="http://${address:-127.0.0.1}:$K8S_PORT/"
status=1
for _ in $(seq 60); do
  if curl -sS --fail --max-time 5 "$url"; then status=0; break; fi
  sleep 1
done
echo "fetched $url: exit $status"
sleep "${SERVE_SECONDS:-0}"

kubectl logs nginx -n nginx --context "$K8S_CLUSTER_NAME"
kubectl delete --context "$K8S_CLUSTER_NAME" namespace nginx
exit $status
