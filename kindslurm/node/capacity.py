"""Capacity before boot: what parallel clusters exhaust first on a shared node.

Checked right before `kind create`, so a full node fails in a second with the
resource named, instead of a kind timeout minutes later (kind's --wait only
warns). Per-node needs were measured on a one-node cluster (kind v0.30,
Kubernetes v1.34) and rounded up.

Two shared resources need no budget here: every rootless kind node of a user
maps into the same subuid/subgid range (its size is a preflight check), and
the API server's host port is picked by podman when it binds (apiServerPort
-1), so parallel clusters cannot lease the same one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from kindslurm.node import hostsysctl
from kindslurm import paths, proc
from kindslurm.cluster.provider import Provider
from kindslurm.errors import ClusterExistsError, NodeFullError
from kindslurm.node.preflight import ERROR, OK, Check

PER_NODE = {
    "inotify_instances": 24,
    "inotify_watches": 4000,
    "pids": 400,
    "memory_mb": 900,
    "disk_gb": 2.5,
}


def inotify_usage(uid: int) -> tuple[int, int]:
    """(instances, watches) held by processes of `uid` — the budget the limits count."""
    instances = watches = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            fds = os.scandir(f"/proc/{entry.name}/fd")
        except OSError:
            continue
        with fds:
            for fd in fds:
                try:
                    if os.readlink(fd.path) != "anon_inode:inotify":
                        continue
                    instances += 1
                    with open(f"/proc/{entry.name}/fdinfo/{fd.name}") as f:
                        watches += sum(1 for line in f if line.startswith("inotify"))
                except OSError:
                    continue
    return instances, watches


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _mem_available_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def check(nodes: int, storage: str = "/var/lib/containers/storage", booting: int = 0) -> list[Check]:
    """`booting` counts nodes of clusters being created right now: their
    resources are not in use yet but will be."""
    uid = os.getuid()
    nodes_now = nodes
    nodes = nodes + booting
    checks: list[Check] = []
    max_inst = _read_int("/proc/sys/fs/inotify/max_user_instances")
    max_watch = _read_int("/proc/sys/fs/inotify/max_user_watches")
    if max_inst and max_watch:
        used_inst, used_watch = inotify_usage(uid)
        need_inst, need_watch = nodes * PER_NODE["inotify_instances"], nodes * PER_NODE["inotify_watches"]
        if max_inst - used_inst < need_inst or max_watch - used_watch < need_watch:
            checks.append(Check(
                "capacity/inotify", ERROR,
                f"{used_inst}/{max_inst} inotify instances and {used_watch}/{max_watch} watches in use, "
                f"{nodes_now} node(s) (+{booting} booting) need about {need_inst} and {need_watch} more",
                "wait for other clusters to end, or raise fs.inotify.max_user_instances / max_user_watches",
            ))
        else:
            checks.append(Check("capacity/inotify", OK, f"{max_inst - used_inst} instances, {max_watch - used_watch} watches free"))
    pid_max = _read_int("/proc/sys/kernel/pid_max")
    if pid_max:
        running = sum(1 for e in os.scandir("/proc") if e.name.isdigit())
        need = nodes * PER_NODE["pids"]
        if pid_max - running < need:
            checks.append(Check("capacity/pids", ERROR, f"{running} of {pid_max} pids in use, {nodes} node(s) need about {need}",
                                "wait for other jobs, or raise kernel.pid_max"))
        else:
            checks.append(Check("capacity/pids", OK, f"{pid_max - running} pids free"))
    mem = _mem_available_mb()
    if mem is not None:
        need = nodes * PER_NODE["memory_mb"]
        status = OK if mem >= need else ERROR
        checks.append(Check("capacity/memory", status, f"{mem} MB available, {nodes} node(s) need about {need}",
                            "ask Slurm for a less busy node (--exclusive) or use fewer workers"))
    probe = Path(storage)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    st = os.statvfs(probe)
    free = st.f_bavail * st.f_frsize / 1e9
    need_gb = nodes * PER_NODE["disk_gb"]
    checks.append(Check("capacity/disk", OK if free >= need_gb else ERROR,
                        f"{free:.1f} GB free under {storage}, {nodes} node(s) need about {need_gb:.1f}",
                        "free space in podman's storage or move graphroot to a larger local disk"))
    return checks


def marker_alive(marker: dict[str, Any] | None) -> bool:
    pid, start = (marker or {}).get("pid"), (marker or {}).get("start")
    return isinstance(pid, int) and pid > 0 and proc.alive(pid, start if isinstance(start, str) else None)


def read_markers() -> dict[str, dict[str, Any]]:
    """This node's creation markers by cluster name; an unreadable one still
    proves kindslurm made the cluster, it just tells nothing more."""
    d = paths.markers_dir()
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(d.iterdir()) if d.is_dir() else []:
        if p.name.startswith(".") or not p.is_file():
            continue  # write_private's half-written temporaries
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            data = {}
        out[p.name] = data if isinstance(data, dict) else {}
    return out


def write_marker(marker: Path, nodes: int, booting: bool, owner: dict[str, Any] | None = None) -> None:
    """The creation marker: whose cluster this is (gc reads job_id, run_id,
    kubeconfig and state_dir from it, even when it cannot see the record) and
    whether it still boots."""
    pid = os.getpid()
    try:
        old = json.loads(marker.read_text()) if owner is None else {}
    except (OSError, ValueError):
        old = {}
    data = {**old, **(owner or {}), "pid": pid, "start": proc.start_time(pid), "time": time.time(),
            "nodes": nodes, "booting": booting}
    paths.ensure_private_dir(marker.parent)
    paths.write_private(marker, json.dumps(data))


def claim(marker: Path) -> None:
    """Take the cluster name on this node, atomically: two runs can never both
    think a cluster is theirs (and delete it on failure)."""
    paths.ensure_private_dir(marker.parent)
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        try:
            data = json.loads(marker.read_text())
        except (OSError, ValueError):
            data = {}
        if marker_alive(data if isinstance(data, dict) else {}):
            raise ClusterExistsError(
                f"cluster name {marker.name} is in use by pid {data.get('pid')} on this node: pick another --name"
            ) from None
        return  # a dead run's marker: the name is free unless its containers remain (checked at create)
    os.close(fd)


def reserve(marker: Path, nodes: int, owner: dict[str, Any] | None = None) -> None:
    """Check capacity and claim it in one step, so jobs starting in the same
    second cannot all see the same free resources."""
    from kindslurm.locks import local_lock

    with local_lock("capacity"):
        booting = sum(int(data.get("nodes") or 1) for name, data in read_markers().items()
                      if name != marker.name and data.get("booting") and marker_alive(data))
        for c in check(nodes, booting=booting):
            if c.status != OK:
                raise NodeFullError(c.line)
        hostsysctl.record()
        write_marker(marker, nodes, booting=True, owner=owner)


def release(provider: Provider) -> dict[str, str]:
    """After a teardown: when no cluster is left or booting on the node, put back
    the host sysctls the kubelet changed. Returns what was restored."""
    from kindslurm.locks import local_lock

    with local_lock("capacity"):
        if paths.markers_dir().is_dir() and any(paths.markers_dir().iterdir()):
            return {}
        if provider.clusters():
            return {}
        return hostsysctl.restore()
