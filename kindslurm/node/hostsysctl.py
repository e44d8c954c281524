"""Host sysctls a privileged kind node rewrites, put back when the last cluster goes.

The kubelet in a rootful node sets the host's kernel.panic, kernel.panic_on_oops
and vm.overcommit_memory. The first cluster on a node records the values it
found; when no cluster is left or booting, they are restored. Only root can
do either (rootless nodes cannot change host sysctls in the first place).

The saved file is read as untrusted input: root writes what it says into
/proc/sys, so only the keys below with integer values are ever written.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from kindslurm import paths

KEYS = ("kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory")
PROC_SYS = Path("/proc/sys")
_INTEGER = re.compile(r"-?[0-9]+")


def _saved() -> Path:
    return paths.runtime_dir() / "host-sysctls.json"


def _load() -> dict[str, str] | None:
    """The recorded values that are safe to write back; None if nothing was recorded."""
    try:
        values = json.loads(paths.read_private(_saved()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    if not isinstance(values, dict):
        return {}
    return {k: v for k, v in values.items()
            if k in KEYS and isinstance(v, str) and _INTEGER.fullmatch(v)}


def record() -> None:
    """Call before creating a cluster, under the node's capacity lock."""
    if os.geteuid() != 0:
        return
    paths.ensure_private_dir(paths.runtime_dir())
    if os.path.lexists(_saved()):
        return
    values = {}
    for key in KEYS:
        try:
            values[key] = (PROC_SYS / key).read_text().strip()
        except OSError:
            pass
    paths.write_private(_saved(), json.dumps(values))


def restore() -> dict[str, str]:
    """Call when no cluster is left or booting, under the same lock; returns what changed."""
    if os.geteuid() != 0:
        return {}
    paths.ensure_private_dir(paths.runtime_dir())
    values = _load()
    if values is None:
        return {}
    changed = {}
    for key, value in values.items():
        path = PROC_SYS / key
        try:
            if path.read_text().strip() != value:
                path.write_text(value)
                changed[key] = value
        except OSError:
            pass
    _saved().unlink(missing_ok=True)
    return changed
