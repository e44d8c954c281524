"""Running every external program kindslurm starts: the tools it drives (kind,
podman, Slurm's commands), the user's workload script and a foreground srun.

Timeouts, process groups and the mapping of failures to kindslurm's errors
live here once. Plain subprocess, not the `sh` package: teardown needs each
child in its own process group, so that an interrupted `kind create` can be
killed as a whole and a second signal never reaches a half-finished `kind
delete`; and importing `sh` costs more than `kindslurm --help` itself
(bench/tool_runner.sh).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Mapping, Sequence

from kindslurm.errors import CommandError, CommandTimeout, KindslurmError

DEFAULT_TIMEOUT = 120.0  # no tool call may hang a run or its teardown forever


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _not_found(argv0: str) -> KindslurmError:
    hint = {
        "kind": "install it (setup/install-kind.sh) or set tools.kind in the config",
        "podman": "install podman (apt-get install podman) or set tools.podman in the config",
        "kubectl": "install kubectl (setup/node-image/build.sh installs one) or set tools.kubectl",
        "srun": "install Slurm's client commands or set tools.srun",
    }.get(Path(argv0).name, f"install it or set tools.{Path(argv0).name} in the config")
    return KindslurmError(f"{argv0} not found on PATH: {hint}")


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float | None = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    log: IO[str] | None = None,
    cwd: str | None = None,
) -> Result:
    """Run to completion; with `log`, output is streamed there as well as kept.

    Past `timeout` the whole process group is killed and CommandTimeout raised
    (whatever `check` says): the caller cannot know what the tool did.
    """
    argv = [str(a) for a in argv]
    full_env = {**os.environ, **env} if env else None
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if log is None else subprocess.STDOUT,
            text=True,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise _not_found(argv[0]) from None
    try:
        if log is None:
            out, err = proc.communicate(input, timeout=timeout)
        else:
            out, err = _stream(proc, input, log, timeout), ""
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise CommandTimeout(argv, timeout or 0.0) from None
    except BaseException:
        kill_group(proc)
        raise
    result = Result(argv, proc.returncode, out or "", err or "")
    if check and not result.ok:
        raise CommandError(argv, result.returncode, (result.stderr or result.stdout))
    return result


def _stream(proc: subprocess.Popen[str], input: str | None, log: IO[str], timeout: float | None) -> str:
    """Copy output to `log` line by line from a thread, so the timeout holds
    even when the tool prints nothing."""
    chunks: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            chunks.append(line)
            log.write(line)
            log.flush()

    if input is not None:
        assert proc.stdin is not None
        proc.stdin.write(input)
        proc.stdin.close()
    t = threading.Thread(target=pump, daemon=True)
    t.start()
    proc.wait(timeout=timeout)
    t.join(timeout=5)
    return "".join(chunks)


def spawn(argv: Sequence[str], *, cwd: str | None = None, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """A long-running child in its own process group, stdout and stderr merged
    into one text pipe (the workload): the caller streams its output and ends
    it with `stop_group`. `env`, if given, is the child's whole environment."""
    argv = [str(a) for a in argv]
    try:
        return subprocess.Popen(
            argv, cwd=cwd, env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
    except FileNotFoundError:
        raise _not_found(argv[0]) from None


def pipe(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A child whose stdin and stdout are a binary byte stream (a tunnel's relay),
    in its own process group; its stderr goes where ours does."""
    argv = [str(a) for a in argv]
    try:
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                env=dict(env) if env is not None else None, start_new_session=True)
    except FileNotFoundError:
        raise _not_found(argv[0]) from None


def detach(argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """A background process that outlives us (a tunnel), in a session of its own, output appended to `log`."""
    argv = [str(a) for a in argv]
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True,
                                 close_fds=True)
    except FileNotFoundError:
        raise _not_found(argv[0]) from None
    finally:
        os.close(fd)
    return child


def foreground(argv: Sequence[str]) -> int:
    """A child that owns the terminal (srun): it gets Ctrl-C itself and
    forwards it to its step, so we ignore SIGINT meanwhile and only wait."""
    argv = [str(a) for a in argv]
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.call(argv)
    except FileNotFoundError:
        raise _not_found(argv[0]) from None
    finally:
        signal.signal(signal.SIGINT, old)


def stop_group(proc: subprocess.Popen[str], grace: float = 5.0) -> None:
    """SIGTERM to the child's whole process group, SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        kill_group(proc)
    except ProcessLookupError:
        pass


def kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks: with the pid, it tells a live
    owner from a recycled pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def alive(pid: int | None, start: str | None) -> bool:
    if not pid:
        return False
    now = start_time(pid)
    return now is not None and (start is None or now == start)
