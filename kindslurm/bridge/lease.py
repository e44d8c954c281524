"""The node's heartbeat Lease in kube-node-lease, which is also the lock that
lets only one bridge act for a node name.

A bridge takes a lease only when no other holder renewed it within its
duration; every write is a PUT carrying the resourceVersion it read, so of
two bridges racing for it one gets a Conflict and stands aside. A bridge
that loses its lease stops acting for that node at once. The node lifecycle
controller of the outer cluster turns the Node NotReady when the lease is
not renewed, exactly as for a stopped kubelet.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from kindslurm.bridge.outer import Conflict, Outer

NAMESPACE = "kube-node-lease"


def identity() -> str:
    """Unique per bridge process: a restarted bridge waits out its predecessor's lease like any other."""
    return f"kindslurm-bridge/{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def _micro(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class Lease:
    outer: Outer
    node: str
    holder: str
    seconds: int
    held: bool = False
    last: dict[str, Any] | None = field(default=None, repr=False)
    owner_uid: str | None = None  # the Node's uid: the lease goes with the Node, as a kubelet's does

    def other_holder(self, now: dt.datetime | None = None) -> str | None:
        """Who else holds the lease now (renewed within its duration), or None."""
        spec = (self.last or {}).get("spec") or {}
        who = spec.get("holderIdentity")
        if not who or who == self.holder:
            return None
        renewed = _parse(spec.get("renewTime"))
        duration = int(spec.get("leaseDurationSeconds") or self.seconds)
        now = now or dt.datetime.now(dt.timezone.utc)
        if renewed is None or (now - renewed).total_seconds() >= duration:
            return None
        return str(who)

    def _body(self, now: dt.datetime, acquire: bool) -> dict[str, Any]:
        body: dict[str, Any] = dict(self.last or {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                                   "metadata": {"name": self.node, "namespace": NAMESPACE}})
        spec = dict(body.get("spec") or {})
        spec.update(holderIdentity=self.holder, leaseDurationSeconds=self.seconds, renewTime=_micro(now))
        if acquire:
            spec["acquireTime"] = _micro(now)
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if self.last else 0)
        body["spec"] = spec
        if self.owner_uid and not (body.get("metadata") or {}).get("ownerReferences"):
            body["metadata"] = {**body["metadata"], "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": self.owner_uid}]}
        return body

    def renew(self) -> bool:
        """Take or renew the lease; False (and not held) while another live bridge holds it."""
        now = dt.datetime.now(dt.timezone.utc)
        try:
            if not self.held:
                self.last = self.outer.lease(self.node)
                if self.other_holder(now):
                    return False
            if self.last is None:
                self.last = self.outer.create_lease(self._body(now, acquire=True))
            else:
                self.last = self.outer.replace_lease(self.node, self._body(now, acquire=not self.held))
        except Conflict:
            self.held = False  # another bridge wrote it first: it acts, we stand aside and look again later
            self.last = None
            return False
        self.held = True
        return True

    def release(self) -> None:
        """On a clean stop: let the next bridge take over at once instead of waiting the lease out."""
        if not self.held or self.last is None:
            return
        spec = dict(self.last.get("spec") or {})
        spec["holderIdentity"] = None
        spec["renewTime"] = None
        try:
            self.outer.replace_lease(self.node, {**self.last, "spec": spec})
        except Exception:
            pass  # it expires by itself
        self.held = False
