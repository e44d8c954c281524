"""What the bridge remembers of one pod between polls: little, so 500 pods
stay cheap (the full pod object is kept only until its run is submitted),
and nothing that cannot be found again after a restart (the run id comes
from the UID, the job id from an annotation or the job's comment, the
deletion deadline from the pod's own deletionTimestamp)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from kindslurm.bridge.mapping import JOB_ID, run_id_of

TEARDOWN_MARGIN = 45.0  # seconds past the grace period before the job is cancelled outright


def slim(pod: dict[str, Any]) -> dict[str, Any]:
    """What status mapping needs once the run exists: names, images, the status."""
    spec = pod.get("spec") or {}
    keep = {k: [{"name": c.get("name"), "image": c.get("image")} for c in spec.get(k) or []]
            for k in ("containers", "initContainers") if spec.get(k)}
    meta = pod.get("metadata") or {}
    return {"metadata": {k: meta[k] for k in ("name", "namespace", "uid", "annotations", "deletionTimestamp",
                                              "deletionGracePeriodSeconds") if k in meta},
            "spec": {**keep, "nodeName": spec.get("nodeName")}, "status": pod.get("status") or {}}


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class Tracked:
    uid: str
    namespace: str
    name: str
    node: str
    run_id: str
    pod: dict[str, Any]
    job_id: str | None = None
    done: bool = False  # a terminal status was written: only a deletion is left to handle
    last_status: dict[str, Any] | None = None
    problem: tuple[str, str] | None = None
    refused: tuple[str, str] | None = None
    retry_at: float = 0.0  # monotonic: no new submission attempt before this
    tries: int = 0
    cancelled: bool = False
    removing: bool = False  # the bridge itself removed the object: its DELETED event is expected
    told: set[str] = field(default_factory=set)  # event reasons already recorded

    @classmethod
    def of(cls, pod: dict[str, Any]) -> "Tracked":
        meta = pod.get("metadata") or {}
        t = cls(uid=meta["uid"], namespace=meta.get("namespace") or "default", name=meta["name"],
                node=(pod.get("spec") or {}).get("nodeName") or "", run_id=run_id_of(meta["uid"]), pod=pod)
        t.update(pod)
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            t.done = True
        return t

    def update(self, pod: dict[str, Any]) -> None:
        job = ((pod.get("metadata") or {}).get("annotations") or {}).get(JOB_ID)
        if job and job.isdigit() and not self.job_id:
            self.job_id = job
        self.pod = slim(pod) if self.job_id or self.done else pod

    @property
    def deleting(self) -> bool:
        return bool((self.pod.get("metadata") or {}).get("deletionTimestamp"))

    @property
    def grace(self) -> int:
        value = (self.pod.get("metadata") or {}).get("deletionGracePeriodSeconds")
        return int(value) if isinstance(value, int) else 30

    def cancel_due(self, now: float | None = None) -> bool:
        """The grace period and the teardown margin are over: cancel the job outright.
        Counted from the pod's deletionTimestamp (request time plus grace), so a restart keeps the clock."""
        deadline = _epoch((self.pod.get("metadata") or {}).get("deletionTimestamp"))
        if deadline is None:
            return True
        return (now or time.time()) >= deadline + TEARDOWN_MARGIN

    def tell_once(self, reason: str) -> bool:
        if reason in self.told:
            return False
        self.told.add(reason)
        return True
