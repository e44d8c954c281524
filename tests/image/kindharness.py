"""Helpers for the node-image tests: real kind clusters (rootful podman).

These tests need root, podman, kind (setup/install-kind.sh), the node image
(setup/node-image/build.sh) and the busybox test image
(setup/images/build-test-images.sh).  Without them they fail, naming what is missing.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

NODE_IMAGE = os.environ.get("KINDSLURM_NODE_IMAGE", "localhost/kindslurm/node:v1.34.4")
CACHE = Path(os.environ.get("KINDSLURM_CACHE", "/var/cache/kindslurm"))
BUSYBOX_ARCHIVE = CACHE / "images" / "busybox.tar"
BUSYBOX_IMAGE = "localhost/kindslurm/busybox:1"
PYTHON_ARCHIVE = CACHE / "images" / "python.tar"
PYTHON_IMAGE = "localhost/kindslurm/python:3"
HOST_SYSCTLS = ("kernel.panic", "kernel.panic_on_oops", "vm.overcommit_memory")

TIMINGS: list[tuple[str, float]] = []


def _kubectl_bin() -> str:
    for cand in ("/usr/local/bin/kubectl", shutil.which("kubectl")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return "kubectl"


KUBECTL = _kubectl_bin()


def run(cmd, *, check=True, timeout=300, env=None, input=None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env["KIND_EXPERIMENTAL_PROVIDER"] = "podman"
    if env:
        full_env.update(env)
    p = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
        env=full_env, input=input,
    )
    if check and p.returncode != 0:
        raise AssertionError(
            f"command failed ({p.returncode}): {' '.join(map(str, cmd))}\n"
            f"stdout:\n{p.stdout[-4000:]}\nstderr:\n{p.stderr[-4000:]}"
        )
    return p


def record(name: str, seconds: float) -> None:
    TIMINGS.append((name, seconds))


def read_sysctl(key: str) -> str:
    return Path("/proc/sys", *key.split(".")).read_text().strip()


def write_sysctl(key: str, value: str) -> None:
    Path("/proc/sys", *key.split(".")).write_text(value + "\n")


class HostSysctls:
    """Values recorded before any cluster ran; the kubelet of a privileged
    node rewrites them (kernel.panic=10, panic_on_oops=1, overcommit=1)."""

    def __init__(self):
        self.recorded = {k: read_sysctl(k) for k in HOST_SYSCTLS}
        self.restored_changes: dict[str, tuple[str, str]] = {}

    def restore(self) -> None:
        for k, v in self.recorded.items():
            cur = read_sysctl(k)
            if cur != v:
                write_sysctl(k, v)
                self.restored_changes[k] = (cur, v)

    def current(self) -> dict[str, str]:
        return {k: read_sysctl(k) for k in HOST_SYSCTLS}


def prereq_problem() -> str | None:
    if os.geteuid() != 0:
        return "cluster tests need root (rootful podman; rootless kind needs cgroup v2)"
    for tool in ("podman", "kind"):
        if not shutil.which(tool):
            return f"{tool} not found (setup/install-kind.sh, apt-get install podman)"
    if subprocess.run(["podman", "image", "exists", NODE_IMAGE]).returncode != 0:
        return f"node image {NODE_IMAGE} missing: run setup/node-image/build.sh"
    if not BUSYBOX_ARCHIVE.exists():
        return f"{BUSYBOX_ARCHIVE} missing: run setup/images/build-test-images.sh"
    return None


KIND_CONFIG = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  apiServerAddress: 127.0.0.1
  apiServerPort: -1
nodes:
{nodes}"""


