"""One virtual Node per Slurm partition (as wlm-operator does): sized from
sinfo, labelled so pods can select it, tainted so only pods that mean to run
as Slurm jobs land there.

Capacity is the partition's total over its usable nodes, so the outer
scheduler places as many pods as the partition could run at once; whether
one pod fits one Slurm node is the bridge's own check (mapping.request).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from kindslurm import __version__, timefmt
from kindslurm.bridge.mapping import PREFIX, TAINT
from kindslurm.errors import SpecError
from kindslurm.scheduler.sinfo import Partition

ROLE = "agent"
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")


def node_name(prefix: str, partition: str) -> str:
    """A DNS-1123 name for the partition's node: `kindslurm-gpu_a100` becomes `kindslurm-gpu-a100`."""
    clean = re.sub(r"[^a-z0-9.-]+", "-", partition.lower()).strip("-.")
    return f"{prefix}{clean}"[:253].rstrip("-.")


def label_value(text: str) -> str:
    return _LABEL_VALUE.sub("-", text).strip("-_.")[:63].rstrip("-_.")


def max_time_label(limit: str) -> str:
    """Slurm's partition time limit as a label value: seconds, or `infinite`."""
    try:
        return str(timefmt.slurm_time_seconds(limit))
    except SpecError:
        return "infinite"


@dataclass(frozen=True)
class NodeView:
    """What the bridge says about one virtual node."""

    name: str
    partition: str
    address: str
    port: int
    max_pods: int

    def labels(self, p: Partition | None) -> dict[str, str]:
        labels = {
            "kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "type": "virtual-kubelet", "kubernetes.io/role": ROLE, f"node-role.kubernetes.io/{ROLE}": "",
            f"{PREFIX}partition": label_value(self.partition),
        }
        if p is not None:
            labels[f"{PREFIX}max-time-seconds"] = max_time_label(p.time_limit)
            labels[f"{PREFIX}nodes"] = str(len(p.nodes))
            for feature in p.features:
                key = label_value(feature)
                if key:
                    labels[f"feature.{PREFIX}{key}"] = "true"
        return labels

    def object(self, p: Partition | None) -> dict[str, Any]:
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.name, "labels": self.labels(p)},
            "spec": {"taints": [{"key": TAINT, "value": label_value(self.partition), "effect": "NoSchedule"}]},
        }

    def status(self, p: Partition | None, why_not: str | None = None) -> dict[str, Any]:
        """Capacity and conditions: a vanished or down partition has nothing to give and is NotReady."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        cpus, mem_mb, gpus = (p.cpus, p.mem_mb, p.gpus) if p is not None else (0, 0, 0)
        capacity = {"cpu": str(cpus), "memory": f"{mem_mb}Mi", "pods": str(self.max_pods)}
        if gpus:
            capacity["nvidia.com/gpu"] = str(gpus)
        if p is None:
            ready = ("False", "PartitionNotFound", why_not or f"Slurm has no partition {self.partition}")
        elif not p.up:
            ready = ("False", "PartitionDown", f"Slurm partition {self.partition} is down")
        elif not p.ready:
            ready = ("False", "NoUsableNodes", f"no node of partition {self.partition} is up (down, drained or failing)")
        else:
            ready = ("True", "KindslurmBridgeReady", f"partition {self.partition}: {len(p.nodes)} node(s), "
                                                      f"pods run as Slurm jobs with their own kind cluster")
        conditions = [{"type": "Ready", "status": ready[0], "reason": ready[1], "message": ready[2],
                       "lastHeartbeatTime": now, "lastTransitionTime": now}]
        for kind, reason in (("MemoryPressure", "KubeletHasSufficientMemory"), ("DiskPressure", "KubeletHasNoDiskPressure"),
                             ("PIDPressure", "KubeletHasSufficientPID")):
            conditions.append({"type": kind, "status": "False", "reason": reason, "message": "a Slurm partition",
                               "lastHeartbeatTime": now, "lastTransitionTime": now})
        return {
            "capacity": capacity, "allocatable": dict(capacity), "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": self.address}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {"kubeletVersion": f"v0.0.0-kindslurm.{__version__}", "kubeProxyVersion": "",
                         "containerRuntimeVersion": f"kindslurm://{__version__}", "operatingSystem": "linux",
                         "architecture": "amd64", "osImage": f"Slurm partition {self.partition}",
                         "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": ""},
        }


def keep_transitions(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """A condition's transition time moves only when its status does."""
    before = {c.get("type"): c for c in ((old or {}).get("status") or {}).get("conditions") or []}
    for c in new.get("conditions") or []:
        prev = before.get(c["type"])
        if prev is not None and prev.get("status") == c["status"] and prev.get("lastTransitionTime"):
            c["lastTransitionTime"] = prev["lastTransitionTime"]
    return new
