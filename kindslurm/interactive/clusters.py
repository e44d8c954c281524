"""Interactive clusters: `up` submits a job that boots a cluster and holds it,
`down` ends it, and a name finds the live one.

A name is unique among a user's live interactive clusters: checked under a
lock in the records directory (fcntl, which holds over NFS homes) and
recorded before the lock is released, so two `up --name dev` at once cannot
both submit. The kind cluster is `<name>-<job>`, as for any sbatch run.
Everything reads records through api.get_records(), so the same code serves
the login node and a laptop in remote mode.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from pathlib import Path
from typing import IO, Any, Iterator

from kindslurm import api, exitcodes, naming, paths, records
from kindslurm.errors import KindslurmError, SpecError
from kindslurm.paths import JobPaths
from kindslurm.phases import Phase
from kindslurm.scheduler.base import StatesUnknown

SUBMIT_GRACE = 120.0  # a record with no job id yet is still being submitted
DOWN_GRACE = 15.0  # how long a held cluster may take to notice the down request before it is scancelled
DOWN_TIMEOUT = 240.0


@contextlib.contextmanager
def names_lock() -> Iterator[None]:
    lock = paths.ensure_private_dir(paths.records_dir()) / ".up-names.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def live_named(name: str) -> list[records.Record]:
    """Live interactive runs of this name, newest first (their jobs not asked)."""
    recs = [r for r in api.get_records().all() if r.interactive and r.prefix == name and r.live]
    return sorted(recs, key=lambda r: r.created, reverse=True)


def still_running(recs: list[records.Record]) -> list[records.Record]:
    """Those whose job is pending or running, or may be: a Slurm that cannot be asked proves nothing."""
    ids = [r.job_id for r in recs if r.job_id]
    try:
        states = api.get_scheduler().states(ids) if ids else {}
    except StatesUnknown:
        return recs
    alive = []
    for r in recs:
        if r.job_id is None:
            if time.time() - r.created < SUBMIT_GRACE:
                alive.append(r)
        elif (js := states.get(r.job_id)) is not None and js.active:
            alive.append(r)
    return alive


def up(name: str | None, options: dict[str, Any], run_id: str | None = None) -> api.Submitted:
    """Submit an interactive cluster; SpecError naming the live one if the name is taken."""
    prefix = naming.validate_prefix(name) if name else naming.default_prefix()
    with names_lock():
        taken = still_running(live_named(prefix))
        if taken:
            r = taken[0]
            raise SpecError(f"an interactive cluster named {prefix} is already up: job {r.job_id or '(being submitted)'}"
                            f" (cluster {r.cluster or '-'}, {r.phase}); use it, `kindslurm down {prefix}` it, "
                            f"or pick another --name")
        p = api.plan(None, name=prefix, submit=True, hold=True, run_id=run_id, **options)
        return api.submit_plan(p)


def resolve(ref: str) -> records.Record:
    """An interactive cluster by its name (the live one, else the newest), or
    any run by run id, job id or cluster name."""
    named = live_named(ref)
    if named:
        alive = still_running(named)
        return (alive or named)[0]
    ended = [r for r in api.get_records().all() if r.interactive and r.prefix == ref]
    return ended[-1] if ended else api.find(ref)


def time_left(rec: records.Record) -> str:
    from kindslurm.timefmt import human_seconds

    return f"{human_seconds(max(0.0, rec.ends - time.time()))} left" if rec.ends else ""


def usage(rec: records.Record, host_flag: str = "") -> str:
    until = time.strftime("%H:%M", time.localtime(rec.ends)) if rec.ends else "its time limit"
    ks = f"kindslurm{host_flag}"
    return (f"cluster {rec.prefix} is up: job {rec.job_id} on {rec.node}, {time_left(rec) or 'held'} (until {until})\n"
            f"  kubectl --kubeconfig \"$({ks} kubeconfig {rec.prefix})\" get nodes\n"
            f"  {ks} down {rec.prefix}\n")


def wait_ready(run: api.Submitted, err: IO[str] = sys.stderr, timeout: float | None = None) -> records.Record:
    """Block until the cluster is held (Ready); KindslurmError with the run's own exit code if it ends first."""
    source, sched = api.get_records(), api.get_scheduler()
    deadline = None if timeout is None else time.monotonic() + timeout
    last = ""
    while True:
        rec = source.load(run.run_id)
        if rec is not None and rec.phase == Phase.HELD:
            return rec
        js = sched.state(run.job_id)
        ended = (rec is not None and not rec.live) or (js is not None and not js.active) or js is None
        if ended:
            time.sleep(1)  # the node side may still be writing its end
            rec = source.load(run.run_id) or rec
            code = rec.exit_code if rec is not None and rec.exit_code is not None else exitcodes.of_scheduler_end(
                js.state if js else None, js.exit_code if js else None)
            why = rec.reason if rec is not None and rec.reason else (js.slurm_state if js else "gone from Slurm")
            raise KindslurmError(f"cluster {run.cluster} ended before it was Ready: {why} "
                                 f"(see `kindslurm logs {run.job_id} --job-output`)", exit_code=code or 1)
        assert js is not None
        words = [js.slurm_state.lower()] + ([js.explanation] if js.state == "pending" and js.explanation else [])
        text = " · ".join(words + ([rec.phase] if rec is not None and rec.phase != Phase.SUBMITTED else []))
        if text != last:
            print(f"[job {run.job_id}] {text}", file=err, flush=True)
            last = text
        if deadline is not None and time.monotonic() > deadline:
            raise KindslurmError(f"cluster {run.cluster} was not Ready in {timeout:.0f}s: it is still coming up "
                                 f"(`kindslurm status {run.job_id}`)")
        time.sleep(1)


