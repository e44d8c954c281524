"""Fixtures for the node-image tests (tests/image): real kind clusters under
rootful podman, from the offline node image.  Helpers live in kindharness.py.

Needs root, podman, kind (setup/install-kind.sh), the node image
(setup/node-image/build.sh) and the busybox test image
(setup/images/build-test-images.sh).  Without them the cluster tests fail
with the missing piece named: `bash setup/install.sh --tests` provides all.
"""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kindharness import (  # noqa: E402
    TIMINGS,
    HostSysctls,
    make_cluster,
    prereq_problem,
    teardown_cluster,
)


@pytest.fixture(scope="session", autouse=True)
def host_sysctls():
    """Record the host sysctls the kubelet rewrites; restore them at the end."""
    hs = HostSysctls() if os.geteuid() == 0 else None
    yield hs
    if hs is not None:
        hs.restore()


@pytest.fixture(scope="session")
def cluster_prereqs():
    problem = prereq_problem()
    if problem:
        pytest.fail(problem)


@pytest.fixture(scope="module")
def one_node_cluster(cluster_prereqs, host_sysctls, tmp_path_factory):
    c = make_cluster(tmp_path_factory.mktemp("one-node"), 0, host_sysctls)
    try:
        yield c
    finally:
        teardown_cluster(c, host_sysctls)


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("kind cluster timings")
        for name, secs in TIMINGS:
            terminalreporter.write_line(f"{name:40s} {secs:7.2f} s")
