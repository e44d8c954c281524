"""What the outer pod's status says, from what is known of its run.

Pure: the controller gathers the facts (Slurm's word, the run's record, the
inner pod's status the node side saved, the node side's summary) and patches
what this returns. The phase only moves forward: once a status is terminal
the controller stops asking.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from kindslurm import exitcodes
from kindslurm.scheduler.base import JobState

PHASE_WORDS = {
    "submitted": "starting the run", "preflight": "checking the node", "creating": "booting the pod's cluster",
    "starting": "waiting for the cluster's API server", "applying": "applying the pod to its cluster",
    "running": "starting the pod", "waiting": "starting the pod",
}
_BY_EXIT = {exitcodes.PREFLIGHT: "NodePreflightFailed", exitcodes.CLUSTER_CREATE: "ClusterCreateFailed",
            exitcodes.APPLY: "ApplyFailed", exitcodes.INTERNAL: "InternalError", exitcodes.SCHEDULER: "SlurmJobFailed",
            exitcodes.TEARDOWN_INCOMPLETE: "TeardownIncomplete"}


@dataclass
class Facts:
    """Everything known about one pod's run at one poll."""

    job_id: str | None = None
    job: JobState | None = None  # Slurm's word: None when Slurm no longer knows the job
    answered: bool = True  # False when squeue failed: a missing job then proves nothing
    phase: str | None = None  # the run record's phase
    node: str | None = None
    inner: dict[str, Any] | None = None  # the inner pod's status, as the node side saved it
    address: str | None = None  # the compute node's address (hostIP)
    summary: dict[str, Any] | None = None  # the node side's summary.json, once it has ended
    problem: tuple[str, str] | None = None  # (reason, message) of a pod that cannot be submitted yet
    refused: tuple[str, str] | None = None  # (reason, message) of a pod that can never be

    @property
    def ended(self) -> bool:
        """The job is over: Slurm says so, or has forgotten it. Never guessed from a failed squeue."""
        if not self.job_id:
            return False
        if self.job is None:
            return self.answered
        return not self.job.active


