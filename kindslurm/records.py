"""State records: one small JSON file per run, 0600, under the user's state directory.

The submit side creates the record; the node side moves it through its phases.
Both read-modify-write under a POSIX lock (fcntl works over NFS, flock may not),
and every write is an atomic replace, so `ls` never reads half a record.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

from kindslurm import exitcodes, paths
from kindslurm.phases import Phase, is_terminal
from kindslurm.errors import KindslurmError

@dataclass
class Record:
    run_id: str
    mode: str
    user: str
    job_dir: str
    prefix: str = ""
    job_id: str | None = None
    step_id: str | None = None  # the srun step an inline run lives in (cancel signals only that)
    cluster: str | None = None
    node: str | None = None
    kubeconfig: str | None = None
    phase: str = Phase.NEW
    reason: str | None = None
    exit_code: int | None = None
    pid: int | None = None
    pid_start: str | None = None
    interactive: bool = False  # an `up` cluster: held until `down`, scancel or the time limit
    ends: float | None = None  # when Slurm ends the job (epoch), once the node side has asked
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return not is_terminal(self.phase)


def _path(run_id: str) -> Path:
    return paths.records_dir() / f"{run_id}.json"


@contextlib.contextmanager
def _locked(run_id: str) -> Iterator[None]:
    lock = paths.ensure_private_dir(paths.records_dir()) / f".{run_id}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class AmbiguousRef(KindslurmError):
    """A reference that fits several runs: acting on the newest would be a guess."""

    exit_code = exitcodes.USAGE


def _read(path: Path) -> Record | None:
    try:
        return parse(path.read_text())
    except OSError:
        return None


def parse(text: str) -> Record | None:
    """A record from its JSON, None if it is damaged; fields this version does not know are ignored."""
    try:
        data: dict[str, Any] = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    known = set(Record.__dataclass_fields__)
    try:
        return Record(**{k: v for k, v in data.items() if k in known})
    except TypeError:
        return None


def save(rec: Record) -> Record:
    with _locked(rec.run_id):
        rec.updated = time.time()
        paths.write_private(_path(rec.run_id), json.dumps(asdict(rec), indent=1, sort_keys=True))
    return rec


def load(run_id: str) -> Record | None:
    return _read(_path(run_id))


def update(run_id: str, **changes: Any) -> Record | None:
    """Change some fields; a `phase` change is also timestamped in `phases`."""
    with _locked(run_id):
        rec = _read(_path(run_id))
        if rec is None:
            return None
        for key, value in changes.items():
            setattr(rec, key, value)
        now = time.time()
        if "phase" in changes:
            rec.phases[changes["phase"]] = now
        rec.updated = now
        paths.write_private(_path(run_id), json.dumps(asdict(rec), indent=1, sort_keys=True))
        return rec


def remove(run_id: str, records: Path | None = None) -> None:
    d = records or paths.records_dir()
    (d / f"{run_id}.json").unlink(missing_ok=True)
    (d / f".{run_id}.lock").unlink(missing_ok=True)


def records_dir_of(state_dir: str | Path) -> Path:
    """Where the records of another state directory live (a creation marker names
    it: the Epilog's HOME is not necessarily the job's)."""
    return Path(state_dir) / "runs"


def load_own(records: Path, run_id: str) -> Record | None:
    """A record from another records directory, only if the caller owns the file:
    gc may then remove it, and never follows a marker into someone else's files."""
    if not run_id or "/" in run_id or run_id.startswith("."):
        return None
    path = records / f"{run_id}.json"
    try:
        if path.stat().st_uid != os.getuid():
            return None
    except OSError:
        return None
    return _read(path)


def all_records() -> list[Record]:
    d = paths.records_dir()
    if not d.is_dir():
        return []
    recs = [r for p in d.glob("*.json") if (r := _read(p)) is not None]
    return sorted(recs, key=lambda r: r.created)


class Source(Protocol):
    """Where records are read: this host's files (LocalSource), or the login
    node's through the transport in remote mode. Only reading goes through it:
    records are written where the run lives."""

    def all(self) -> list[Record]: ...

    def load(self, run_id: str) -> Record | None: ...


class LocalSource:
    def all(self) -> list[Record]:
        return all_records()

    def load(self, run_id: str) -> Record | None:
        return load(run_id) if run_id and "/" not in run_id else None


def candidates(ref: str, source: Source | None = None) -> list[Record]:
    """Runs a reference could mean, newest first: the exact matches of run id,
    cluster name or job id if there are any, else the runs whose id starts with it."""
    source = source or LocalSource()
    if (rec := source.load(ref)) is not None:
        return [rec]
    recs = list(reversed(source.all()))
    for exact in ([r for r in recs if r.cluster == ref], [r for r in recs if r.job_id == ref]):
        if exact:
            return exact
    return [r for r in recs if ref and r.run_id.startswith(ref)]


def find(ref: str, source: Source | None = None) -> Record | None:
    """A run by run id, Slurm job id or cluster name, or a run-id prefix that fits
    only one run; a reference that fits several raises AmbiguousRef."""
    found = candidates(ref, source)
    if len(found) > 1:
        shown = ", ".join(f"{r.run_id} (job {r.job_id or '-'}, {r.phase})" for r in found[:8])
        more = f" and {len(found) - 8} more" if len(found) > 8 else ""
        raise AmbiguousRef(f"{ref!r} matches {len(found)} runs: {shown}{more}; give a whole run id, job id or cluster name")
    return found[0] if found else None
