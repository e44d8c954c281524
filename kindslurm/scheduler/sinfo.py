"""What Slurm's partitions hold, from one `sinfo` call: the bridge's virtual
nodes are sized from it.

One line per (partition, node) pair (`sinfo -N`), so a partition's totals and
its largest node both come from the same answer; a node in several partitions
counts in each, as Slurm would schedule it in each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kindslurm.errors import SchedulerError
from kindslurm.transport.base import Transport

# partition, node, CPUs, memory MB, gres, features, partition time limit, node state, partition availability
FORMAT = "%R|%N|%c|%m|%G|%f|%l|%T|%a"
_USABLE = ("idle", "mixed", "allocated", "completing", "planned", "reserved")
_GPU = re.compile(r"^gpu(?::[^:(]+)?:(\d+)")


@dataclass
class SlurmNode:
    name: str
    cpus: int
    mem_mb: int
    gpus: int
    features: tuple[str, ...]
    state: str

    @property
    def usable(self) -> bool:
        """Up and taking jobs now or soon: down, drained and failing nodes are not capacity."""
        word = self.state.lower().rstrip("*~#!%$@^-+")
        return word.split("+")[0] in _USABLE


@dataclass
class Partition:
    name: str
    up: bool
    time_limit: str
    nodes: list[SlurmNode] = field(default_factory=list)

    def _usable(self) -> list[SlurmNode]:
        """Nodes that can take a job now: none at all while the partition is down."""
        return [n for n in self.nodes if n.usable] if self.up else []

    @property
    def cpus(self) -> int:
        return sum(n.cpus for n in self._usable())

    @property
    def mem_mb(self) -> int:
        return sum(n.mem_mb for n in self._usable())

    @property
    def gpus(self) -> int:
        return sum(n.gpus for n in self._usable())

    @property
    def largest(self) -> tuple[int, int, int]:
        """The most CPUs, memory and GPUs one node offers: a run lives on one node."""
        usable = self._usable()
        return (max((n.cpus for n in usable), default=0), max((n.mem_mb for n in usable), default=0),
                max((n.gpus for n in usable), default=0))

    @property
    def features(self) -> list[str]:
        return sorted({f for n in self.nodes for f in n.features})

    @property
    def ready(self) -> bool:
        return bool(self._usable())


def gpu_count(gres: str) -> int:
    """GPUs in a gres string: `gpu:4`, `gpu:a100:2(S:0-1)`, `gpu:a100:2,gpu:v100:1`; `(null)` is none."""
    total = 0
    for part in re.split(r",(?![^(]*\))", gres or ""):
        m = _GPU.match(part.strip())
        if m:
            total += int(m.group(1))
    return total


def _int(text: str) -> int:
    m = re.match(r"\d+", text.strip())
    return int(m.group(0)) if m else 0


def parse(out: str) -> dict[str, Partition]:
    parts: dict[str, Partition] = {}
    for line in out.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 9 or not fields[0]:
            continue
        name, node, cpus, mem, gres, feats, limit, state, avail = (f.strip() for f in fields[:9])
        name = name.rstrip("*")
        p = parts.setdefault(name, Partition(name, avail.lower() == "up", limit))
        features = tuple(f for f in feats.split(",") if f and f != "(null)")
        p.nodes.append(SlurmNode(node, _int(cpus), _int(mem), gpu_count(gres), features, state))
    return parts


def partitions(transport: Transport, sinfo: str = "sinfo") -> dict[str, Partition]:
    """Every partition with its nodes; SchedulerError (retryable) when sinfo cannot answer."""
    try:
        res = transport.run([sinfo, "-h", "-N", "-o", FORMAT], check=False, timeout=30)
    except SchedulerError:
        raise
    except Exception as e:  # a missing or hung sinfo
        raise _unreachable(str(e)) from None
    if not res.ok:
        raise _unreachable(res.stderr.strip() or f"exit {res.returncode}")
    return parse(res.stdout)


def _unreachable(why: str) -> SchedulerError:
    err = SchedulerError(f"sinfo failed ({why}): is Slurm reachable from here?")
    err.retryable = True
    return err
