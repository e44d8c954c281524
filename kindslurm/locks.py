"""Node-local locks, per user: flock on files in the private runtime directory.

flock over NFS home directories is unreliable, so these live on local disk
(paths.runtime_dir), and they serialize only what runs on this one node.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Iterator

from kindslurm import paths


@contextlib.contextmanager
def local_lock(name: str, mode: int = fcntl.LOCK_EX) -> Iterator[bool]:
    """A flock on node-local disk, per user; yields False if LOCK_NB could not get it."""
    path = paths.ensure_private_dir(paths.runtime_dir()) / f"{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
