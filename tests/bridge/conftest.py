"""The bridge's tests run against a real outer control plane (kube-apiserver,
etcd, kube-controller-manager, kube-scheduler on loopback, started once per
session), real kubectl, the real local Slurm and real inner kind clusters."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.bridge.controlplane import ControlPlane, binaries_problem
from tests.bridge.harness import Outer


@pytest.fixture(scope="session")
def outer() -> Iterator[Outer]:
    problems = [p for p in (binaries_problem(),) if p]
    for tool in ("kubectl", "sbatch", "podman", "kind"):
        if not shutil.which(tool):
            problems.append(f"{tool} missing")
    if os.geteuid() != 0:
        problems.append("run as root (real kind clusters need it on these cgroup v1 machines)")
    if problems:
        pytest.fail("cannot test the bridge: " + "; ".join(problems) + " (bash setup/install.sh --tests sets it all up)")
    cp = ControlPlane.start()
    try:
        yield Outer(cp)
    finally:
        cp.stop()


@pytest.fixture
def bridge_root(tmp_path: Path) -> Path:
    return tmp_path
