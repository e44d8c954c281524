"""Control-plane + worker: cross-node pod traffic, then a clean delete."""
import json

import pytest

from kindharness import BUSYBOX_ARCHIVE, BUSYBOX_IMAGE, job, make_cluster, run

pytestmark = pytest.mark.cluster


def test_two_nodes_cross_node_traffic_and_clean_delete(cluster_prereqs, host_sysctls, tmp_path):
    c = make_cluster(tmp_path, 1, host_sysctls)
    deleted = False
    try:
        cp, worker = f"{c.name}-control-plane", f"{c.name}-worker"
        nodes = json.loads(c.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        cidrs = {n["metadata"]["name"]: n["spec"].get("podCIDR") for n in nodes}
        assert set(cidrs) == {cp, worker}
        assert cidrs[cp] and cidrs[worker] and cidrs[cp] != cidrs[worker], cidrs

        c.load_archive(BUSYBOX_ARCHIVE)
        # an httpd pod on the control plane
        c.apply(f"""
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {{app: web}}
spec:
  nodeName: {cp}
  terminationGracePeriodSeconds: 1
  tolerations:
  - operator: Exists
  containers:
  - name: httpd
    image: {BUSYBOX_IMAGE}
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "mkdir -p /www && echo served-by-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"]
""")
        c.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=120s", timeout=150)
        web_ip = c.kubectl("get", "pod", "web", "-o", "jsonpath={.status.podIP}").stdout.strip()
        assert web_ip
        # a Job pinned to the worker fetches it by pod IP
        c.apply(job(
            "fetch",
            f"for i in 1 2 3 4 5; do timeout 5 wget -q -O - http://{web_ip}:8080/ && exit 0; sleep 1; done; exit 1",
            extra_spec=f"      nodeSelector:\n        kubernetes.io/hostname: {worker}\n",
        ))
        logs = c.wait_job("fetch")
        assert "served-by-web" in logs
        pod_node = c.kubectl("get", "pods", "-l", "job-name=fetch",
                             "-o", "jsonpath={.items[0].spec.nodeName}").stdout
        assert pod_node == worker

        c.delete()
        deleted = True
        left = c.leftovers()
        # kind leaves its shared `kind` podman network in place (shared by all
        # clusters); nothing named after or labelled with the cluster may stay.
        assert left == {"containers": [], "volumes": [], "networks": []}, left
        kp = run(["kind", "get", "clusters"]).stdout.split()
        assert c.name not in kp
    finally:
        if not deleted:
            try:
                c.delete()
            finally:
                host_sysctls.restore()
        else:
            host_sysctls.restore()
