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
    """{'cpus': quota/period, 'cpuset': '0-1', 'memory_mb': n} for the process's cgroups."""
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
        quota, period = _read(dirs["cpu"] / "cpu.cfs_quota_us"), _read(dirs["cpu"] / "cpu.cfs_period_us")
        if quota and period and int(quota) > 0:
            cpus = int(quota) / int(period)
        cpuset = _read(dirs.get("cpuset", ROOT) / "cpuset.cpus") if "cpuset" in dirs else None
        raw = _read(dirs["memory"] / "memory.limit_in_bytes") if "memory" in dirs else None
        mem = int(raw) // (1024 * 1024) if raw and int(raw) < _UNLIMITED_MEM else None
    elif "unified" in dirs:
        d = dirs["unified"]
        cpu_max = (_read(d / "cpu.max") or "max").split()
        if cpu_max[0] != "max":
            cpus = int(cpu_max[0]) / int(cpu_max[1])
        cpuset = _read(d / "cpuset.cpus") or None
        raw = _read(d / "memory.max")
        mem = int(raw) // (1024 * 1024) if raw and raw != "max" else None
    return {"cpus": cpus, "cpuset": cpuset, "memory_mb": mem}
