"""The transport to a login node over SSH (paramiko): the second Transport.

One connection per invocation, opened on first use and shared by commands,
files and port forwards. When it drops, the next call reconnects with backoff;
what cannot have acted twice is retried (reads, queries, file copies, scancel),
anything else ends in ConnectionLost (a CommandTimeout: its outcome is
unknown), so sbatch is looked up by its comment instead of sent again.

Commands run through the login shell as one shlex-quoted line, so every
argument arrives as exactly one word; their failures map as proc.run maps
them. Files go by SFTP: writes land in a temporary file whose mode is set
before any byte, then are renamed over the target.
"""

from __future__ import annotations

import codecs
import fnmatch
import os
import posixpath
import secrets
import shlex
import socket
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Sequence, TypeVar

from kindslurm import proc
from kindslurm.errors import CommandError, CommandTimeout, ConnectionLost, KindslurmError, Unreachable
from kindslurm.transport.base import poll_lines
from kindslurm.transport.sshconnect import Chain, connect
from kindslurm.transport.sshtarget import Hop, Target, resolve

T = TypeVar("T")
# programs whose second run changes nothing: retried across a reconnect
SAFE_TO_REPEAT = frozenset({"squeue", "sacct", "sinfo", "scontrol", "scancel", "true", "test", "cat", "id"})
SFTP_TIMEOUT = 60.0
CHUNK = 1 << 16


class _Lost(Exception):
    """The connection went away under an operation."""


