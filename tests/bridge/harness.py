"""Driving a real `kindslurm bridge` process against the test's outer control plane.

Each Bridge has its own user state (XDG directories, so records, job
directories and kubeconfigs never mix), its own node name and kubelet port,
and a serving certificate from the outer CA (the API server verifies it:
--kubelet-certificate-authority).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import yaml

from tests.bridge.controlplane import ControlPlane, free_port, kubeconfig

REPO = Path(__file__).resolve().parents[2]
RBAC = REPO / "workloads" / "bridge" / "rbac.yaml"
# the virtual node's taint; and no eviction while a test has its bridge stopped (the outer cluster's taint
# manager would otherwise evict the node's pods 300 s after its lease expired)
TOLERATE = [{"key": "kindslurm.io/virtual-node", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}]
TERMINAL_SLURM = ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
                  "OUT_OF_MEMORY")


def wait(what: str, fn: Callable[[], Any], timeout: float = 240, every: float = 0.5) -> Any:
    """Poll `fn` until it returns something true; AssertionError naming `what` (and the last value) otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {str(last)[:2000]})")


def sh(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(argv, **kw)


def slurm_state(job_id: str) -> str:
    out = sh(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"]).stdout.strip()
    return out.split()[0] if out else ""


def jobs_with_comment(comment: str) -> list[str]:
    out = sh(["squeue", "-h", "-t", "all", "-o", "%i|%k"]).stdout
    return [line.split("|")[0] for line in out.splitlines() if line.split("|", 1)[-1].strip() == comment]


class Outer:
    """The session's control plane with the bridge's RBAC applied and a kubeconfig of its ServiceAccount."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        cp.kubectl("apply", "-f", str(RBAC))
        token = cp.token("kindslurm", "kindslurm-bridge")
        self.bridge_kubeconfig = kubeconfig(cp.root / "bridge.kubeconfig", cp.server, cp.kubelet_ca, token=token)

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.cp.kubectl(*args, **kw)

    def apply(self, *docs: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(list(docs)))

    def get(self, kind: str, name: str, ns: str = "default") -> dict[str, Any] | None:
        res = self.kubectl("get", kind, name, "-n", ns, "-o", "json", check=False)
        return json.loads(res.stdout) if res.returncode == 0 else None

    def phase(self, pod: str, ns: str = "default") -> str:
        obj = self.get("pod", pod, ns)
        return ((obj or {}).get("status") or {}).get("phase", "") if obj else ""

    def events(self, pod: str, ns: str = "default") -> list[dict[str, Any]]:
        res = self.kubectl("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={pod}", "-o", "json")
        return json.loads(res.stdout).get("items") or []


class Bridge:
    def __init__(self, outer: Outer, root: Path, *, partition: str = "debug", lease_seconds: int = 12,
                 env: dict[str, str] | None = None, extra_config: dict[str, Any] | None = None) -> None:
        self.outer = outer
        self.root = root
        self.partition = partition
        self.node = f"ks-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        assert outer.cp.pki is not None
        self.cert, self.key = outer.cp.pki.issue(f"serving-{self.node}", f"kindslurm-bridge-{self.node}", server=True,
                                                 ips=("127.0.0.1",))
        self.env = dict(os.environ)
        for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_STATE_HOME", "state"), ("XDG_DATA_HOME", "data")):
            self.env[var] = str(root / sub)
        for var in ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_JOBID", "KUBECONFIG"):
            self.env.pop(var, None)
        (root / "run").mkdir(mode=0o700, exist_ok=True)
        self.env["XDG_RUNTIME_DIR"] = str(root / "run")
        self.env["PYTHONPATH"] = str(REPO)
        self.env.update(env or {})
        config = {"bridge": {"lease_seconds": lease_seconds, "poll_seconds": 1, "rediscover_seconds": 5,
                             "cluster_mem": "1G", **(extra_config or {})}}
        self.config = root / "config.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.env["KINDSLURM_CONFIG"] = str(self.config)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "bridge.log"
        self.starts = 0

    def start(self, wait_ready: bool = True) -> "Bridge":
        self.starts += 1
        log = open(self.log, "ab")
        log.write(f"---- start {self.starts} ----\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kindslurm", "bridge", "--kubeconfig", str(self.outer.bridge_kubeconfig),
             "--partition", self.partition, "--node-name", f"{self.partition}={self.node}", "--address", "127.0.0.1",
             "--port", str(self.port), "--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(self.root),
            start_new_session=True)
        log.close()
        if wait_ready:
            self.wait_acting()
        return self

    def wait_acting(self, timeout: float = 90) -> None:
        wait(f"bridge for {self.node} acting", lambda: self.text().count(f"node {self.node}: acting") >= self.starts
             or self._died(), timeout)
        assert self.proc is not None and self.proc.poll() is None, f"bridge exited: {self.text()[-3000:]}"

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def records(self) -> list[dict[str, Any]]:
        d = self.root / "state" / "kindslurm" / "runs"
        return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.is_dir() else []

    def record(self, uid: str) -> dict[str, Any] | None:
        return next((r for r in self.records() if r["run_id"] == f"pod-{uid}"), None)

    def pod(self, name: str, containers: list[dict[str, Any]], ns: str = "default", **spec: Any) -> dict[str, Any]:
        """A pod bound to this bridge's node (through the scheduler: it selects the node and tolerates the taint)."""
        meta = {"name": name, "namespace": ns, **spec.pop("metadata", {})}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                "spec": {"nodeSelector": {"kubernetes.io/hostname": self.node}, "tolerations": TOLERATE,
                         "restartPolicy": "Never", "containers": containers, **spec}}

    def cleanup(self) -> None:
        """Stop the bridge, cancel every job it left and wait for them (their clusters go with them)."""
        self.stop()
        jobs = [r["job_id"] for r in self.records() if r.get("job_id")]
        live = [j for j in jobs if slurm_state(j) not in ("", *TERMINAL_SLURM)]
        if live:
            sh(["scancel", *live])
            wait(f"jobs {live} ending", lambda: all(slurm_state(j) in ("", *TERMINAL_SLURM) for j in live), 180)
