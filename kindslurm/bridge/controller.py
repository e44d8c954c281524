"""Pods bound to the bridge's nodes, each one kindslurm run.

Watch threads feed pod events in; one poll loop asks Slurm about every job
at once (one squeue, at most one sacct, however many pods), then brings each
pod one step on: submit its run, mirror its status, or carry out its
deletion. Exactly one job per pod, even across a bridge killed mid-submit:
the run id is the pod's UID, annotated before sbatch and carried in the
job's comment, and a submission without an answer is looked up before it is
ever made again.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from kindslurm.bridge import manifest, mapping, status
from kindslurm.bridge.config import BridgeConfig
from kindslurm.bridge.lease import Lease
from kindslurm.bridge.nodes import NodeView
from kindslurm.bridge.outer import Outer
from kindslurm.bridge.runs import Runs, transient
from kindslurm.bridge.tracked import Tracked, slim
from kindslurm.errors import KindslurmError, OuterAPIError, PodNotReady, PodRefused, SchedulerError, SpecError
from kindslurm.scheduler.base import JobState, Scheduler, StatesUnknown
from kindslurm.scheduler.sinfo import Partition

log = logging.getLogger("kindslurm.bridge")
SUBMITS_PER_POLL = 20  # new pods wait a poll rather than hold up everyone's status
FAULT = "KINDSLURM_BRIDGE_FAULT"  # `after-submit`: SIGKILL the bridge between sbatch and the job-id annotation (tests)


@dataclass
class NodeCtx:
    view: NodeView
    lease: Lease
    partition: Partition | None = None


class Controller:
    def __init__(self, outer: Outer, runs: Runs, scheduler: Scheduler, nodes: dict[str, NodeCtx], cfg: BridgeConfig,
                 default_time: str) -> None:
        self.outer = outer
        self.runs = runs
        self.scheduler = scheduler
        self.nodes = nodes
        self.cfg = cfg
        self.default_time = default_time
        self.pods: dict[str, Tracked] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.last_poll: dict[str, float] = {}

    # -- what the watches say ------------------------------------------------
    def seen(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return
        with self.lock:
            t = self.pods.get(uid)
            if kind == "DELETED":
                if t is not None:
                    self.pods.pop(uid)
                    self._gone(t)
                return
            if t is None:
                try:
                    self.pods[uid] = Tracked.of(pod)
                except (KeyError, PodRefused) as e:
                    log.warning("ignoring pod %s/%s: %s", meta.get("namespace"), meta.get("name"), e)
                    return
                self.wake.set()
                return
            was_deleting = t.deleting
            t.update(pod)
            if t.deleting and not was_deleting:
                self.wake.set()

    def synced(self, node: str, pods: list[dict[str, Any]]) -> None:
        """A fresh list of the node's pods: what is not in it was deleted while nobody watched."""
        uids = {(p.get("metadata") or {}).get("uid") for p in pods}
        with self.lock:
            gone = [t for t in self.pods.values() if t.node == node and t.uid not in uids]
        for t in gone:
            self.seen("DELETED", t.pod)
        for p in pods:
            self.seen("ADDED", p)

    def _gone(self, t: Tracked) -> None:
        """The object vanished. Unless the bridge removed it (its job had ended), it was force-deleted
        (grace 0): the job must still go."""
        self.runs.drop(t.run_id)
        if t.removing or not t.job_id or t.done:
            return
        log.info("pod %s/%s was removed at once: cancelling Slurm job %s", t.namespace, t.name, t.job_id)
        self._cancel(t)

    def find(self, namespace: str, name: str) -> Tracked | None:
        with self.lock:
            return next((t for t in self.pods.values() if t.namespace == namespace and t.name == name), None)

    # -- the poll ------------------------------------------------------------
    def poll(self) -> None:
        held = {name for name, ctx in self.nodes.items() if ctx.lease.held}
        with self.lock:
            todo = [t for t in self.pods.values() if t.node in held]
        started = time.monotonic()
        asked = {t.job_id for t in todo if t.job_id and not (t.done and not t.deleting)}
        states, answered = self._states(list(asked))
        self.last_poll = {"seconds": time.monotonic() - started, "pods": len(todo)}
        log.debug("poll: %d pods, %d jobs asked in %.1f ms", len(todo), len(asked), self.last_poll["seconds"] * 1000)
        submits = 0
        for t in todo:
            try:
                if t.deleting:
                    self._delete(t, states, answered and t.job_id in asked)
                elif not t.done:
                    if not t.job_id and submits < SUBMITS_PER_POLL and time.monotonic() >= t.retry_at and not t.refused:
                        submits += 1
                        self._start(t)
                    # a job submitted (or adopted) just now was not asked about: its absence says nothing
                    self._mirror(t, states, answered and t.job_id in asked)
            except OuterAPIError as e:
                log.warning("pod %s/%s: %s", t.namespace, t.name, e)
            except Exception:
                log.exception("pod %s/%s: unexpected error (the next poll tries again)", t.namespace, t.name)

    def _states(self, ids: list[str | None]) -> tuple[dict[str, JobState], bool]:
        wanted = [i for i in ids if i]
        if not wanted:
            return {}, True
        try:
            return self.scheduler.states(wanted), True
        except StatesUnknown as e:
            log.warning("%s: keeping every pod as it is until Slurm answers", e)
            return e.partial, False
        except KindslurmError as e:
            log.warning("asking Slurm failed: %s", e)
            return {}, False

    # -- submission ----------------------------------------------------------
    def _start(self, t: Tracked) -> None:
        annotations = (t.pod.get("metadata") or {}).get("annotations") or {}
        if annotations.get(mapping.RUN_ID) == t.run_id:
            found = self.runs.find(t.run_id)
            if found:
                self._adopt(t, found)
                return
            if self.runs.in_flight(t.run_id):
                t.problem = ("Pending", "waiting for an earlier submission of this pod to reach Slurm")
                t.retry_at = time.monotonic() + self.cfg.poll_seconds
                return
            self.runs.forget(t.run_id)
        else:
            self.outer.annotate(t.namespace, t.name, t.uid, {mapping.RUN_ID: t.run_id})
        ctx = self.nodes[t.node]
        try:
            if ctx.partition is None:
                raise PodNotReady(f"Slurm has no partition {ctx.view.partition} now", reason="PartitionNotFound")
            req = mapping.request(t.pod, ctx.view.partition, self.cfg, self.default_time, ctx.partition.largest)
            inner = manifest.inner_objects(t.pod, t.node, self.cfg, self.outer.get)
            meta = {"namespace": t.namespace, "name": t.name, "uid": t.uid, "node": t.node}
            sub = self.runs.submit(t.run_id, req, inner, t.namespace, t.name, meta)
        except PodRefused as e:
            self._refuse(t, e.reason, str(e))
        except SpecError as e:
            self._refuse(t, "InvalidPodSpec", str(e))
        except PodNotReady as e:
            self._wait(t, e.reason, str(e))
        except SchedulerError as e:
            if transient(e):
                self._wait(t, "SlurmUnavailable", str(e))
            else:
                self._refuse(t, "SlurmRefused", str(e))
        else:
            t.job_id, t.problem = sub.job_id, None
            if os.environ.get(FAULT) == "after-submit":
                os.kill(os.getpid(), signal.SIGKILL)
            self._event(t, "Normal", "Submitted", f"Slurm job {sub.job_id} (run {t.run_id}, cluster {sub.cluster}, "
                                                  f"{req.cpus} CPUs, {req.options['mem']}, flavor {req.flavor or 'none'})")
            self._note_job(t)

    def _adopt(self, t: Tracked, job_id: str) -> None:
        t.job_id, t.problem = job_id, None
        log.info("pod %s/%s: adopted Slurm job %s submitted before a restart", t.namespace, t.name, job_id)
        self._event(t, "Normal", "Adopted", f"Slurm job {job_id} (run {t.run_id}), submitted before the bridge restarted")
        self._note_job(t)

    def _note_job(self, t: Tracked) -> None:
        try:
            self.outer.annotate(t.namespace, t.name, t.uid, {mapping.JOB_ID: t.job_id})
        except OuterAPIError as e:  # the job's comment finds it again
            log.warning("pod %s/%s: could not note job %s: %s", t.namespace, t.name, t.job_id, e)
        t.pod = slim(t.pod)  # the full object was only needed for the manifest

    def _refuse(self, t: Tracked, reason: str, message: str) -> None:
        t.refused, t.problem = (reason, message), None
        self._event(t, "Warning", reason, message)

    def _wait(self, t: Tracked, reason: str, message: str) -> None:
        t.problem = (reason, message)
        t.tries += 1
        t.retry_at = time.monotonic() + min(300.0, self.cfg.poll_seconds * 2 ** min(t.tries, 6))
        if t.tell_once(f"{reason}:{message}"):
            self._event(t, "Warning", reason, message)

    # -- status ----------------------------------------------------------------
    def _mirror(self, t: Tracked, states: dict[str, JobState], answered: bool) -> None:
        facts = status.Facts(job_id=t.job_id, job=states.get(t.job_id or ""), answered=answered,
                             problem=t.problem, refused=t.refused)
        if t.job_id:
            files = self.runs.read(t.run_id, ended=facts.ended)
            facts.phase, facts.node, facts.inner, facts.address, facts.summary = \
                files.phase, files.node, files.inner, files.address, files.summary
        new = status.stamped(status.pod_status(t.pod, facts), t.last_status or t.pod.get("status") or {})
        if new != t.last_status:
            self.outer.patch_status(t.namespace, t.name, new)
            t.last_status = new
        if status.terminal(new):
            t.done = True
            self.runs.drop(t.run_id)
            if new.get("phase") == "Failed" and new.get("reason") and t.tell_once(str(new["reason"])):
                self._event(t, "Warning", str(new["reason"]), str(new.get("message", "")))

    # -- deletion ----------------------------------------------------------------
    def _delete(self, t: Tracked, states: dict[str, JobState], answered: bool) -> None:
        """The run goes first, the object last: it is removed only once Slurm says the job has ended."""
        if not t.job_id and not t.done:
            annotations = (t.pod.get("metadata") or {}).get("annotations") or {}
            if annotations.get(mapping.RUN_ID) == t.run_id:
                t.job_id = self.runs.find(t.run_id)
                if not t.job_id and self.runs.in_flight(t.run_id):
                    return  # an sbatch may still be on its way: its job must be cancelled too
        if t.job_id:
            job = states.get(t.job_id)
            if job is None and not answered:
                return  # squeue failed: a missing job proves nothing
            if job is not None and job.active:
                self._stop(t, job)
                return
        t.removing = True
        self.outer.remove_pod(t.namespace, t.name, t.uid)
        log.info("pod %s/%s removed: its run has ended", t.namespace, t.name)
        with self.lock:
            self.pods.pop(t.uid, None)
        self.runs.drop(t.run_id)

    def _stop(self, t: Tracked, job: JobState) -> None:
        if t.cancelled:
            return
        files = self.runs.read(t.run_id, ended=False)
        graceful = job.state == "running" and files.phase in ("running", "waiting") and not t.cancel_due()
        if graceful and self.runs.request_delete(t.run_id, t.grace):
            if t.tell_once("Killing"):
                self._event(t, "Normal", "Killing", f"stopping the pod in Slurm job {t.job_id} "
                                                    f"(grace period {t.grace}s), then its cluster")
            return
        self._cancel(t)

    def _cancel(self, t: Tracked) -> None:
        try:
            self.scheduler.cancel(t.job_id or "")
            t.cancelled = True
            log.info("pod %s/%s: cancelled Slurm job %s", t.namespace, t.name, t.job_id)
        except KindslurmError as e:
            log.warning("pod %s/%s: scancel %s failed: %s", t.namespace, t.name, t.job_id, e)

    def sweep_orphans(self) -> None:
        """Runs whose pods were deleted while no bridge watched: cancel their jobs."""
        with self.lock:
            known = {t.uid for t in self.pods.values()}
        held = {name for name, ctx in self.nodes.items() if ctx.lease.held}
        orphans = self.runs.orphans(held, known)
        states, answered = self._states([r.job_id for r in orphans])
        for rec in orphans:
            job = states.get(rec.job_id or "")
            if answered and job is not None and job.active:
                log.info("run %s (Slurm job %s) has no pod any more: cancelling it", rec.run_id, rec.job_id)
                try:
                    self.scheduler.cancel(rec.job_id or "")
                except KindslurmError as e:
                    log.warning("scancel %s failed: %s", rec.job_id, e)

    def _event(self, t: Tracked, kind: str, reason: str, message: str) -> None:
        try:
            self.outer.event(t.pod, kind, reason, message, t.node)
        except OuterAPIError as e:
            log.warning("pod %s/%s: could not record event %s: %s", t.namespace, t.name, reason, e)
        log.info("pod %s/%s: %s: %s", t.namespace, t.name, reason, message)
