import os

from kindslurm.cluster import cgroups


def test_own_process_limits_are_readable():
    got = cgroups.limits(os.getpid())
    assert set(got) == {"cpus", "cpuset", "memory_mb"}
    assert got["cpuset"] is None or got["cpuset"][0].isdigit()


def test_missing_process():
    assert cgroups.limits(2**22 + 12345) == {"cpus": None, "cpuset": None, "memory_mb": None}
