"""The user's workload script as a child process of the node side.

It runs in its own process group, so stopping it stops everything it started,
with its output copied line by line to workload.log and to the job's output.
`setpriv --pdeathsig KILL` makes it die with the node side even on SIGKILL,
where nothing of ours runs and a linuxproc-tracked Slurm would miss it.
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
import time
from pathlib import Path
from typing import IO, Callable, Mapping

from kindslurm import proc
from kindslurm.errors import KindslurmError

POLL = 0.05  # seconds between looks at the child: signals and the deadline are handled between them


def _die_with_parent() -> list[str]:
    setpriv = shutil.which("setpriv")
    if not setpriv:
        return []
    try:
        works = proc.run([setpriv, "--pdeathsig", "KILL", "--", "true"], check=False, timeout=10).ok
    except KindslurmError:
        works = False
    return [setpriv, "--pdeathsig", "KILL", "--"] if works else []


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
        self._stop: Callable[[float], None] | None = None  # set once the child runs

    def run(self, deadline: float | None) -> int | None:
        """The exit code (128+N for a signal), or None if the deadline passed first."""
        with open(self.log_path, "a") as log:
            child = proc.spawn(self.argv, cwd=self.cwd, env=self.env)
            self._stop = functools.partial(proc.stop_group, child)
            assert child.stdout is not None
            pump = threading.Thread(target=self._pump, args=(child.stdout, log), daemon=True)
            pump.start()
            while (rc := child.poll()) is None:
                if deadline is not None and time.monotonic() >= deadline:
                    self.stop()
                    pump.join(timeout=5)
                    return None
                time.sleep(POLL)
            pump.join(timeout=5)
        return rc if rc >= 0 else 128 - rc

    def _pump(self, stdout: IO[str], log: IO[str]) -> None:
        for line in stdout:
            log.write(line)
            log.flush()
            self.out.write(line)
            self.out.flush()

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to the whole process group, SIGKILL after `grace` seconds."""
        if self._stop is not None:
            self._stop(grace)
