from kindslurm.node import capacity


def test_this_host_has_room_for_one_node():
    checks = capacity.check(1)
    assert {c.name for c in checks} >= {"capacity/inotify", "capacity/pids", "capacity/memory", "capacity/disk"}
    assert all(c.status == "ok" for c in checks), [c.line for c in checks]


def test_an_impossible_request_names_each_exhausted_resource_and_its_fix():
    checks = {c.name: c for c in capacity.check(10, booting=100_000)}
    for name in ("capacity/inotify", "capacity/pids", "capacity/memory", "capacity/disk"):
        assert checks[name].status == "error", checks[name].line
        assert checks[name].fix
    assert "+100000 booting" in checks["capacity/inotify"].detail


def test_inotify_usage_counts_our_own_instances():
    import os

    before = capacity.inotify_usage(os.getuid())
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init()
    assert fd >= 0
    try:
        wd = libc.inotify_add_watch(fd, b"/tmp", 0x100)
        assert wd >= 0
        after = capacity.inotify_usage(os.getuid())
        assert after[0] >= before[0] + 1 and after[1] >= before[1] + 1
    finally:
        os.close(fd)


def test_a_full_node_refuses_the_reservation_with_a_retryable_error(xdg, monkeypatch, tmp_path):
    import pytest

    from kindslurm import paths
    from kindslurm.errors import NodeFullError

    monkeypatch.setattr(paths, "runtime_dir", lambda: xdg / "run")
    monkeypatch.setattr(paths, "markers_dir", lambda: xdg / "run" / "creating")
    monkeypatch.setattr(capacity.hostsysctl, "record", lambda: None)
    marker = xdg / "run" / "creating" / "ks-full"
    with pytest.raises(NodeFullError) as e:
        capacity.reserve(marker, 100_000)
    assert e.value.retryable and "capacity/" in str(e.value)
    assert not marker.exists()
