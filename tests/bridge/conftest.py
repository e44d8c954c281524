"""The bridge's tests run against a real outer control plane (kube-apiserver,
etcd, kube-controller-manager, kube-scheduler on loopback, started once per
session), real kubectl, the real local Slurm and real inner kind clusters."""

from __future__ import annotations

import os
import shutil
import threading
from typing import Iterator

import pytest

from tests.bridge.controlplane import ControlPlane, binaries_problem
from tests.bridge.harness import Bridge, Outer
from tests.bridge.scene import Scene, objects


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


@pytest.fixture(scope="session")
def scene(outer: Outer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """Every pod of test_pods and test_streaming, created together so their clusters boot side by side."""
    root = tmp_path_factory.mktemp("pods")
    s = Scene(outer, Bridge(outer, root / "main"), Bridge(outer, root / "adopt", env={"KINDSLURM_BRIDGE_FAULT":
                                                                                     "after-submit"}),
              Bridge(outer, root / "doomed"))
    recorder = threading.Thread(target=s.record_phases, daemon=True)
    try:
        s.main.start()
        s.doomed.start()
        s.adopt.start()
        recorder.start()
        outer.apply(*objects(s))
        yield s
    finally:
        s.stop.set()
        for b in (s.main, s.adopt, s.doomed):
            b.cleanup()
        outer.kubectl("delete", "pods,jobs,configmaps,secrets", "--all", "--force", "--grace-period=0", check=False)
