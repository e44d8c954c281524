"""Runs after the cluster modules (file order): the host is left as found."""
import pytest

from kindharness import HOST_SYSCTLS, run

pytestmark = pytest.mark.cluster


def test_no_test_clusters_left(cluster_prereqs):
    ctrs = run(["podman", "ps", "-a", "--format", "{{.Names}} {{.Labels}}"]).stdout
    left = [l for l in ctrs.splitlines() if "io.x-k8s.kind.cluster:kstest-" in l]
    assert not left, left
    vols = [v for v in run(["podman", "volume", "ls", "--format", "{{.Name}}"]).stdout.split()
            if v.startswith("kstest-")]
    assert not vols, vols


def test_host_sysctls_restored(host_sysctls):
    if host_sysctls is None:
        pytest.fail("these tests run as root (rootful kind)")
    # the cluster fixtures restore after every delete; restore() is idempotent
    host_sysctls.restore()
    assert host_sysctls.current() == host_sysctls.recorded
    assert set(host_sysctls.recorded) == set(HOST_SYSCTLS)
