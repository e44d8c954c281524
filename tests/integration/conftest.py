"""Fixtures for tests that drive the real `kindslurm` CLI against the local
Slurm (setup/slurm.sh) and boot real kind clusters from the offline node image.

Each test gets its own XDG directories (records, kubeconfigs, job directories),
which the Slurm jobs inherit through sbatch's environment export.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KINDSLURM = [sys.executable, "-m", "kindslurm"]
LABEL = "io.x-k8s.kind.cluster"


def sh(argv: list[str], **kw) -> subprocess.CompletedProcess[str]:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 600)
    return subprocess.run(argv, **kw)


class Env:
    """A user's environment for one test: its own state, config and job dirs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.vars = dict(os.environ)
        for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_STATE_HOME", "state"), ("XDG_DATA_HOME", "data")):
            self.vars[var] = str(root / sub)
        for var in ("SLURM_JOB_ID", "SLURM_STEP_ID", "KINDSLURM_CONFIG", "SLURM_JOBID", "KINDSLURM_GC_GRACE"):
            self.vars.pop(var, None)
        self.vars["XDG_RUNTIME_DIR"] = str(root / "run")
        (root / "run").mkdir(mode=0o700, exist_ok=True)

    def ks(self, *args: str, timeout: float = 600, cwd: Path | str = REPO) -> subprocess.CompletedProcess[str]:
        return sh([*KINDSLURM, *args], env=self.vars, timeout=timeout, cwd=str(cwd))

    def records(self) -> list[dict]:
        d = Path(self.vars["XDG_STATE_HOME"]) / "kindslurm" / "runs"
        return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.is_dir() else []

    def record(self, ref: str) -> dict:
        for r in self.records():
            if ref in (r["run_id"], r.get("job_id"), r.get("cluster")):
                return r
        raise AssertionError(f"no record {ref}: {[r['run_id'] for r in self.records()]}")

    def kubeconfigs(self) -> list[Path]:
        d = Path(self.vars["XDG_STATE_HOME"]) / "kindslurm" / "kubeconfigs"
        return sorted(d.glob("*")) if d.is_dir() else []

    def wait_phase(self, ref: str, phases: tuple[str, ...], timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        rec: dict = {}
        while time.monotonic() < deadline:
            try:
                rec = self.record(ref)
            except AssertionError:
                rec = {}
            if rec.get("phase") in phases:
                return rec
            time.sleep(0.5)
        raise AssertionError(f"run {ref} never reached {phases}: {rec}")


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def kind_containers(name: str | None = None) -> list[str]:
    flt = f"label={LABEL}={name}" if name else f"label={LABEL}"
    return sh(["podman", "ps", "-a", "-q", "--filter", flt]).stdout.split()


def kind_volumes(name: str) -> list[str]:
    """kind labels each node's volume with the key `<node name>=true`."""
    vols = json.loads(sh(["podman", "volume", "ls", "--format", "json"]).stdout or "[]")
    node = re.compile(rf"^{re.escape(name)}-(control-plane|worker\d*|external-load-balancer)$")
    return [v["Name"] for v in vols if any(node.match(k) and val == "true" for k, val in (v.get("Labels") or {}).items())]


def assert_no_leftovers(env: Env, cluster: str) -> None:
    assert kind_containers(cluster) == [], f"containers of {cluster} left"
    assert kind_volumes(cluster) == [], f"volumes of {cluster} left"
    assert not [k for k in env.kubeconfigs() if cluster in k.name], "kubeconfig left"
    live = [r for r in env.records() if r["phase"] not in ("completed", "failed", "cancelled", "timeout", "collected")]
    assert live == [], f"live records left: {live}"
    if not kind_containers():
        assert sh(["podman", "network", "exists", "kind"]).returncode != 0, "unused kind network left"


def host_sysctls() -> dict[str, str]:
    """What a privileged kind node's kubelet rewrites on the host."""
    return {k: Path("/proc/sys", k).read_text() for k in ("kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory")}


def slurm_jobs() -> list[str]:
    return sh(["squeue", "-h", "-o", "%i"]).stdout.split()


def wait_job_gone(job_id: str, timeout: float = 180) -> str:
    """Wait until Slurm has finished the job (epilog included); returns its final state."""
    deadline = time.monotonic() + timeout
    st = ""
    while time.monotonic() < deadline:
        st = sh(["squeue", "-h", "-j", job_id, "-o", "%T"]).stdout.strip()
        if st in ("", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT") or st.startswith("CANCELLED"):
            if st != "COMPLETING":
                return st
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {st} after {timeout}s")


@pytest.fixture(scope="session")
def cluster_host() -> None:
    """Real clusters need root, podman, kind, Slurm and the node image: fail loudly without them."""
    problems = []
    if os.geteuid() != 0:
        problems.append("run as root (rootless kind needs cgroup v2; these machines have v1)")
    for tool in ("podman", "kind", "sbatch", "kubectl"):
        if not shutil.which(tool):
            problems.append(f"{tool} missing")
    if shutil.which("podman") and sh(["podman", "image", "exists", "localhost/kindslurm/node:v1.34.4"]).returncode:
        problems.append("node image missing: bash setup/node-image/build.sh")
    if shutil.which("sinfo") and sh(["sinfo", "-h"]).returncode:
        problems.append("Slurm not running: bash setup/slurm.sh start")
    if problems:
        pytest.fail("cannot boot real clusters: " + "; ".join(problems) + " (bash setup/install.sh --tests does it all)")


@pytest.fixture(scope="session", autouse=True)
def no_clusters_survive():
    """Whatever a failing test leaves, the host is cleaned afterwards."""
    before = set(sh(["podman", "ps", "-a", "--format", "{{.Names}}"]).stdout.split()) if shutil.which("podman") else set()
    yield
    if not shutil.which("podman"):
        return
    res = sh(["podman", "ps", "-a", "--filter", f"label={LABEL}", "--format", "json"])
    for c in json.loads(res.stdout or "[]"):
        if set(c.get("Names") or []) - before:
            name = (c.get("Labels") or {}).get(LABEL)
            if name and name.startswith("ks-"):
                sh(["kind", "delete", "cluster", "--name", name], env={**os.environ, "KIND_EXPERIMENTAL_PROVIDER": "podman"})