def down(ref: str, err: IO[str] = sys.stderr) -> tuple[int, str]:
    """End an interactive cluster: (exit code, message). A held cluster sees the
    request and ends as completed; one still booting, or deaf, is scancelled."""
    rec = resolve(ref)
    if not rec.interactive:
        raise SpecError(f"run {rec.run_id} is not an interactive cluster: stop it with `kindslurm cancel {ref}`")
    if not rec.live:
        return 0, f"cluster {rec.cluster or rec.prefix} already ended ({rec.phase})"
    sched = api.get_scheduler()
    js = sched.state(rec.job_id) if rec.job_id else None
    if rec.job_id and (js is None or not js.active):
        return exitcodes.TEARDOWN_INCOMPLETE, (
            f"job {rec.job_id} of cluster {rec.cluster} is gone but its record still says {rec.phase}: "
            f"run `kindslurm gc` on {rec.node or 'its node'} to remove what it left")
    if not rec.job_id:
        raise KindslurmError(f"cluster {rec.prefix} is still being submitted: try again in a moment")
    api.get_transport().write_text(str(JobPaths(Path(rec.job_dir)).down_request), f"{time.time()}\n", 0o600)
    source = api.get_records()
    if rec.phase == Phase.HELD:
        deadline = time.monotonic() + DOWN_GRACE
        while time.monotonic() < deadline and (cur := source.load(rec.run_id)) is not None and cur.phase == Phase.HELD:
            time.sleep(0.5)
    cur = source.load(rec.run_id)
    if cur is None or (cur.live and cur.phase not in (Phase.COLLECTING, Phase.TEARING_DOWN)):
        sched.cancel(rec.job_id)  # still booting, or not listening: Slurm's TERM tears it down
    print(f"taking down cluster {rec.cluster} (job {rec.job_id})", file=err, flush=True)
    deadline = time.monotonic() + DOWN_TIMEOUT
    while time.monotonic() < deadline:
        js = sched.state(rec.job_id)
        if js is None or not js.active:
            break
        time.sleep(1)
    else:
        return exitcodes.TEARDOWN_INCOMPLETE, (f"job {rec.job_id} did not end within {DOWN_TIMEOUT:.0f}s: "
                                               f"check `kindslurm status {rec.job_id}`, then `kindslurm gc`")
    cur = source.load(rec.run_id)
    if cur is not None and cur.live:
        return exitcodes.TEARDOWN_INCOMPLETE, (f"job {rec.job_id} ended without its node side finishing "
                                               f"({cur.phase}): run `kindslurm gc` on {rec.node} to remove what it left")
    code = cur.exit_code if cur is not None else None
    return 0, f"cluster {rec.cluster} is down (job {rec.job_id}: {cur.phase if cur else 'gone'}, exit code {code})"
