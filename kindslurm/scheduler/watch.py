"""Following a run from the submit host: live status, streamed output, final exit code."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO, Callable

from kindslurm import exitcodes, records
from kindslurm.paths import JobPaths
from kindslurm.phases import Phase
from kindslurm.scheduler.base import JobState, Scheduler
from kindslurm.transport.base import Transport
from kindslurm.transport.local import LocalTransport


class Follower:
    """Prints what a file gains, line by line, like `tail -f`, one poll at a
    time so the caller can interleave its own status checks."""

    def __init__(self, path: Path, out: IO[str], emit: Callable[[str], None] | None = None,
                 transport: Transport | None = None) -> None:
        self.path = path
        self.out = out
        self.offset = 0
        self.emit = emit or self._write
        self.transport = transport or LocalTransport()

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def poll(self) -> None:
        data = self.transport.read_from(str(self.path), self.offset)
        end = data.rfind(b"\n") + 1 if data else 0
        if data and end:
            self.emit(data[:end].decode(errors="replace"))
            self.offset += end

    def flush_rest(self) -> None:
        self.poll()
        rest = self.transport.read_from(str(self.path), self.offset)
        if rest:
            self.emit(rest.decode(errors="replace") + "\n")
            self.offset += len(rest)


def exit_code_of(job_dir: str, slurm_state: JobState | None, transport: Transport | None = None) -> int:
    """The workload's code from the job directory, or one derived from Slurm."""
    code_file = JobPaths(Path(job_dir)).exitcode
    try:
        return int((transport or LocalTransport()).read_text(str(code_file)).strip())
    except (OSError, ValueError):
        pass
    if slurm_state is None:
        return exitcodes.of_scheduler_end(None)
    return exitcodes.of_scheduler_end(slurm_state.state, slurm_state.exit_code)


def _describe(js: JobState | None, rec: records.Record | None) -> str:
    parts = []
    if js is not None:
        parts.append(js.slurm_state.lower())
        if js.state == "pending" and js.explanation:
            parts.append(js.explanation)
    if rec is not None and rec.phase not in (Phase.SUBMITTED, Phase.NEW):
        parts.append(rec.phase)
    return " · ".join(parts) or Phase.SUBMITTED


def wait_for_job(
    slurm: Scheduler,
    run_id: str,
    job_id: str,
    out: IO[str] = sys.stdout,
    err: IO[str] = sys.stderr,
    stream: Path | None = None,
    interval: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    transport: Transport | None = None,
    source: records.Source | None = None,
) -> int:
    """Block until the Slurm job ends, streaming `stream` and showing each status change.
    `source` is where the run's record is read (the login node's in remote mode)."""
    load = (source or records.LocalSource()).load
    rec = load(run_id)
    live, emit = _spinner(out, err)
    follower = Follower(stream, out, emit, transport) if stream else None
    started = time.monotonic()
    last = ""
    try:
        while True:
            js = slurm.state(job_id)
            rec = load(run_id) or rec
            if follower:
                follower.poll()
            text = _describe(js, rec)
            elapsed = int(time.monotonic() - started)
            if live is not None:
                live.update(f"job {job_id}: {text} [{elapsed // 60}:{elapsed % 60:02d}]")
            elif text != last:
                print(f"[job {job_id}] {text}", file=err, flush=True)
            last = text
            if js is None or not js.active:
                break
            sleep(interval)
    finally:
        if live is not None:
            live.stop()
    if follower:
        time.sleep(0.2)
        follower.flush_rest()
    code = exit_code_of(rec.job_dir, js, transport) if rec else exitcodes.SCHEDULER
    state_word = js.slurm_state if js else "gone from squeue"
    print(f"job {job_id} finished: {state_word}, exit code {code}", file=err, flush=True)
    return code


def _spinner(out: IO[str], err: IO[str]):  # type: ignore[no-untyped-def]
    """A live status line on a terminal. When output and status share the
    terminal, both go through one rich console so streamed lines print above
    the status instead of through it."""
    if not err.isatty():
        return None, None
    from rich.console import Console

    shared = out.isatty()
    console = Console(file=out if shared else err, highlight=False)
    status = console.status(Phase.SUBMITTED)
    status.start()
    emit = (lambda text: console.print(text, end="", markup=False, soft_wrap=True)) if shared else None
    return status, emit
