"""Reading back the CPU and memory limits a process really runs under.

podman 4.3's `update` changes the cgroup but not what `inspect` reports, so
the limits are read from the cgroup files themselves (v1 or v2).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
_UNLIMITED_MEM = 1 << 60


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def limits(pid: int) -> dict[str, float | str | None]:
    """{'cpus': quota/period, 'cpuset': '0-1', 'memory_mb': n}: the tightest limits on the process."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return {"cpus": None, "cpuset": None, "memory_mb": None}
    dirs: dict[str, Path] = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            dirs["unified"] = ROOT / path.lstrip("/")
        for c in controllers.split(","):
            if c:
                dirs[c] = ROOT / controllers / path.lstrip("/")
    cpus = cpuset = mem = None
    if "cpu" in dirs:
        for d in _up(dirs["cpu"]):
            quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
            if quota and period and int(quota) > 0:
                cpus = min(cpus or float("inf"), int(quota) / int(period))
        cpuset = _read(dirs["cpuset"] / "cpuset.cpus") if "cpuset" in dirs else None
        for d in _up(dirs["memory"]) if "memory" in dirs else []:
            raw = _read(d / "memory.limit_in_bytes")
            if raw and int(raw) < _UNLIMITED_MEM:
                mem = min(mem or _UNLIMITED_MEM, int(raw) // (1024 * 1024))
    elif "unified" in dirs:
        for d in _up(dirs["unified"]):
            cpu_max = (_read(d / "cpu.max") or "max").split()
            if cpu_max[0] != "max":
                cpus = min(cpus or float("inf"), int(cpu_max[0]) / int(cpu_max[1]))
            raw = _read(d / "memory.max")
            if raw and raw != "max":
                mem = min(mem or _UNLIMITED_MEM, int(raw) // (1024 * 1024))
        cpuset = _read(dirs["unified"] / "cpuset.cpus.effective") or None
    return {"cpus": cpus, "cpuset": cpuset, "memory_mb": mem}


def _up(d: Path) -> list[Path]:
    """The cgroup and its ancestors: a node's init moves itself into a child
    cgroup, while podman's limits sit on the container's own."""
    out = []
    while d != ROOT and ROOT in d.parents:
        out.append(d)
        d = d.parent
    return out
