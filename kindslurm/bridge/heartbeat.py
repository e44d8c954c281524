"""Keeping the virtual nodes alive: the Lease renewed every quarter of its
duration, the Node's status posted every minute (and at once when the
partition changes), the partitions asked again from Slurm periodically.

A node whose lease another bridge holds is left alone: not registered, not
updated, its pods not touched (the controller asks `lease.held`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from kindslurm.bridge.controller import NodeCtx
from kindslurm.bridge.nodes import keep_transitions
from kindslurm.bridge.outer import Outer
from kindslurm.errors import KindslurmError, OuterAPIError
from kindslurm.scheduler.sinfo import Partition

log = logging.getLogger("kindslurm.bridge")
STATUS_EVERY = 60.0  # the kubelet's nodeStatusReportFrequency


class Heartbeat(threading.Thread):
    def __init__(self, outer: Outer, nodes: dict[str, NodeCtx], discover: Callable[[], dict[str, Partition]],
                 lease_seconds: int, rediscover_seconds: float, stop: threading.Event,
                 on_acquired: Callable[[str], None]) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.outer = outer
        self.nodes = nodes
        self.discover = discover
        self.renew_every = max(1.0, lease_seconds / 4)
        self.rediscover_seconds = rediscover_seconds
        self.stop_event = stop
        self.on_acquired = on_acquired
        self.posted: dict[str, float] = {}
        self.discovered = time.monotonic()
        self.waiting_logged: set[str] = set()

    def beat(self) -> None:
        """One round: rediscover if due, renew every lease, post node status where due or changed."""
        changed: set[str] = set()
        if time.monotonic() - self.discovered >= self.rediscover_seconds:
            self.discovered = time.monotonic()
            try:
                found = self.discover()
                for name, ctx in self.nodes.items():
                    new = found.get(ctx.view.partition)
                    if _summary(new) != _summary(ctx.partition):
                        changed.add(name)
                    ctx.partition = new
            except KindslurmError as e:
                log.warning("rediscovering partitions: %s (keeping what sinfo said before)", e)
        for name, ctx in self.nodes.items():
            was = ctx.lease.held
            try:
                held = ctx.lease.renew()
            except KindslurmError as e:
                log.warning("lease of %s: %s", name, e)
                continue
            if not held:
                if was:
                    log.warning("node %s: another bridge took the lease: no longer acting for it", name)
                elif name not in self.waiting_logged:
                    self.waiting_logged.add(name)
                    log.warning("node %s is held by another bridge (lease holder %s): waiting for its lease to expire",
                                name, (ctx.lease.last or {}).get("spec", {}).get("holderIdentity"))
                continue
            if not was:
                self.waiting_logged.discard(name)
                try:
                    self.register(ctx)
                except KindslurmError as e:
                    log.warning("registering node %s: %s", name, e)
                    continue
                log.info("node %s: acting for partition %s", name, ctx.view.partition)
                self.on_acquired(name)
            elif name in changed or time.monotonic() - self.posted.get(name, 0.0) >= STATUS_EVERY:
                try:
                    self.post(ctx)
                except OuterAPIError as e:
                    if e.status == 404:  # someone deleted the Node: it is registered again, as a kubelet does
                        log.warning("node %s was deleted: registering it again", name)
                        self._register_quietly(ctx)
                    else:
                        log.warning("node %s status: %s", name, e)
                except KindslurmError as e:
                    log.warning("node %s status: %s", name, e)

    def register(self, ctx: NodeCtx) -> None:
        """Create the Node, or bring labels and taint up to date, then post its status."""
        body = ctx.view.object(ctx.partition)
        existing = self.outer.node(ctx.view.name)
        if existing is None:
            self.outer.create_node(body)
            existing = self.outer.node(ctx.view.name)
        else:
            self.outer.patch_node(ctx.view.name, {"metadata": {"labels": body["metadata"]["labels"]},
                                                  "spec": body["spec"]})
        ctx.lease.owner_uid = ((existing or {}).get("metadata") or {}).get("uid")
        self.post(ctx, existing)

    def _register_quietly(self, ctx: NodeCtx) -> None:
        try:
            self.register(ctx)
        except KindslurmError as e:
            log.warning("registering node %s: %s", ctx.view.name, e)

    def post(self, ctx: NodeCtx, existing: dict | None = None) -> None:
        old = existing if existing is not None else self.outer.node(ctx.view.name)
        if old is None:
            gone = OuterAPIError(f"node {ctx.view.name} does not exist")
            gone.status = 404
            raise gone
        self.outer.patch_node_status(ctx.view.name, keep_transitions(ctx.view.status(ctx.partition), old))
        self.posted[ctx.view.name] = time.monotonic()

    def stop_nodes(self) -> None:
        """A clean stop: the nodes say so at once and their leases are free for the next bridge."""
        for name, ctx in self.nodes.items():
            if not ctx.lease.held:
                continue
            try:
                status = ctx.view.status(ctx.partition)
                for c in status["conditions"]:
                    if c["type"] == "Ready":
                        c.update(status="False", reason="KindslurmBridgeStopped",
                                 message="the bridge serving this partition stopped; its pods' jobs go on")
                self.outer.patch_node_status(name, status)
            except KindslurmError as e:
                log.warning("node %s: %s", name, e)
            ctx.lease.release()

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.beat()
            self.stop_event.wait(self.renew_every)


def _summary(p: Partition | None) -> tuple | None:
    return None if p is None else (p.up, p.ready, p.cpus, p.mem_mb, p.gpus, len(p.nodes), p.time_limit, tuple(p.features))
