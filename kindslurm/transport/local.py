"""The transport for this very host: commands through kindslurm.proc, files through pathlib."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Sequence

from kindslurm import proc
from kindslurm.transport.base import poll_lines


class LocalTransport:
    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float | None = proc.DEFAULT_TIMEOUT,
            input: str | None = None, retry: bool | None = None) -> proc.Result:
        # looked up on the module at each call, so tests can stand in for proc.run
        return proc.run(argv, check=check, timeout=timeout, input=input)

    def read_text(self, path: str) -> str:
        return Path(path).read_text()

    def read_from(self, path: str, offset: int) -> bytes | None:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read()
        except OSError:
            return None

    def write_text(self, path: str, text: str, mode: int | None = None) -> None:
        p = Path(path)
        p.write_text(text)
        if mode is not None:
            os.chmod(p, mode)

    def list_dir(self, path: str, pattern: str = "*") -> list[str]:
        return sorted(str(p) for p in Path(path).glob(pattern))

    def exists(self, path: str) -> bool:
        return Path(path).exists()

    def follow(self, path: str, offset: int = 0, *, done: Callable[[], bool], interval: float = 1.0) -> Iterator[str]:
        return poll_lines(self.read_from, path, offset, done, interval)

    def forward_port(self, host: str, port: int) -> tuple[str, int]:
        return host, port

    def put_file(self, local: str, path: str, mode: int = 0o600) -> None:
        _copy(local, path, mode)

    def get_file(self, path: str, local: str) -> None:
        _copy(path, local, os.stat(path).st_mode & 0o777)
        shutil.copystat(path, local)

    def make_dirs(self, path: str, mode: int = 0o700) -> None:
        os.makedirs(path, mode=mode, exist_ok=True)

    def walk(self, path: str) -> list[tuple[str, int, float]]:
        found = []
        for root, dirs, files in os.walk(path):
            for name in files:
                full = os.path.join(root, name)
                st = os.lstat(full)
                if os.path.isfile(full) and not os.path.islink(full):
                    found.append((os.path.relpath(full, path), st.st_size, st.st_mtime))
        return sorted(found)

    def close(self) -> None:
        pass


def _copy(src: str, dst: str, mode: int) -> None:
    """A new file beside `dst` with `mode` from the start, then renamed over it."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dst) or ".", prefix=f".{os.path.basename(dst)}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            shutil.copyfileobj(f, out)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
