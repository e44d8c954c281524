"""Every tool call ends: a timeout kills the tool's whole process group and is
one clear KindslurmError, never a traceback (proc is the one place that maps it)."""

import io
import os
import time

import pytest

from kindslurm import proc
from kindslurm.errors import CommandTimeout, KindslurmError


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_hung_tool_times_out_and_its_children_die(tmp_path):
    pidfile = tmp_path / "child"
    t = time.monotonic()
    with pytest.raises(CommandTimeout) as e:
        proc.run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], timeout=0.5, check=False)
    assert time.monotonic() - t < 5
    assert isinstance(e.value, KindslurmError) and e.value.retryable
    assert "did not finish in 0s" in str(e.value) or "did not finish in 1s" in str(e.value)
    deadline = time.monotonic() + 5
    while not _gone(int(pidfile.read_text())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(int(pidfile.read_text())), "the tool's background child survived"


def test_a_silent_streamed_tool_still_times_out():
    """Streaming to a log used to block on the pipe until the tool printed or ended."""
    log = io.StringIO()
    t = time.monotonic()
    with pytest.raises(CommandTimeout):
        proc.run(["sh", "-c", "echo first; sleep 60"], timeout=0.5, log=log)
    assert time.monotonic() - t < 5
    assert log.getvalue() == "first\n"


def test_every_call_has_a_timeout_by_default():
    assert proc.run.__kwdefaults__["timeout"] == proc.DEFAULT_TIMEOUT > 0
