"""Host sysctls a privileged kind node rewrites, put back when the last cluster goes.

The kubelet in a rootful node sets the host's kernel.panic, kernel.panic_on_oops
and vm.overcommit_memory. The first cluster on a node records the values it
found; when no cluster is left or booting, they are restored. Only root can
do either (rootless nodes cannot change host sysctls in the first place).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kindslurm import paths

KEYS = ("kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory")


def _saved() -> Path:
    return paths.runtime_dir() / "host-sysctls.json"


def record() -> None:
    """Call before creating a cluster, under the node's capacity lock."""
    if os.geteuid() != 0 or _saved().exists():
        return
    values = {}
    for key in KEYS:
        try:
            values[key] = Path("/proc/sys", key).read_text().strip()
        except OSError:
            pass
    paths.write_private(_saved(), json.dumps(values))


def restore() -> dict[str, str]:
    """Call when no cluster is left or booting, under the same lock; returns what changed."""
    if os.geteuid() != 0 or not _saved().exists():
        return {}
    changed = {}
    try:
        values = json.loads(_saved().read_text())
    except (OSError, ValueError):
        values = {}
    for key, value in values.items():
        path = Path("/proc/sys", key)
        try:
            if path.read_text().strip() != value:
                path.write_text(value)
                changed[key] = value
        except OSError:
            pass
    _saved().unlink(missing_ok=True)
    return changed
