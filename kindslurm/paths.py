"""Where kindslurm keeps things: one place that names every file.

User state (records, kubeconfigs) lives under the user's own XDG directories
with 0700/0600 modes. Locks and creation markers live on local disk (the
runtime directory), because flock over NFS home directories is unreliable and
because a marker must describe *this* node's containers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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


def default_job_root() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / "kindslurm" / "jobs"


def runtime_dir() -> Path:
    """Per-user, node-local directory for locks and creation markers."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK) and os.stat(xdg).st_uid == os.getuid():
        return Path(xdg) / "kindslurm"
    import tempfile

    return Path(tempfile.gettempdir()) / f"kindslurm-{os.getuid()}"


def markers_dir() -> Path:
    return runtime_dir() / "creating"


def ensure_private_dir(path: Path) -> Path:
    """Create a 0700 directory and refuse one someone else owns."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if st.st_uid != os.getuid():
        from kindslurm.errors import PreflightError

        raise PreflightError(f"{path} belongs to uid {st.st_uid}, not you: remove it or set XDG_RUNTIME_DIR")
    if st.st_mode & 0o077:
        path.chmod(0o700)
    return path


def write_private(path: Path, data: str) -> None:
    """Atomically write a 0600 file (readers never see half a record)."""
    import tempfile

    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
