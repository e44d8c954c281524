"""How the submit side reaches the host where Slurm's commands and the job
directories live: this host (LocalTransport) or a login node over SSH (SSHTransport).

Everything the scheduler and the API do to that host goes through one object,
so moving them elsewhere means writing one new class, not touching callers.
Paths are strings, not pathlib objects: on a remote host a local Path would
suggest operations that are not there.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator, Protocol, Sequence, runtime_checkable

from kindslurm import proc

ReadFrom = Callable[[str, int], "bytes | None"]


@runtime_checkable
class Transport(Protocol):
    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float | None = proc.DEFAULT_TIMEOUT,
            input: str | None = None, retry: bool | None = None) -> proc.Result:
        """Run to completion. Failures map as proc.run maps them: a missing
        program is a KindslurmError, a hung one CommandTimeout, a non-zero
        exit CommandError when `check` is true. `retry` says whether the
        command may be sent again if the connection drops under it (None: the
        transport decides by the program; it matters only where connections drop)."""
        ...

    def read_text(self, path: str) -> str:
        """The whole file; OSError (FileNotFoundError when missing) otherwise."""
        ...

    def read_from(self, path: str, offset: int) -> bytes | None:
        """What the file holds past `offset`, or None while it cannot be read:
        the primitive `follow` polls, and SFTP can seek as well as a local file."""
        ...

    def write_text(self, path: str, text: str, mode: int | None = None) -> None:
        ...

    def list_dir(self, path: str, pattern: str = "*") -> list[str]:
        """Full paths of the entries matching the glob `pattern`, sorted; [] when `path` is missing."""
        ...

    def exists(self, path: str) -> bool:
        ...

    def follow(self, path: str, offset: int = 0, *, done: Callable[[], bool], interval: float = 1.0) -> Iterator[str]:
        """Like `tail -f`: yields whole lines as the file gains them until
        `done()` is true, then whatever is left (an unterminated last line
        gets its newline)."""
        ...

    def forward_port(self, host: str, port: int) -> tuple[str, int]:
        """Where this host can reach `host:port` of the remote side (an SSH
        tunnel's local end; the same address locally)."""
        ...

    def put_file(self, local: str, path: str, mode: int = 0o600) -> None:
        """Copy a file of this host there, atomically, its mode set before any byte is written."""
        ...

    def get_file(self, path: str, local: str) -> None:
        """Copy a file from there to this host (replacing `local` atomically, same mode and mtime)."""
        ...

    def make_dirs(self, path: str, mode: int = 0o700) -> None:
        """`mkdir -p`; directories made here get `mode`."""
        ...

    def walk(self, path: str) -> list[tuple[str, int, float]]:
        """Every regular file below `path`: (path relative to it, size, mtime); [] when missing.
        Symlinks are not followed (a job directory holds none of its own)."""
        ...

    def close(self) -> None:
        ...


def poll_lines(read_from: ReadFrom, path: str, offset: int, done: Callable[[], bool], interval: float,
               sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """`follow` for any transport that can read from an offset."""
    while True:
        finished = done()
        data = read_from(path, offset) or b""
        end = data.rfind(b"\n") + 1
        if finished:
            if data:
                yield data.decode(errors="replace") + ("" if data.endswith(b"\n") else "\n")
            return
        if end:
            yield data[:end].decode(errors="replace")
            offset += end
        sleep(interval)
