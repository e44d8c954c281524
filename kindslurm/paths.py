"""Where kindslurm keeps things: one place that names every file.

User state (records, kubeconfigs) lives under the user's own XDG directories
with 0700/0600 modes. Locks and creation markers live in the runtime
directory, on local disk where there is one (flock over NFS home directories
is unreliable), and per node in any case, because a marker must describe
*this* node's containers. Every directory kindslurm keeps files in is checked
to be the caller's, private and not a symlink before its contents are trusted.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn


def _xdg(var: str, default: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / default


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "kindslurm"


def state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "kindslurm"


def records_dir() -> Path:
    return state_dir() / "runs"


def kubeconfigs_dir() -> Path:
    return state_dir() / "kubeconfigs"


def tunnels_dir() -> Path:
    """The tunnels to interactive clusters this user runs (a state file and a kubeconfig each)."""
    return state_dir() / "tunnels"


def default_job_root() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / "kindslurm" / "jobs"


ROOT_RUNTIME_DIR = Path("/run/kindslurm")


def _uid() -> int:
    return os.geteuid()


def _usable_xdg_runtime(value: str | None) -> bool:
    """systemd's per-user runtime directory, if it really is the caller's own and private."""
    if not value or not os.path.isabs(value):
        return False
    try:
        st = os.lstat(value)
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == _uid()
            and not st.st_mode & 0o022 and st.st_mode & 0o300 == 0o300)


def runtime_dir() -> Path:
    """Per-user, node-local directory for locks and creation markers.

    Root always uses /run/kindslurm, whatever XDG_RUNTIME_DIR says: the Slurm
    Epilog runs gc as root and must find the markers the job wrote, and root's
    /run/user/0 exists in some sessions and not in others. Nobody else gets a
    world-writable fallback such as /tmp, where another user could plant the
    directory first; without a usable XDG_RUNTIME_DIR the directory lives in
    the user's own state directory, one per host, because a marker describes
    this node's containers and the home directory is often shared by every node.
    """
    if _uid() == 0:
        return ROOT_RUNTIME_DIR
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if _usable_xdg_runtime(xdg):
        return Path(str(xdg)) / "kindslurm"
    return state_dir() / "run" / os.uname().nodename


def markers_dir() -> Path:
    return runtime_dir() / "creating"


def _refuse(path: Path, problem: str, fix: str) -> NoReturn:
    from kindslurm.errors import PreflightError

    raise PreflightError(f"{path} {problem}: {fix}")


def _open_dir(path: Path, dir_fd: int | None = None, name: str | None = None, follow: bool = False) -> int:
    """An fd on the directory itself, never on what a symlink there points to (unless `follow`)."""
    target = name if name is not None else str(path)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        return os.open(target, flags, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            _refuse(path, "is a symlink, not a directory", f"remove it (rm {path}) and run again")
        if e.errno == errno.ENOTDIR:
            _refuse(path, "is not a directory", f"remove it (rm {path}) and run again")
        _refuse(path, f"cannot be opened ({e.strerror})", "check the permissions of its parent directories")


def ensure_private_dir(path: Path) -> Path:
    """Create a 0700 directory, or check an existing one, before anything trusts its contents.

    The directory itself must be the caller's, private and not a symlink: a
    directory someone else made, or a symlink planted in its place, would let
    them read our state or plant files we later act on. Existing parents are
    trusted as the user's own choice (the home directory, say); the parts
    created here are opened with O_NOFOLLOW one by one, so a symlink swapped in
    while they are made is refused too.
    """
    path = Path(os.path.abspath(path))
    missing: list[str] = []
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe.name)
        probe = probe.parent
    fd = _open_dir(probe, follow=True) if missing else -1
    try:
        current = probe
        for name in reversed(missing):
            current = current / name
            try:
                os.mkdir(name, 0o700, dir_fd=fd)
            except FileExistsError:
                pass
            except OSError as e:
                _refuse(current, f"cannot be created ({e.strerror})", "check the permissions of its parent directory")
            new = _open_dir(current, fd, name)
            os.close(fd)
            fd = new
        if fd < 0:
            fd = _open_dir(path)
        st = os.fstat(fd)
        if st.st_uid != _uid():
            _refuse(path, f"belongs to uid {st.st_uid}, not to you (uid {_uid()})",
                    "its owner or root must remove it before kindslurm can use this path")
        if st.st_mode & 0o077:
            try:
                os.fchmod(fd, 0o700)
            except OSError as e:
                _refuse(path, f"is open to others and cannot be made private ({e.strerror})", f"chmod 700 {path}")
    finally:
        if fd >= 0:
            os.close(fd)
    return path


def write_private(path: Path, data: str) -> None:
    """Atomically write a 0600 file (readers never see half a record).

    mkstemp creates a new 0600 file with O_EXCL in the checked directory, and
    os.replace swaps a symlink planted at `path` itself, never its target.
    """
    import tempfile

    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_private(path: Path) -> str:
    """A file's text, refusing a symlink at `path` (raises OSError, ELOOP for a symlink)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd) as f:
        return f.read()


@dataclass(frozen=True)
class JobPaths:
    """Every file of one run's job directory."""

    root: Path

    @property
    def spec(self) -> Path:
        return self.root / "spec.json"

    @property
    def batch_script(self) -> Path:
        return self.root / "batch.sh"

    @property
    def slurm_out(self) -> Path:
        return self.root / "slurm.out"

    @property
    def workload_log(self) -> Path:
        return self.root / "workload.log"

    @property
    def kind_log(self) -> Path:
        return self.root / "kind.log"

    @property
    def kind_config(self) -> Path:
        return self.root / "kind-config.yaml"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pods"

    @property
    def events(self) -> Path:
        return self.root / "events.txt"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def exitcode(self) -> Path:
        return self.root / "exitcode"

    @property
    def down_request(self) -> Path:
        """Written by `kindslurm down`: the held cluster ends as completed, not cancelled."""
        return self.root / "down-request"
