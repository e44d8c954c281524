"""Garbage collection: remove what dead runs left on this node, never anything live.

A cluster is this user's if a state record names it, if this node's creation
marker for it exists, or if it carries the user's default name prefix (which
also covers records lost with a wiped home directory). It is live while its
Slurm job is pending or running (while Slurm cannot be asked, everything with a
job is assumed live), while its local owner process runs, while its creation
marker's process runs, or for a grace period after its containers appear.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kindslurm import naming, paths, proc, state
from kindslurm.errors import KindslurmError
from kindslurm.kind_podman import KindPodman, local_lock
from kindslurm.provider import ClusterResources
from kindslurm.slurm import JobState, Slurm

GRACE_SECONDS = 120.0  # KINDSLURM_GC_GRACE overrides (seconds)
_JOB_SUFFIX = re.compile(r"-(\d+)(?:-s\d+)?$")


@dataclass
class Action:
    kind: str
    name: str
    reason: str
    result: str = "pending"

    @property
    def failed(self) -> bool:
        return self.result.startswith("FAILED")


class Collector:
    def __init__(self, provider: KindPodman, slurm: Slurm, *, job: str | None = None, older_than: float = 0.0,
                 include_finished: bool = False, now: Callable[[], float] = time.time) -> None:
        self.provider = provider
        self.slurm = slurm
        self.job = job
        self.older_than = older_than
        self.include_finished = include_finished
        self.now = now
        self.grace = float(os.environ.get("KINDSLURM_GC_GRACE", GRACE_SECONDS))
        self.host = socket.gethostname()
        self.prefix = naming.default_prefix() + "-"
        self.slurm_ok = True
        self.states: dict[str, JobState] = {}

    # -- liveness ---------------------------------------------------------
    def _job_live(self, job_id: str) -> tuple[bool, str]:
        if not self.slurm_ok:
            return True, f"job {job_id}: Slurm unreachable, assumed live"
        js = self.states.get(job_id)
        if js is None:
            return False, f"job {job_id} unknown to Slurm"
        if self.job == job_id and js.slurm_state.startswith("COMPLETING"):
            return False, f"job {job_id} COMPLETING (epilog)"
        return js.active, f"job {job_id} {js.slurm_state}"

    def _record_live(self, rec: state.Record) -> tuple[bool, str]:
        if not rec.live:
            return False, f"finished ({rec.phase})"
        if rec.mode == "local":
            alive = proc.alive(rec.pid, rec.pid_start)
            return alive, f"pid {rec.pid} {'running' if alive else 'gone'}"
        if rec.job_id:
            return self._job_live(rec.job_id)
        if rec.pid and rec.node == self.host:
            alive = proc.alive(rec.pid, rec.pid_start)
            return alive, f"pid {rec.pid} {'running' if alive else 'gone'}"
        young = self.now() - rec.created < self.grace
        return young, "being submitted" if young else "submission never completed"

    def _marker(self, name: str) -> dict | None:
        try:
            return json.loads((paths.markers_dir() / name).read_text())
        except (OSError, ValueError):
            return None

    def _cluster_live(self, res: ClusterResources, rec: state.Record | None) -> tuple[bool, str]:
        marker = self._marker(res.name)
        if marker and proc.alive(marker.get("pid"), marker.get("start")):
            return True, f"being created or used by pid {marker.get('pid')}"
        newest = max((c.created for c in res.containers), default=0.0)
        if self.job is None and newest and self.now() - newest < self.grace:
            return True, "created moments ago"  # (with --job the job has ended: nothing is mid-creation)
        if rec is not None:
            return self._record_live(rec)
        m = _JOB_SUFFIX.search(res.name)
        if m:
            return self._job_live(m.group(1))
        return False, "no owner record or process"

    # -- selection --------------------------------------------------------
    def _wanted_job(self, rec: state.Record | None, name: str | None) -> bool:
        if self.job is None:
            return True
        if rec is not None and rec.job_id:
            return rec.job_id == self.job
        m = _JOB_SUFFIX.search(name or "")
        return bool(m and m.group(1) == self.job)

    def plan(self) -> list[tuple[Action, Callable[[], list[str]]]]:
        recs = state.all_records()
        try:
            clusters = self.provider.clusters()
        except KindslurmError as e:
            raise KindslurmError(f"cannot list kind clusters ({e}): is podman working? try `kindslurm doctor`") from None
        by_cluster = {r.cluster: r for r in recs if r.cluster}
        markers = {p.name for p in paths.markers_dir().glob("*")} if paths.markers_dir().is_dir() else set()
        job_ids = {r.job_id for r in recs if r.job_id} | {m.group(1) for n in clusters if (m := _JOB_SUFFIX.search(n))}
        if self.job:
            job_ids.add(self.job)
        try:
            self.states = self.slurm.states(sorted(job_ids))
        except KindslurmError:
            self.slurm_ok = False
        plan: list[tuple[Action, Callable[[], list[str]]]] = []
        live_clusters: set[str] = set()
        for name, res in sorted(clusters.items()):
            rec = by_cluster.get(name)
            if not (rec or name in markers or name.startswith(self.prefix)):
                continue  # not ours: another user's, or a kind cluster made by hand
            if not self._wanted_job(rec, name):
                continue
            live, why = self._cluster_live(res, rec)
            if live or self.now() - res.created < self.older_than:
                live_clusters.add(name)
                continue
            kubeconfig = Path(rec.kubeconfig) if rec and rec.kubeconfig else paths.kubeconfigs_dir() / f"{name}.yaml"
            what = f"{len(res.containers)} container(s), {len(res.volumes)} volume(s)"
            plan.append((Action("cluster", name, f"{why}; {what}"), lambda n=name, k=kubeconfig: self._remove_cluster(n, k)))
        for rec in recs:
            if not self._wanted_job(rec, rec.cluster):
                continue
            live, why = self._record_live(rec)
            if live or rec.cluster in live_clusters or self.now() - rec.updated < self.older_than:
                continue
            if not rec.live and not self.include_finished:
                continue  # a finished run's record is history for `ls -a`
            plan.append((Action("record", rec.run_id, why), lambda r=rec: self._remove_record(r)))
        plan += self._stale_files(live_clusters, {r.cluster for r in recs if r.cluster and self._record_live(r)[0]})
        return plan

    def _stale_files(self, live_clusters: set[str], live_record_clusters: set[str]) -> list[tuple[Action, Callable[[], list[str]]]]:
        keep = live_clusters | live_record_clusters
        out: list[tuple[Action, Callable[[], list[str]]]] = []
        kdir = paths.kubeconfigs_dir()
        for p in sorted(kdir.glob("*.yaml")) if kdir.is_dir() else []:
            name = p.stem
            if name in keep or not self._wanted_job(None, name) or self.now() - p.stat().st_mtime < max(self.grace, self.older_than):
                continue
            out.append((Action("kubeconfig", str(p), "no live cluster"), lambda p=p: _unlink(p)))
        mdir = paths.markers_dir()
        for p in sorted(mdir.glob("*")) if mdir.is_dir() else []:
            marker = self._marker(p.name) or {}
            if p.name in keep or not self._wanted_job(None, p.name) or proc.alive(marker.get("pid"), marker.get("start")):
                continue
            if self.now() - p.stat().st_mtime < self.grace:
                continue
            out.append((Action("marker", p.name, "creator gone"), lambda p=p: _unlink(p)))
        return out

    def _remove_cluster(self, name: str, kubeconfig: Path) -> list[str]:
        if self._bulk_failures is None:
            self._bulk_failures = self.provider.remove_many(self._doomed)
        _unlink(kubeconfig)
        return [f for f in self._bulk_failures if f.startswith(f"{name}: ")]

    def _remove_record(self, rec: state.Record) -> list[str]:
        state.remove(rec.run_id)
        job_dir = Path(rec.job_dir)
        try:
            if job_dir.is_dir() and not any(job_dir.iterdir()):
                job_dir.rmdir()
        except OSError:
            pass
        return []

    # -- acting -----------------------------------------------------------
    def run(self, dry_run: bool = False) -> list[Action]:
        with local_lock("gc"):
            plan = self.plan()
            self._doomed = [a.name for a, _ in plan if a.kind == "cluster"]
            self._bulk_failures: list[str] | None = None
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
            from kindslurm import capacity

            for key in capacity.release(self.provider):
                actions.append(Action("sysctl", key.replace("/", "."), "changed by a collected cluster's kubelet", "restored"))
        return actions


def _unlink(p: Path) -> list[str]:
    p.unlink(missing_ok=True)
    Path(f"{p}.lock").unlink(missing_ok=True)
    return []


def render_table(actions: list[Action], dry_run: bool) -> None:
    import click

    if not actions:
        click.echo("Nothing to collect." if not dry_run else "Nothing would be collected.")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for col in ("WHAT", "NAME", "WHY", "RESULT"):
        table.add_column(col)
    for a in actions:
        table.add_row(a.kind, a.name, a.reason, a.result)
    Console(width=max(140, Console().width)).print(table)

