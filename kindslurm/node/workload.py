"""The user's workload script as a child process of the node side.

It runs in its own process group, so stopping it stops everything it started,
with its output copied line by line to workload.log and to the job's output.
`setpriv --pdeathsig KILL` makes it die with the node side even on SIGKILL,
where nothing of ours runs and a linuxproc-tracked Slurm would miss it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Callable, Mapping


def _die_with_parent() -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv and subprocess.run([setpriv, "--pdeathsig", "KILL", "--", "true"], capture_output=True).returncode == 0:
        return [setpriv, "--pdeathsig", "KILL", "--"]
    return []


def script_to_run(copy: str, origin: str | None, say: Callable[[str], None]) -> str:
    """The script as submitted. While the original is unchanged it runs from
    its own path, so `$(dirname "$0")` and BASH_SOURCE find its sibling files;
    if it was edited after submission, the submitted copy runs instead."""
    if not origin:
        return copy
    try:
        if Path(origin).read_bytes() == Path(copy).read_bytes():
            return origin
    except OSError:
        pass
    say(f"warning: {origin} changed after submission: running the submitted copy {copy}")
    return copy


class Workload:
    def __init__(self, script: str, args: list[str], *, cwd: str, env: Mapping[str, str], log: Path, out: IO[str]) -> None:
        argv = [script, *args] if os.access(script, os.X_OK) else ["bash", script, *args]
        self.argv = _die_with_parent() + argv
        self.cwd = cwd
        self.env = dict(env)
        self.log_path = log
        self.out = out
        self.proc: subprocess.Popen[str] | None = None

    def run(self, deadline: float | None) -> int | None:
        """The exit code (128+N for a signal), or None if the deadline passed first."""
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            )
            pump = threading.Thread(target=self._pump, args=(self.proc, log), daemon=True)
            pump.start()
            while True:
                try:
                    rc = self.proc.wait(timeout=1.0)  # short waits: signals are handled between them
                    break
                except subprocess.TimeoutExpired:
                    if deadline is not None and time.monotonic() >= deadline:
                        self.stop()
                        pump.join(timeout=5)
                        return None
            pump.join(timeout=5)
        return rc if rc >= 0 else 128 - rc

    def _pump(self, p: subprocess.Popen[str], log: IO[str]) -> None:
        assert p.stdout is not None
        for line in p.stdout:
            log.write(line)
            log.flush()
            self.out.write(line)
            self.out.flush()

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to the whole process group, SIGKILL after `grace` seconds."""
        p = self.proc
        if p is None or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