def now_iso(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def _containers(pod: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return list((pod.get("spec") or {}).get(key) or [])


def _waiting(pod: dict[str, Any], reason: str, message: str) -> dict[str, list[dict[str, Any]]]:
    def one(c: dict[str, Any]) -> dict[str, Any]:
        return {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False, "restartCount": 0,
                "started": False, "state": {"waiting": {"reason": reason, "message": message}}}

    out = {"containerStatuses": [one(c) for c in _containers(pod, "containers")]}
    if _containers(pod, "initContainers"):
        out["initContainerStatuses"] = [one(c) for c in _containers(pod, "initContainers")]
    return out


def _terminal(phase: str, reason: str, message: str, pod: dict[str, Any], inner: dict[str, Any] | None,
              code: int) -> dict[str, Any]:
    """A pod whose run ended without the inner pod ending: every container ends with the run."""
    seen = {cs["name"]: cs for key in ("containerStatuses", "initContainerStatuses")
            for cs in (inner or {}).get(key) or []}
    end = now_iso()

    def one(c: dict[str, Any]) -> dict[str, Any]:
        cs = dict(seen.get(c["name"]) or {"name": c["name"], "restartCount": 0, "imageID": ""})
        state = cs.get("state") or {}
        if "terminated" not in state:
            started = (state.get("running") or {}).get("startedAt")
            cs["state"] = {"terminated": {"exitCode": code, "reason": reason, "message": message,
                                          **({"startedAt": started} if started else {}), "finishedAt": end}}
        cs.update(image=c.get("image", ""), ready=False, started=False)
        return cs

    status: dict[str, Any] = {"phase": phase, "reason": reason, "message": message,
                              "containerStatuses": [one(c) for c in _containers(pod, "containers")]}
    if _containers(pod, "initContainers"):
        status["initContainerStatuses"] = [one(c) for c in _containers(pod, "initContainers")]
    status["conditions"] = [{"type": t, "status": "False", "reason": "PodFailed" if phase == "Failed" else "PodCompleted"}
                            for t in ("Ready", "ContainersReady")]
    return status


def _mirror(pod: dict[str, Any], inner: dict[str, Any]) -> dict[str, Any]:
    """The inner pod's status under the outer pod's names and images."""
    images = {c["name"]: c.get("image", "") for key in ("containers", "initContainers") for c in _containers(pod, key)}
    status: dict[str, Any] = {"phase": inner.get("phase") or "Pending"}
    for key in ("containerStatuses", "initContainerStatuses"):
        if inner.get(key):
            status[key] = [{**{k: v for k, v in cs.items() if k not in ("volumeMounts", "user", "allocatedResources",
                                                                          "resources")},
                            "image": images.get(cs.get("name", ""), cs.get("image", ""))} for cs in inner[key]]
    status["conditions"] = [{k: v for k, v in c.items() if k != "lastProbeTime"}
                            for c in inner.get("conditions") or [] if c.get("type") != "PodScheduled"]
    for key in ("reason", "message", "startTime"):
        if inner.get(key):
            status[key] = inner[key]
    return status


def _failure(f: Facts) -> tuple[str, str, int]:
    """Why a run ended without its pod ending, in words a user can act on."""
    job = f"Slurm job {f.job_id}"
    s = f.summary
    if s is not None:
        code, ended, why = int(s.get("exit_code", 1)), str(s.get("status", "")), str(s.get("reason", ""))
        if ended == "timeout":
            return "DeadlineExceeded", f"{job} reached its time limit: raise kindslurm.io/time (or the flavor's time)", code
        if ended in ("cancelled", "interrupted"):
            return "SlurmJobCancelled", f"{job} was cancelled (scancel) before the pod ended", code
        return _BY_EXIT.get(code, "RunFailed"), f"{job} ended before the pod did: {why} (exit {code}; job directory " \
                                                f"on the login node has kind.log and slurm.out)", code
    state = f.job.state if f.job is not None else None
    if state == "cancelled":
        return "SlurmJobCancelled", f"{job} was cancelled outside Kubernetes (scancel by hand, or preempted)", 143
    if state == "timeout":
        return "DeadlineExceeded", f"{job} reached its time limit before the node side could report", exitcodes.TIME_LIMIT
    if f.job is not None and f.job.slurm_state.startswith(("NODE_FAIL", "BOOT_FAIL")):
        return "NodeFailure", f"{job} failed with its node ({f.job.slurm_state}): delete the pod and create it again", 1
    if f.job is None:
        return "SlurmJobVanished", f"{job} is gone from Slurm without a word from its node (node crash or scancel)", 1
    return "SlurmJobFailed", f"{job} ended {f.job.slurm_state} before the pod ended: see its slurm.out", \
        f.job.exit_code or 1


def pod_status(pod: dict[str, Any], f: Facts) -> dict[str, Any]:
    """The status to patch onto the outer pod (phase, conditions, container statuses, reason, message)."""
    inner = (f.inner or {}).get("status") if f.inner else None
    if f.refused:
        reason, message = f.refused
        return _terminal("Failed", reason, message, pod, None, exitcodes.USAGE)
    if f.ended:
        if inner and inner.get("phase") in ("Succeeded", "Failed"):
            status = _mirror(pod, inner)
        else:
            reason, message, code = _failure(f)
            status = _terminal("Failed", reason, message, pod, inner, code)
    elif inner is not None:
        status = _mirror(pod, inner)
    elif f.problem:
        reason, message = f.problem
        status = {"phase": "Pending", "message": message, **_waiting(pod, reason, message)}
    elif f.job is not None and f.job.state == "pending":
        why = f.job.explanation
        message = f"Slurm job {f.job_id} is pending" + (f": {why} ({f.job.reason})" if why else "")
        status = {"phase": "Pending", "message": message, **_waiting(pod, "Pending", message)}
    elif f.job_id:
        doing = PHASE_WORDS.get(f.phase or "", "starting the run")
        message = f"Slurm job {f.job_id}" + (f" runs on {f.node}" if f.node else " started") + f": {doing}"
        status = {"phase": "Pending", "message": message, **_waiting(pod, "ContainerCreating", message)}
    else:
        message = "submitting the pod's run to Slurm"
        status = {"phase": "Pending", "message": message, **_waiting(pod, "Pending", message)}
    if f.address and (inner is not None or status["phase"] != "Pending"):
        status["hostIP"] = f.address
        status["hostIPs"] = [{"ip": f.address}]
    for key in ("reason", "message"):  # null removes an earlier value in a merge patch
        status.setdefault(key, None)
    return status


def stamped(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """Conditions keep their transition time while their value stays, so an unchanged run patches nothing."""
    before = {c.get("type"): c for c in old.get("conditions") or []}
    conds = []
    for c in new.get("conditions") or []:
        prev = before.get(c.get("type"))
        if prev is not None and prev.get("status") == c.get("status") and prev.get("lastTransitionTime"):
            c = {**c, "lastTransitionTime": prev["lastTransitionTime"]}
        elif not c.get("lastTransitionTime"):
            c = {**c, "lastTransitionTime": now_iso()}
        conds.append(c)
    if conds:
        new = {**new, "conditions": conds}
    if "startTime" not in new and old.get("startTime") and new.get("phase") != "Pending":
        new = {**new, "startTime": old["startTime"]}
    return new


def terminal(status: dict[str, Any]) -> bool:
    return status.get("phase") in ("Succeeded", "Failed")
