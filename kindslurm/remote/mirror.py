"""Copying a run's job directory from the login node to this host.

Only regular files are copied (never a symlink a job could plant), each file
replaced atomically with the login node's mode and mtime, so running it again
copies only what changed. Directories made here are private (0700).
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from kindslurm import paths
from kindslurm.errors import KindslurmError
from kindslurm.transport.base import Transport


def mirror(transport: Transport, remote_dir: str, local_dir: Path) -> int:
    """Make `local_dir` hold what `remote_dir` holds; returns how many files were copied."""
    paths.ensure_private_dir(local_dir)
    copied = 0
    for rel, size, mtime in transport.walk(remote_dir):
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise KindslurmError(f"refusing to copy {rel!r} from {remote_dir}: not a plain relative path")
        target = local_dir.joinpath(*parts)
        try:
            st = os.lstat(target)
            if st.st_size == size and int(st.st_mtime) == int(mtime) and not os.path.islink(target):
                continue
        except FileNotFoundError:
            pass
        paths.ensure_private_dir(target.parent)
        transport.get_file(posixpath.join(remote_dir, rel), str(target))
        copied += 1
    return copied
