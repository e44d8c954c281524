"""One shared single-node kind cluster from the offline node image."""
import json
import time

import pytest

from kindharness import BUSYBOX_ARCHIVE, PYTHON_ARCHIVE, PYTHON_IMAGE, job

pytestmark = pytest.mark.cluster


def test_node_ready(one_node_cluster):
    c = one_node_cluster
    nodes = json.loads(c.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert len(nodes) == 1
    n = nodes[0]
    assert n["metadata"]["name"] == f"{c.name}-control-plane"
    assert n["status"]["nodeInfo"]["kubeletVersion"] == "v1.34.4"
    assert n["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert n["spec"].get("podCIDR"), "controller-manager allocated no podCIDR"
    ready = {c_["type"]: c_["status"] for c_ in n["status"]["conditions"]}
    assert ready["Ready"] == "True"
    # every system pod reaches Running (CNI, kube-proxy, CoreDNS, storage, control plane);
    # pods whose images are unpacked last may still be ContainerCreating a few seconds after Ready
    deadline = time.monotonic() + 120
    while True:
        pods = json.loads(c.kubectl("get", "pods", "-A", "-o", "json").stdout)["items"]
        not_running = [p["metadata"]["name"] for p in pods if p["status"].get("phase") != "Running"]
        if not not_running or time.monotonic() > deadline:
            break
        time.sleep(2)
    names = {p["metadata"]["name"].rsplit("-", 2)[0] for p in pods}
    assert any(p["metadata"]["name"].startswith("kindslurm-cni-") for p in pods), names
    assert any(p["metadata"]["name"].startswith("coredns-") for p in pods), names
    assert any(p["metadata"]["name"].startswith("local-path-provisioner-") for p in pods), names
    assert not not_running, c.kubectl("get", "pods", "-A", "-o", "wide").stdout


def test_busybox_job(one_node_cluster):
    c = one_node_cluster
    c.load_archive(BUSYBOX_ARCHIVE)
    c.apply(job("hello", "echo hello-from-kindslurm; uname -s"))
    logs = c.wait_job("hello")
    assert "hello-from-kindslurm" in logs
    assert "Linux" in logs


def test_dns_and_service_vip(one_node_cluster):
    c = one_node_cluster
    c.load_archive(BUSYBOX_ARCHIVE)
    svc_ip = c.kubectl("get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
    assert svc_ip
    # busybox: nslookup ignores the search path, `nc -z` is not built in and
    # `wget -T` segfaults; ping resolves through the search path (ndots:5),
    # wget fetches /version through the Service VIP.
    script = (
        "set -e; "
        "nslookup kubernetes.default.svc.cluster.local; "
        "echo RESOLVED=$(ping -c1 -W1 kubernetes.default 2>&1 | head -1); "
        "timeout 20 wget --no-check-certificate -q -O - https://kubernetes.default.svc/version; "
        "echo; echo VIP-HTTPS-OK"
    )
    c.apply(job("dns-vip", script))
    logs = c.wait_job("dns-vip")
    assert svc_ip in logs, logs  # nslookup answer from CoreDNS
    resolved = logs.split("RESOLVED=", 1)[1].splitlines()[0]
    assert f"kubernetes.default ({svc_ip})" in resolved, logs  # short name, search path
    assert "VIP-HTTPS-OK" in logs, logs
    assert '"gitVersion": "v1.34.4"' in logs, logs


def test_pvc_local_path(one_node_cluster):
    c = one_node_cluster
    c.load_archive(BUSYBOX_ARCHIVE)
    c.apply("""
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: ["ReadWriteOnce"]
  resources:
    requests:
      storage: 16Mi
""")
    c.apply(job(
        "pvc-writer",
        "echo persisted > /data/f && cat /data/f && df -h /data | tail -1",
        extra_spec="""      volumes:
      - name: data
        persistentVolumeClaim:
          claimName: data
""",
    ).replace(
        "        command:",
        "        volumeMounts:\n        - name: data\n          mountPath: /data\n        command:",
    ))
    logs = c.wait_job("pvc-writer")
    assert "persisted" in logs
    deadline = time.monotonic() + 60
    while True:
        phase = c.kubectl("get", "pvc", "data", "-o", "jsonpath={.status.phase}").stdout
        if phase == "Bound" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert phase == "Bound"
    sc = c.kubectl("get", "pv", "-o", "jsonpath={.items[0].spec.storageClassName}").stdout
    assert sc == "standard"


def test_python_numpy_job(one_node_cluster):
    """The python test image (debootstrap + numpy) runs as a Job."""
    if not PYTHON_ARCHIVE.exists():
        pytest.fail(f"{PYTHON_ARCHIVE} missing: run setup/images/build-test-images.sh")
    c = one_node_cluster
    c.load_archive(PYTHON_ARCHIVE)
    c.apply(job(
        "numpy",
        "python3 -c 'import numpy as np; a = np.arange(12.0).reshape(3, 4); print(\"SUM\", a.sum())'",
        image=PYTHON_IMAGE,
    ))
    logs = c.wait_job("numpy")
    assert "SUM 66.0" in logs, logs
