"""Garbage collection: remove what dead runs left on this node, never anything live.

A cluster is this user's only if kindslurm itself wrote so for that exact name:
a state record naming it, or this node's creation marker for it. The shape of a
name proves nothing (a hand-made `ks-<user>-dev` has the default prefix too).
It is live while its creation marker's process runs, for a grace period after
its containers appear, while its Slurm job is pending or running (if squeue
fails, everything with a job is kept), or while its local owner process runs,
which only the node its record names can tell.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from kindslurm import paths, proc, records
from kindslurm.node import gc_interactive
from kindslurm.node.capacity import marker_alive, read_markers
from kindslurm.errors import KindslurmError
from kindslurm.locks import local_lock
from kindslurm.cluster.provider import ClusterResources, Provider

GRACE_SECONDS = 120.0  # KINDSLURM_GC_GRACE overrides (seconds)

Step = Callable[[], list[str]]


class JobView(Protocol):
    """What gc reads of a job's state (the scheduler's JobState fits)."""

    slurm_state: str

    @property
    def active(self) -> bool: ...


class JobStates(Protocol):
    """The scheduler as gc sees it: the node side never imports the scheduler
    layer; the CLI hands one in. Raises a KindslurmError when it cannot tell."""

    def states(self, job_ids: Sequence[str]) -> Mapping[str, JobView]: ...


@dataclass
class Action:
    kind: str
    name: str
    reason: str
    result: str = "pending"

    @property
    def failed(self) -> bool:
        return self.result.startswith("FAILED")


@dataclass
class Owner:
    """What kindslurm wrote about one cluster name: its record, its marker, or both."""

    name: str
    record: records.Record | None = None
    marker: dict[str, Any] | None = None

    @property
    def job_id(self) -> str | None:
        if self.record is not None and self.record.job_id:
            return self.record.job_id
        job = (self.marker or {}).get("job_id")
        return str(job) if job else None

    @property
    def kubeconfig(self) -> Path:
        """Only a file named after the cluster: a path read from a file is not
        trusted to point anywhere else."""
        for source in (self.record.kubeconfig if self.record else None, (self.marker or {}).get("kubeconfig")):
            if isinstance(source, str) and Path(source).name == f"{self.name}.yaml":
                return Path(source)
        return paths.kubeconfigs_dir() / f"{self.name}.yaml"


class Collector:
    def __init__(self, provider: Provider, slurm: JobStates, *, job: str | None = None, older_than: float = 0.0,
                 include_finished: bool = False, now: Callable[[], float] = time.time) -> None:
        self.provider = provider
        self.slurm = slurm
        self.job = job
        self.older_than = older_than
        self.include_finished = include_finished
        self.now = now
        self.grace = float(os.environ.get("KINDSLURM_GC_GRACE", GRACE_SECONDS))
        self.host = socket.gethostname()
        self.slurm_ok = True
        self.states: Mapping[str, JobView] = {}
        self.records_of: dict[str, Path | None] = {}  # run id -> records dir when not the caller's own
        self._doomed: list[str] = []
        self._bulk_failures: list[str] | None = None

    # -- what kindslurm wrote --------------------------------------------
    def _records(self, markers: dict[str, dict[str, Any]]) -> list[records.Record]:
        """The caller's records, plus those a marker points to in another state
        directory (the Epilog's HOME is not the job's XDG_STATE_HOME)."""
        recs = records.all_records()
        self.records_of = {r.run_id: None for r in recs}
        own = paths.records_dir()
        for m in markers.values():
            run_id, state_dir = m.get("run_id"), m.get("state_dir")
            if not isinstance(run_id, str) or not isinstance(state_dir, str) or run_id in self.records_of:
                continue
            where = records.records_dir_of(state_dir)
            if where == own:
                continue
            if (rec := records.load_own(where, run_id)) is not None:
                recs.append(rec)
                self.records_of[rec.run_id] = where
        return recs

    @staticmethod
    def _owners(recs: list[records.Record], markers: dict[str, dict[str, Any]]) -> dict[str, Owner]:
        owners: dict[str, Owner] = {}
        for rec in sorted(recs, key=lambda r: r.created):  # the newest record of a name wins
            if rec.cluster:
                owners.setdefault(rec.cluster, Owner(rec.cluster)).record = rec
        for name, m in markers.items():
            owners.setdefault(name, Owner(name)).marker = m
        return owners

    def names_job(self) -> bool:
        """Whether any record or marker names the --job: without one, the job was
        not a kindslurm run here, and gc must not even start podman."""
        if self.job is None:
            return True
        if any(str(m.get("job_id")) == self.job for m in read_markers().values()):
            return True
        return any(r.job_id == self.job for r in records.all_records())

    # -- liveness ---------------------------------------------------------
    def _job_live(self, job_id: str) -> tuple[bool, str]:
        if not self.slurm_ok:
            return True, f"job {job_id}: Slurm could not be asked, kept"
        js = self.states.get(job_id)
        if js is None:
            return False, f"job {job_id} gone from Slurm"
        if self.job == job_id and js.slurm_state.startswith("COMPLETING"):
            return False, f"job {job_id} COMPLETING (epilog)"
        return js.active, f"job {job_id} {js.slurm_state}"

    def _record_live(self, rec: records.Record) -> tuple[bool, str]:
        if not rec.live:
            return False, f"finished ({rec.phase})"
        if rec.job_id and rec.mode != "local":
            return self._job_live(rec.job_id)
        if rec.pid:
            if rec.node != self.host:  # a pid means nothing on another host
                return True, f"on node {rec.node or '(unknown)'}: only gc there can tell"
            alive = proc.alive(rec.pid, rec.pid_start)
            return alive, f"pid {rec.pid} {'running' if alive else 'gone'}"
        young = self.now() - rec.created < self.grace
        return young, "being submitted" if young else "submission never completed"

    def _owner_live(self, owner: Owner, res: ClusterResources | None) -> tuple[bool, str]:
        if marker_alive(owner.marker):
            return True, f"being created or used by pid {(owner.marker or {}).get('pid')}"
        newest = max((c.created for c in res.containers), default=0.0) if res else 0.0
        if self.job is None and newest and self.now() - newest < self.grace:
            return True, "created moments ago"  # (with --job the job has ended: nothing is mid-creation)
        if owner.record is not None:
            return self._record_live(owner.record)
        if owner.job_id:
            return self._job_live(owner.job_id)
        return False, "its creator is gone and no record names it"

    def _wanted(self, job_id: str | None) -> bool:
        return self.job is None or job_id == self.job

    # -- planning ---------------------------------------------------------
    def plan(self) -> list[tuple[Action, Step]]:
        markers = read_markers()
        recs = self._records(markers)
        owners = self._owners(recs, markers)
        try:
            clusters = self.provider.clusters()
        except KindslurmError as e:
            raise KindslurmError(f"cannot list kind clusters ({e}): is podman working? try `kindslurm doctor`") from None
        job_ids = {self.job} if self.job else {o.job_id for o in owners.values()} | {r.job_id for r in recs if r.live}
        try:
            self.states = self.slurm.states(sorted(j for j in job_ids if j))
        except KindslurmError:
            self.slurm_ok = False

        plan: list[tuple[Action, Step]] = []
        keep: set[str] = set()
        doomed_kubeconfigs: set[Path] = set()
        for name, res in sorted(clusters.items()):
            owner = owners.get(name)
            if owner is None:
                continue  # nothing of kindslurm's names it: another user's, or made by hand
            if not self._wanted(owner.job_id):
                continue
            live, why = self._owner_live(owner, res)
            if live or self.now() - res.created < self.older_than:
                keep.add(name)
                continue
            kubeconfig = owner.kubeconfig
            doomed_kubeconfigs.add(kubeconfig)
            what = f"{len(res.containers)} container(s), {len(res.volumes)} volume(s)"
            plan.append((Action("cluster", name, f"{why}; {what}"), functools.partial(self._remove_cluster, name, kubeconfig)))
        for name, owner in owners.items():
            if name not in clusters and self._wanted(owner.job_id) and self._owner_live(owner, None)[0]:
                keep.add(name)  # a marker or record of a live run whose cluster is not (or no longer) here

        for rec in recs:
            if not self._wanted(rec.job_id):
                continue
            live, why = self._record_live(rec)
            if live:
                if rec.cluster:
                    keep.add(rec.cluster)
                continue
            if rec.cluster in keep or self.now() - rec.updated < self.older_than:
                continue
            if not rec.live and not self.include_finished:
                continue  # a finished run's record is history for `ls -a`
            plan.append((Action("record", rec.run_id, why), functools.partial(self._after, rec.cluster, functools.partial(self._remove_record, rec))))

        plan += self._stale_files(owners, markers, keep, doomed_kubeconfigs)
        plan += gc_interactive.plan(self, recs)
        return plan

    def _stale_files(self, owners: dict[str, Owner], markers: dict[str, dict[str, Any]], keep: set[str],
                     doomed: set[Path]) -> list[tuple[Action, Step]]:
        out: list[tuple[Action, Step]] = []
        wait = 0.0 if self.job else self.grace  # with --job the job has ended
        candidates: dict[Path, str] = {}
        kdir = paths.kubeconfigs_dir()
        if self.job is None:
            candidates.update({p: p.stem for p in sorted(kdir.glob("*.yaml"))} if kdir.is_dir() else {})
        for name, owner in sorted(owners.items()):
            if self._wanted(owner.job_id):
                candidates.setdefault(owner.kubeconfig, name)
        for p, name in candidates.items():
            if name in keep or p in doomed:
                continue
            try:
                age = self.now() - p.stat().st_mtime
            except OSError:
                continue
            if age < max(wait, self.older_than):
                continue
            out.append((Action("kubeconfig", str(p), "no live cluster"), functools.partial(_unlink, p)))
        mdir = paths.markers_dir()
        for name, marker in markers.items():
            owner = owners[name]
            if name in keep or not self._wanted(owner.job_id) or marker_alive(marker):
                continue
            p = mdir / name
            try:
                if self.now() - p.stat().st_mtime < wait:
                    continue
            except OSError:
                continue
            out.append((Action("marker", name, "its creator is gone"), functools.partial(self._after, name, functools.partial(_unlink, p))))
        return out

    # -- acting -----------------------------------------------------------
    def _after(self, cluster: str | None, step: Step) -> list[str]:
        """A record or marker outlives a cluster that could not be removed: it is
        the only proof left that the cluster is kindslurm's."""
        if cluster and self._bulk_failures and any(f.startswith(f"{cluster}: ") for f in self._bulk_failures):
            return [f"kept while cluster {cluster} remains"]
        return step()

    def _remove_cluster(self, name: str, kubeconfig: Path) -> list[str]:
        if self._bulk_failures is None:
            self._bulk_failures = self.provider.remove_many(self._doomed)
        left = [f for f in self._bulk_failures if f.startswith(f"{name}: ")]
        if not left:
            _unlink(kubeconfig)
        return left

    def _remove_record(self, rec: records.Record) -> list[str]:
        records.remove(rec.run_id, self.records_of.get(rec.run_id))
        job_dir = Path(rec.job_dir)
        try:
            if job_dir.is_dir() and not any(job_dir.iterdir()):
                job_dir.rmdir()
        except OSError:
            pass
        return []

    def run(self, dry_run: bool = False) -> list[Action]:
        if not self.names_job():
            return []  # before the lock and podman: most jobs on a node never used kindslurm
        with local_lock("gc"):
            plan = self.plan()
            self._doomed = [a.name for a, _ in plan if a.kind == "cluster"]
            self._bulk_failures = None
            actions = []
            for action, do in plan:
                if dry_run:
                    action.result = "would remove"
                else:
                    try:
                        left = do()
                        action.result = "removed" if not left else "FAILED: " + ", ".join(left)
                    except Exception as e:
                        action.result = f"FAILED: {e}"
                actions.append(action)
            if not dry_run and self.job is None and self.provider.remove_unused_network():
                actions.append(Action("network", "kind", "no container uses it", "removed"))
        if not dry_run:  # a killed run could not put back the host sysctls itself
            from kindslurm.node import capacity

            for key in capacity.release(self.provider):
                actions.append(Action("sysctl", key.replace("/", "."), "changed by a collected cluster's kubelet", "restored"))
        return actions


def _unlink(p: Path) -> list[str]:
    p.unlink(missing_ok=True)
    Path(f"{p}.lock").unlink(missing_ok=True)
    return []
