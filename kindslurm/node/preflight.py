"""Node prerequisites: what `kindslurm doctor` prints and what the node side
checks before booting anything.

Each check says what it found and, when it fails, the fix. Errors stop a run
before `kind create`; warnings are printed and the run goes on.
"""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

from kindslurm.cluster.provider import HostInfo, Provider

OK, WARN, ERROR = "ok", "warn", "error"
MIN_FREE_GB = 4.0
REQUIRED_CONTROLLERS = ("cpu", "memory", "pids")


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    @property
    def line(self) -> str:
        return f"{self.name}: {self.detail}" + (f": {self.fix}" if self.fix and self.status != OK else "")


def cgroup_version(mounts: str | None = None) -> int:
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return 1
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "/sys/fs/cgroup":
            return 2 if parts[2] == "cgroup2" else 1
    return 1


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _sub_ids(path: str, user: str, uid: int) -> int:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return 0
    total = 0
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (user, str(uid)) and parts[2].isdigit():
            total += int(parts[2])
    return total


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def check_tool(name: str, path: str, required: bool, fix: str) -> Check:
    found = shutil.which(path)
    if found:
        return Check(name, OK, found)
    return Check(name, ERROR if required else WARN, f"{path} not found on PATH", fix)


def rootless_checks(uid: int, user: str, info: HostInfo | None, mounts: str | None = None) -> list[Check]:
    """Why this node can or cannot host rootless kind, in the user's terms."""
    checks: list[Check] = []
    version = cgroup_version(mounts)
    if version != 2:
        checks.append(
            Check(
                "cgroup",
                ERROR,
                "rootless kind needs cgroup v2 with delegated controllers, but this node runs cgroup v1",
                "boot the node with systemd.unified_cgroup_hierarchy=1, or run kindslurm as root",
            )
        )
    else:
        controllers = set(info.cgroup_controllers if info else [])
        missing = [c for c in REQUIRED_CONTROLLERS if c not in controllers]
        if missing:
            checks.append(
                Check(
                    "cgroup",
                    ERROR,
                    f"cgroup v2 controllers {', '.join(missing)} are not delegated to {user} "
                    "(kind: 'requires Delegate=yes')",
                    f"`loginctl enable-linger {user}` and a user@.service drop-in with "
                    "Delegate=cpu cpuset io memory pids, or run inside `systemd-run --user --scope -p Delegate=yes`",
                )
            )
        else:
            checks.append(Check("cgroup", OK, "cgroup v2, controllers cpu memory pids delegated"))
    for path, what in (("/etc/subuid", "subuid"), ("/etc/subgid", "subgid")):
        count = _sub_ids(path, user, uid)
        if count >= 65536:
            checks.append(Check(what, OK, f"{count} ids for {user}"))
        else:
            checks.append(
                Check(
                    what,
                    ERROR,
                    f"{user} has {count} {what} ids in {path}, rootless podman needs 65536",
                    f"usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}",
                )
            )
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if not xdg:
        checks.append(Check("XDG_RUNTIME_DIR", ERROR, "not set", f"`loginctl enable-linger {user}` or export XDG_RUNTIME_DIR=/run/user/{uid}"))
    elif not os.path.isdir(xdg) or os.stat(xdg).st_uid != uid:
        checks.append(
            Check(
                "XDG_RUNTIME_DIR",
                ERROR,
                f"{xdg} is missing or not yours (sbatch copies the login node's value)",
                f"`loginctl enable-linger {user}` on this node, or export XDG_RUNTIME_DIR=/run/user/{uid}",
            )
        )
    else:
        checks.append(Check("XDG_RUNTIME_DIR", OK, xdg))
    return checks


def run_checks(
    provider: Provider,
    *,
    kubectl: str = "kubectl",
    node_image: str | None = None,
    node_image_archive: str | None = None,
) -> list[Check]:
    uid = os.getuid()
    user = _user()
    needs = provider.tools()
    checks = [check_tool(n.name, n.path, n.required, n.fix) for n in needs]
    checks.append(check_tool("kubectl", kubectl, False, "install kubectl (setup/node-image/build.sh puts one in /usr/local/bin)"))
    engine_ok = bool(needs) and checks[0].status == OK  # the first need is the container engine
    info = provider.info() if engine_ok else None
    if uid != 0:
        checks += rootless_checks(uid, user, info)
    if engine_ok and info is None:
        checks.append(Check("podman info", ERROR, "`podman info` failed", "run `podman info` and fix what it reports"))
    if uid == 0:
        checks.append(Check("mode", OK, "rootful podman (running as root)"))
        if os.path.isdir("/lib/modules"):
            checks.append(Check("/lib/modules", OK, "present"))
        else:
            checks.append(Check("/lib/modules", ERROR, "missing (kind mounts it into every node)", "mkdir -p /lib/modules (setup/host/podman-host.sh)"))
    if info is not None:
        if cgroup_version() == 1 and info.runtime == "crun":
            checks.append(Check("OCI runtime", ERROR, "crun refuses cgroup v1 hybrid hosts", 'set runtime = "runc" in containers.conf'))
        else:
            checks.append(Check("OCI runtime", OK, info.runtime))
    instances = _read_int("/proc/sys/fs/inotify/max_user_instances")
    watches = _read_int("/proc/sys/fs/inotify/max_user_watches")
    if instances is not None and watches is not None:
        if instances < 512 or watches < 524288:
            checks.append(
                Check(
                    "inotify",
                    WARN,
                    f"max_user_instances={instances} max_user_watches={watches}: parallel clusters stall at boot",
                    "sysctl fs.inotify.max_user_instances=512 fs.inotify.max_user_watches=524288",
                )
            )
        else:
            checks.append(Check("inotify", OK, f"max_user_instances={instances} max_user_watches={watches}"))
    import resource

    nproc_soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if nproc_soft != resource.RLIM_INFINITY and nproc_soft < 4096:
        checks.append(Check("pids", WARN, f"ulimit -u is {nproc_soft}: a cluster runs hundreds of processes", "raise it to 4096 or more"))
    else:
        checks.append(Check("pids", OK, f"ulimit -u {'unlimited' if nproc_soft == resource.RLIM_INFINITY else nproc_soft}"))
    graph = (info.graph_root if info else None) or (
        "/var/lib/containers/storage" if uid == 0 else str(Path.home() / ".local/share/containers/storage")
    )
    probe = Path(graph)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    st = os.statvfs(probe)
    free_gb = st.f_bavail * st.f_frsize / 1e9
    checks.append(
        Check("disk", OK, f"{free_gb:.1f} GB free for {graph}")
        if free_gb >= MIN_FREE_GB
        else Check("disk", ERROR, f"only {free_gb:.1f} GB free for {graph}, a cluster needs {MIN_FREE_GB:.0f}", "free space or move podman's graphroot to a larger local disk")
    )
    if node_image and engine_ok:
        checks.append(image_check(provider.image_state(node_image, node_image_archive), node_image, node_image_archive))
    return checks


def image_check(state: str, image: str, archive: str | None) -> Check:
    if state == "present":
        return Check("node image", OK, f"{image} present")
    if state == "archive":
        return Check("node image", OK, f"{image} will be loaded from {archive}")
    if state == "pull":
        return Check("node image", WARN, f"{image} is not in podman: kind will pull it, which needs registry access",
                     "without a registry, build it with setup/node-image/build.sh or set node_image_archive")
    from kindslurm.cluster.kind_podman import missing_archive

    return Check("node image", ERROR, *missing_archive(image, archive))


def errors(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == ERROR]
