"""The Slurm allocation this process runs in, read from SLURM_* variables in one place.

`kindslurm run` inside an allocation runs the node side right there, but only
on a node of that allocation: an `salloc` shell on a login node also has
SLURM_JOB_ID set, and booting the cluster there would put it on the login node.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

from kindslurm import naming

if TYPE_CHECKING:
    from kindslurm.spec import JobSpec

_GROUP = re.compile(r"\[([^\]]*)\]")


def expand_hostlist(expr: str) -> list[str]:
    """Slurm's compressed host lists: `n[01-03,7],gpu5`, `r[1-2]-n[1-2]`."""
    hosts: list[str] = []
    for item in _split_top(expr):
        hosts += _expand_one(item)
    return hosts


def _split_top(expr: str) -> list[str]:
    """Split on commas outside brackets."""
    items, depth, cur = [], 0, ""
    for ch in expr:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    return [i.strip() for i in items if i.strip()]


def _expand_one(item: str) -> list[str]:
    m = _GROUP.search(item)
    if not m:
        return [item]
    head, tail = item[: m.start()], item[m.end() :]
    out: list[str] = []
    for part in m.group(1).split(","):
        lo, _, hi = part.partition("-")
        if hi and lo.isdigit() and hi.isdigit():
            width = len(lo)
            values = [str(n).zfill(width) for n in range(int(lo), int(hi) + 1)]
        else:
            values = [part]
        for v in values:
            out += _expand_one(head + v + tail)
    return out


def _short(host: str) -> str:
    return host.split(".", 1)[0]


@dataclass(frozen=True)
class Allocation:
    job_id: str
    step_id: str | None
    proc_id: str | None
    nodes: tuple[str, ...]
    node_name: str | None  # SLURMD_NODENAME: set only on a node of the allocation
    cpus: int | None = None  # SLURM_CPUS_ON_NODE
    mem_mb: int | None = None  # SLURM_MEM_PER_NODE

    def includes(self, hostname: str) -> bool:
        if self.node_name:
            return True
        return _short(hostname) in {_short(n) for n in self.nodes}


def current(environ: Mapping[str, str] = os.environ) -> Allocation | None:
    job_id = environ.get("SLURM_JOB_ID") or environ.get("SLURM_JOBID")
    if not job_id:
        return None
    nodelist = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST") or ""
    step = environ.get("SLURM_STEP_ID")
    return Allocation(
        job_id=job_id,
        step_id=step if step and step.isdigit() else None,
        proc_id=environ.get("SLURM_PROCID"),
        nodes=tuple(expand_hostlist(nodelist)),
        node_name=environ.get("SLURMD_NODENAME"),
        cpus=_count(environ.get("SLURM_CPUS_ON_NODE")),
        mem_mb=_count(environ.get("SLURM_MEM_PER_NODE")),
    )


def _count(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def gpus(environ: Mapping[str, str] = os.environ) -> str | None:
    """The GPUs Slurm assigned (global ids), also read outside an allocation's
    record: a `--local` run on a GPU node may have them."""
    return environ.get("SLURM_JOB_GPUS")


def end_time(environ: Mapping[str, str] = os.environ) -> int | None:
    """When Slurm ends the job (epoch seconds), if it said."""
    end = _count(environ.get("SLURM_JOB_END_TIME"))
    return end if end else None


def cpuset() -> str:
    """The CPUs Slurm lets this process run on: the node containers are pinned
    to the same ones, as podman does not inherit the job's cgroup."""
    return ",".join(map(str, sorted(os.sched_getaffinity(0))))


def placement(environ: Mapping[str, str] = os.environ, hostname: str | None = None) -> str | None:
    """Where `run` goes from here: "inline" on a node of the allocation, "srun"
    from an allocation whose nodes do not include this host, None outside one."""
    alloc = current(environ)
    if alloc is None:
        return None
    return "inline" if alloc.includes(hostname or socket.gethostname()) else "srun"


def cluster_name(spec: "JobSpec", environ: Mapping[str, str] = os.environ) -> str:
    """sbatch runs are alone in their job: `<prefix>-<job>`. Runs inside an
    allocation (inline, srun) may share it with other runs, so their names also
    carry the step, the task and a piece of the run id."""
    alloc = current(environ)
    if spec.mode == "local" or alloc is None:
        return naming.local_cluster_name(spec.prefix)
    if spec.mode == "sbatch":
        return naming.slurm_cluster_name(spec.prefix, alloc.job_id)
    return naming.allocation_cluster_name(spec.prefix, alloc.job_id, spec.run_id, alloc.step_id, alloc.proc_id)