class KindCluster:
    def __init__(self, tmp: Path, workers: int = 0):
        self.name = "kstest-" + secrets.token_hex(3)
        self.dir = tmp
        self.kubeconfig = tmp / "kubeconfig"
        self.config = tmp / "kind.yaml"
        nodes = "- role: control-plane\n" + "- role: worker\n" * workers
        self.config.write_text(KIND_CONFIG.format(nodes=nodes))
        self.workers = workers
        self.created = False

    # -- lifecycle -----------------------------------------------------------
    def create(self) -> float:
        t0 = time.monotonic()
        self.created = True  # even a failed create may leave nodes behind
        run(["kind", "create", "cluster", "--name", self.name, "--config", self.config,
             "--image", NODE_IMAGE, "--kubeconfig", self.kubeconfig, "--wait", "120s"],
            timeout=400)
        dt = time.monotonic() - t0
        record(f"kind create ({1 + self.workers} node{'s' if self.workers else ''})", dt)
        return dt

    def wait_ready(self, timeout: int = 180) -> float:
        """kind's --wait only warns on timeout: check every node's Ready condition."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        want = 1 + self.workers
        while True:
            p = self.kubectl("get", "nodes", "-o", "json", check=False)
            if p.returncode == 0:
                items = json.loads(p.stdout)["items"]
                ready = [
                    n for n in items
                    if any(c["type"] == "Ready" and c["status"] == "True"
                           for c in n["status"].get("conditions", []))
                ]
                if len(items) == want and len(ready) == want:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"nodes not Ready after {timeout}s:\n"
                                     + self.kubectl("get", "nodes", "-o", "wide", check=False).stdout)
            time.sleep(1)
        # CoreDNS is not yet Ready when kind returns
        self.kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns",
                     "--timeout=120s", timeout=150)
        dt = time.monotonic() - t0
        record("after create: nodes+CoreDNS Ready", dt)
        return dt

    def delete(self) -> float:
        t0 = time.monotonic()
        run(["kind", "delete", "cluster", "--name", self.name, "--kubeconfig", self.kubeconfig],
            timeout=180)
        dt = time.monotonic() - t0
        record(f"kind delete ({1 + self.workers} node{'s' if self.workers else ''})", dt)
        return dt

    # -- helpers -------------------------------------------------------------
    def kubectl(self, *args, check=True, timeout=120, input=None):
        return run([KUBECTL, "--kubeconfig", self.kubeconfig, *args],
                   check=check, timeout=timeout, input=input)

    def apply(self, manifest: str):
        return self.kubectl("apply", "-f", "-", input=manifest)

    def load_archive(self, archive: Path) -> float:
        t0 = time.monotonic()
        run(["kind", "load", "image-archive", archive, "--name", self.name], timeout=180)
        dt = time.monotonic() - t0
        record("kind load image-archive", dt)
        return dt

    def wait_job(self, name: str, timeout: int = 180, namespace: str = "default") -> str:
        """Wait for a Job to complete; return its pods' logs. Fail fast on Failed."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            st = json.loads(self.kubectl("-n", namespace, "get", "job", name, "-o", "json").stdout)
            conds = {c["type"]: c["status"] for c in st.get("status", {}).get("conditions", [])}
            if conds.get("Complete") == "True":
                break
            if conds.get("Failed") == "True" or time.monotonic() > deadline:
                raise AssertionError(
                    f"job {name} did not complete: {conds}\n" + self.describe_pods(namespace, f"job-name={name}")
                )
            time.sleep(0.5)
        record(f"job {name} apply->complete", time.monotonic() - t0)
        return self.kubectl("-n", namespace, "logs", f"job/{name}").stdout

    def describe_pods(self, namespace: str, selector: str) -> str:
        out = self.kubectl("-n", namespace, "describe", "pods", "-l", selector, check=False).stdout
        logs = self.kubectl("-n", namespace, "logs", "-l", selector, "--tail=50", check=False)
        return out[-6000:] + "\nlogs:\n" + logs.stdout + logs.stderr

    def leftovers(self) -> dict[str, list[str]]:
        """Podman objects still belonging to this cluster."""
        ctrs = run(["podman", "ps", "-a", "--filter", f"label=io.x-k8s.kind.cluster={self.name}",
                    "--format", "{{.Names}}"]).stdout.split()
        vols = [v for v in run(["podman", "volume", "ls", "--format", "{{.Name}}"]).stdout.split()
                if self.name in v]
        vols += run(["podman", "volume", "ls", "--filter", f"label=io.x-k8s.kind.cluster={self.name}",
                     "--format", "{{.Name}}"]).stdout.split()
        nets = [n for n in run(["podman", "network", "ls", "--format", "{{.Name}}"]).stdout.split()
                if self.name in n]
        return {"containers": ctrs, "volumes": sorted(set(vols)), "networks": nets}


def make_cluster(tmp: Path, workers: int, host_sysctls: HostSysctls | None):
    c = KindCluster(tmp, workers=workers)
    try:
        c.create()
        c.wait_ready()
    except BaseException:
        teardown_cluster(c, host_sysctls)
        raise
    return c


def teardown_cluster(c: KindCluster, host_sysctls: HostSysctls | None):
    try:
        if c.created:
            c.delete()
    finally:
        if host_sysctls is not None:
            host_sysctls.restore()


def job(name: str, script: str, image: str = BUSYBOX_IMAGE, extra_spec: str = "") -> str:
    """A one-shot busybox Job; `extra_spec` is pod-spec YAML indented by six spaces."""
    return f"""
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
  backoffLimit: 0
  activeDeadlineSeconds: 150
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
{extra_spec}      containers:
      - name: main
        image: {image}
        imagePullPolicy: Never
        command: ["/bin/sh", "-c", {json.dumps(script)}]
"""
