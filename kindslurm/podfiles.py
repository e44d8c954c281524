"""The files a bridged pod's run keeps in its job directory, named in one place:
the node side (node/podagent.py) writes them, the bridge reads them.

The job directory is the channel between the compute node and the bridge on
the login node (both see the user's shared home), so the bridge needs no
connection to the node for the pod's status, its saved logs or a delete request.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DIR = "pod"


@dataclass(frozen=True)
class PodFiles:
    root: Path  # <job_dir>/pod

    @classmethod
    def of(cls, job_dir: str | Path) -> "PodFiles":
        return cls(Path(job_dir) / DIR)

    @property
    def status(self) -> Path:
        """The inner pod's status as the inner API server reports it, replaced at every change."""
        return self.root / "status.json"

    @property
    def endpoint(self) -> Path:
        """Where the bridge reaches the inner API server: the node's address and the API port."""
        return self.root / "endpoint.json"

    @property
    def delete_request(self) -> Path:
        """Written by the bridge when the outer pod is deleted: the grace period the inner pod gets."""
        return self.root / "delete.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, container: str, restart: int) -> Path:
        """One container instance's output with the kubelet's timestamps: `<container>.<restart>.log`."""
        return self.logs / f"{container}.{restart}.log"

    def log_instances(self, container: str) -> list[tuple[int, Path]]:
        """Every saved instance of a container, oldest first."""
        found = []
        for p in self.logs.glob(f"{container}.*.log") if self.logs.is_dir() else []:
            count = p.name[len(container) + 1:-len(".log")]
            if count.isdigit():
                found.append((int(count), p))
        return sorted(found)


def write_json(path: Path, data: Any) -> None:
    """Atomically (readers on another host never see half a file), 0600, in a directory made 0700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """The file's JSON, or None while it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