class SSHTransport:
    def __init__(self, target: Target, *, hops: list[Hop] | None = None, reconnect_for: float = 120.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.target = target
        self.hops = hops or resolve(target)
        self.host = self.hops[-1].shown
        self.reconnect_for = reconnect_for
        self.sleep = sleep
        self.reconnects = 0
        self._chain: Chain | None = None
        self._ever = False  # connected once: a new connection now is a reconnect, with backoff
        self._sftp: Any = None
        self._lock = threading.RLock()
        self._forwards: list[Any] = []

    # -- the connection ---------------------------------------------------
    def _connection(self) -> Chain:
        with self._lock:
            if self._chain is not None and self._chain.active():
                return self._chain
            self._drop()
            self._chain = self._reconnect() if self._ever else connect(self.hops, self.target.accept_new)
            self._ever = True
            return self._chain

    def _reconnect(self) -> Chain:
        deadline = time.monotonic() + self.reconnect_for
        delay = 0.5
        while True:
            try:
                chain = connect(self.hops, self.target.accept_new)
                self.reconnects += 1
                return chain
            except Unreachable as e:
                if time.monotonic() + delay > deadline:
                    raise Unreachable(f"the connection to {self.host} dropped and did not come back within "
                                      f"{self.reconnect_for:.0f}s ({e})") from None
                self.sleep(delay)
                delay = min(delay * 2, 8.0)

    def _drop(self) -> None:
        with self._lock:
            if self._chain is not None:
                self._chain.close()
            self._chain, self._sftp = None, None

    def _call(self, fn: Callable[[Chain], T], retry: bool = True, argv: Sequence[str] = ()) -> T:
        """`fn` on a live connection; a drop under it reconnects and, if `retry`, runs it again."""
        import paramiko

        while True:
            chain = self._connection()
            try:
                return fn(chain)
            except (_Lost, socket.timeout, EOFError, OSError, paramiko.SSHException) as e:
                timed_out = isinstance(e, socket.timeout)
                if not isinstance(e, _Lost) and not timed_out and chain.active():
                    raise  # a real answer (a missing file), not a drop
                self._drop()
                if not retry:
                    raise ConnectionLost(list(argv), self.host) from None

    def close(self) -> None:
        for fwd in self._forwards:
            fwd.close()
        self._forwards = []
        self._drop()
        self._ever = False

    # -- commands ---------------------------------------------------------
    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float | None = proc.DEFAULT_TIMEOUT,
            input: str | None = None, retry: bool | None = None) -> proc.Result:
        """As proc.run, on the login node. `retry` (default: only SAFE_TO_REPEAT
        programs) says whether a command may be sent again after a drop."""
        argv = [str(a) for a in argv]
        again = posixpath.basename(argv[0]) in SAFE_TO_REPEAT if retry is None else retry
        code, out, err = self._call(lambda c: self._exec(c, argv, timeout, input), again, argv)
        result = proc.Result(argv, code, out, err)
        if code == 127 and "not found" in err:
            raise KindslurmError(f"{argv[0]} not found on {self.host}: install it there, or set its path "
                                 f"(tools.{posixpath.basename(argv[0])}, remote.command) in the config")
        if check and not result.ok:
            raise CommandError(argv, code, err or out)
        return result

    def stream(self, argv: Sequence[str], out: IO[str], err: IO[str], *, timeout: float | None = None,
               retry: bool = False) -> int:
        """Run with its output copied to `out`/`err` as it comes; returns the exit code."""
        argv = [str(a) for a in argv]
        return self._call(lambda c: self._exec(c, argv, timeout, None, out, err)[0], retry, argv)

    def _exec(self, chain: Chain, argv: list[str], timeout: float | None, input: str | None,
              out: IO[str] | None = None, err: IO[str] | None = None) -> tuple[int, str, str]:
        chan = chain.transport.open_session(timeout=30)
        bufs: tuple[list[str], list[str]] = ([], [])
        dec = (codecs.getincrementaldecoder("utf-8")("replace"), codecs.getincrementaldecoder("utf-8")("replace"))
        sinks = (out, err)

        def take(i: int, data: bytes) -> None:
            text = dec[i].decode(data)
            bufs[i].append(text)
            if sinks[i] is not None and text:
                sinks[i].write(text)  # type: ignore[union-attr]
                sinks[i].flush()  # type: ignore[union-attr]

        try:
            chan.exec_command(shlex.join(argv))
            if input is not None:
                chan.sendall(input.encode())
            chan.shutdown_write()
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                busy = False
                while chan.recv_ready():
                    take(0, chan.recv(CHUNK))
                    busy = True
                while chan.recv_stderr_ready():
                    take(1, chan.recv_stderr(CHUNK))
                    busy = True
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise CommandTimeout(argv, timeout or 0.0)
                if not busy:
                    time.sleep(0.01)
            code = chan.recv_exit_status()
            if code == -1:
                raise _Lost()
            take(0, b"")
            take(1, b"")
            return code, "".join(bufs[0]) + dec[0].decode(b"", final=True), "".join(bufs[1])
        finally:
            chan.close()

    # -- files --------------------------------------------------------------
    def _files(self, chain: Chain) -> Any:
        with self._lock:
            if self._sftp is None or self._chain is not chain:
                self._sftp = chain.clients[-1].open_sftp()
                self._sftp.get_channel().settimeout(SFTP_TIMEOUT)
            return self._sftp

    def read_text(self, path: str) -> str:
        def read(c: Chain) -> str:
            with self._files(c).open(path, "rb") as f:
                f.prefetch()
                return f.read().decode(errors="replace")

        return self._call(read)

    def read_from(self, path: str, offset: int) -> bytes | None:
        def read(c: Chain) -> bytes | None:
            try:
                with self._files(c).open(path, "rb") as f:
                    f.seek(offset)
                    return bytes(f.read())
            except OSError as e:
                if e.errno is None:
                    raise  # the channel, not the file
                return None

        return self._call(read)

    def exists(self, path: str) -> bool:
        def probe(c: Chain) -> bool:
            try:
                self._files(c).stat(path)
                return True
            except FileNotFoundError:
                return False

        return self._call(probe)

    def list_dir(self, path: str, pattern: str = "*") -> list[str]:
        def glob(c: Chain) -> list[str]:
            found = [path.rstrip("/") or "/"]
            for part in pattern.split("/"):
                nxt = []
                for d in found:
                    try:
                        names = self._files(c).listdir(d)
                    except OSError as e:
                        if e.errno is None:
                            raise
                        continue
                    nxt += [posixpath.join(d, n) for n in names if fnmatch.fnmatch(n, part)]
                found = nxt
            return sorted(found)

        return self._call(glob)

    def _write(self, path: str, mode: int, feed: Callable[[Any], None]) -> None:
        def write(c: Chain) -> None:
            sftp = self._files(c)
            tmp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.{secrets.token_hex(4)}")
            try:
                with sftp.open(tmp, "wx") as f:
                    f.chmod(mode)
                    f.set_pipelined(True)
                    feed(f)
                sftp.posix_rename(tmp, path)
            except BaseException:
                try:
                    sftp.remove(tmp)
                except Exception:
                    pass
                raise

        self._call(write)

    def write_text(self, path: str, text: str, mode: int | None = None) -> None:
        self._write(path, 0o600 if mode is None else mode, lambda f: f.write(text.encode()))

    def put_file(self, local: str, path: str, mode: int = 0o600) -> None:
        def feed(f: Any) -> None:
            with open(local, "rb") as src:
                while chunk := src.read(CHUNK * 4):
                    f.write(chunk)

        self._write(path, mode, feed)

    def get_file(self, path: str, local: str) -> None:
        def get(c: Chain) -> None:
            sftp = self._files(c)
            st = sftp.stat(path)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(local) or ".", prefix=f".{os.path.basename(local)}.")
            try:
                os.fchmod(fd, stat.S_IMODE(st.st_mode or 0o600))
                with os.fdopen(fd, "wb") as dst:
                    sftp.getfo(path, dst)
                os.utime(tmp, (st.st_atime or time.time(), st.st_mtime or time.time()))
                os.replace(tmp, local)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

        self._call(get)

    def make_dirs(self, path: str, mode: int = 0o700) -> None:
        def mkdirs(c: Chain) -> None:
            sftp = self._files(c)
            current = "/" if path.startswith("/") else ""
            for part in [p for p in path.split("/") if p]:
                current = posixpath.join(current, part) if current else part
                try:
                    sftp.stat(current)
                except FileNotFoundError:
                    sftp.mkdir(current, mode)
                    sftp.chmod(current, mode)

        self._call(mkdirs)

    def walk(self, path: str) -> list[tuple[str, int, float]]:
        def walk(c: Chain) -> list[tuple[str, int, float]]:
            sftp, found, todo = self._files(c), [], [""]
            while todo:
                rel = todo.pop()
                try:
                    entries = sftp.listdir_attr(posixpath.join(path, rel) if rel else path)
                except OSError as e:
                    if e.errno is None:
                        raise
                    continue
                for a in entries:
                    sub = posixpath.join(rel, a.filename) if rel else a.filename
                    if stat.S_ISDIR(a.st_mode or 0):
                        todo.append(sub)
                    elif stat.S_ISREG(a.st_mode or 0):
                        found.append((sub, int(a.st_size or 0), float(a.st_mtime or 0)))
            return sorted(found)

        return self._call(walk)

    def follow(self, path: str, offset: int = 0, *, done: Callable[[], bool], interval: float = 1.0) -> Iterator[str]:
        return poll_lines(self.read_from, path, offset, done, interval)

    # -- ports --------------------------------------------------------------
    def forward_port(self, host: str, port: int) -> tuple[str, int]:
        """A listener on this host's 127.0.0.1 whose connections reach `host:port` as the login node sees it."""
        from kindslurm.transport.sshforward import Forward

        def channel() -> Any:
            return self._call(lambda c: c.transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0),
                                                                 timeout=30))

        fwd = Forward(channel)
        self._forwards.append(fwd)
        return fwd.address
