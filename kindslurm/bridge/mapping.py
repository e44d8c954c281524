"""A pod's resources and annotations as a kindslurm run's options.

Annotations live under one prefix, `kindslurm.io/`; interLink's
`slurm-job.vk.io/flags` and `slurm-job.vk.io/flavor` are read as aliases so
its users can move their pods over unchanged. The pod's own limits (else
requests) win over its flavor's defaults, as interLink documents. The job
gets the pod's memory plus what the kind node itself needs (cluster_mem).
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from kindslurm import naming, timefmt
from kindslurm.bridge.config import BridgeConfig, under
from kindslurm.config import sbatch_args_problem
from kindslurm.errors import PodNotReady, PodRefused, SpecError

PREFIX = "kindslurm.io/"
RUN_ID = PREFIX + "run-id"  # written by the bridge before sbatch
JOB_ID = PREFIX + "job-id"  # written by the bridge after sbatch
TAINT = PREFIX + "virtual-node"
ALIASES = {"slurm-job.vk.io/flags": PREFIX + "sbatch-flags", "slurm-job.vk.io/flavor": PREFIX + "flavor"}
ANNOTATIONS = ("flavor", "sbatch-flags", "time", "account", "qos", "partition", "node-image", "load-images")
GPU = "nvidia.com/gpu"

_SUFFIX = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


# The sbatch options a pod author may set (long name, and short letter): where and when the job runs, never
# what runs or with which environment (--export, --get-user-env... would reach the node side itself).
POD_FLAGS = {"constraint": "constraint", "C": "constraint", "exclude": "exclude", "x": "exclude",
             "nodelist": "nodelist", "w": "nodelist", "exclusive": "exclusive", "gres": "gres", "hold": "hold",
             "H": "hold", "begin": "begin", "b": "begin", "dependency": "dependency", "d": "dependency",
             "reservation": "reservation", "licenses": "licenses", "L": "licenses", "nice": "nice",
             "mail-type": "mail-type", "mail-user": "mail-user", "tmp": "tmp", "requeue": "requeue",
             "no-requeue": "no-requeue", "prefer": "prefer", "switches": "switches", "wckey": "wckey"}


def _flag_name(flag: str) -> str:
    if flag.startswith("--"):
        return flag[2:].split("=", 1)[0]
    return flag[1:2] if flag.startswith("-") else flag


def quantity(value: Any) -> float:
    """A Kubernetes quantity (`500m`, `1.5`, `128Mi`, `1e9`) as a number."""
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise PodRefused(f"resource quantity {value!r} is not a Kubernetes quantity: write e.g. 500m, 2 or 1Gi")
    return float(m.group(1)) * _SUFFIX[m.group(2) or ""]


def run_id_of(uid: str) -> str:
    """The run id is the pod's UID: what the bridge writes before sbatch finds the job again after a crash."""
    run_id = f"pod-{uid}"
    if not naming.RUN_ID.match(run_id):
        raise PodRefused(f"pod UID {uid!r} is not a Kubernetes UID")
    return run_id


def pod_annotations(pod: dict[str, Any]) -> dict[str, str]:
    """The pod's kindslurm annotations by short name, aliases resolved (the kindslurm.io/ name wins)."""
    raw = (pod.get("metadata") or {}).get("annotations") or {}
    out: dict[str, str] = {}
    for alias, real in ALIASES.items():
        if alias in raw:
            out[real[len(PREFIX):]] = str(raw[alias])
    for key, value in raw.items():
        if key.startswith(PREFIX):
            short = key[len(PREFIX):]
            if short in ANNOTATIONS:
                out[short] = str(value)
            elif short not in ("run-id", "job-id"):
                raise PodRefused(f"unknown annotation {key}: use one of "
                                 f"{', '.join(PREFIX + a for a in ANNOTATIONS)}", reason="InvalidAnnotation")
    return out


@dataclass
class Asks:
    """What the pod's containers ask for, summed as the scheduler sums them."""

    cpus: float = 0.0
    mem_bytes: float = 0.0
    gpus: int = 0


def asks(pod: dict[str, Any]) -> Asks:
    spec = pod.get("spec") or {}

    def of(c: dict[str, Any], name: str) -> float:
        res = c.get("resources") or {}
        value = (res.get("limits") or {}).get(name, (res.get("requests") or {}).get(name))
        return quantity(value) if value is not None else 0.0

    total = Asks()
    for c in spec.get("containers") or []:
        total.cpus += of(c, "cpu")
        total.mem_bytes += of(c, "memory")
        total.gpus += int(of(c, GPU))
    for c in spec.get("initContainers") or []:  # init containers run one at a time, before the others
        total.cpus = max(total.cpus, of(c, "cpu"))
        total.mem_bytes = max(total.mem_bytes, of(c, "memory"))
        total.gpus = max(total.gpus, int(of(c, GPU)))
    return total


@dataclass
class RunRequest:
    """What `kindslurm.api` gets for one pod: config keys for `config.load`, and the cluster name prefix."""

    prefix: str
    flavor: str | None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def cpus(self) -> int:
        return int(self.options.get("cpus") or 1)

    @property
    def mem_mb(self) -> int:
        return timefmt.parse_mem_mb(str(self.options["mem"]))

    @property
    def gpus(self) -> int:
        return int(self.options.get("gpus") or 0)


def prefix_of(name: str) -> str:
    """A kind-valid cluster name prefix that shows whose pod it is."""
    clean = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return ("kb-" + clean)[:32].rstrip("-.") or "kb"


def _time(pod: dict[str, Any], ann: dict[str, str], flavor_time: str | None, default: str) -> str:
    time = ann.get("time") or flavor_time or default
    try:
        seconds = timefmt.slurm_time_seconds(time)
    except SpecError as e:
        raise PodRefused(f"annotation {PREFIX}time: {e}", reason="InvalidAnnotation") from None
    deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    if isinstance(deadline, int) and deadline + 300 > seconds and "time" not in ann:
        minutes = math.ceil((deadline + 300) / 60)  # the pod's own deadline plus the cluster's boot
        return f"{minutes // 60:02d}:{minutes % 60:02d}:00"
    return time


def request(pod: dict[str, Any], partition: str, cfg: BridgeConfig, default_time: str,
            largest: tuple[int, int, int] | None = None) -> RunRequest:
    """The run options for a pod bound to `partition`'s node.

    Raises PodRefused for what the pod author must change, PodNotReady when
    the pod asks more than the partition's largest node (it stays Pending).
    """
    ann = pod_annotations(pod)
    want = asks(pod)
    try:
        fname, flavor = cfg.flavor(ann.get("flavor"), want.gpus > 0)
    except SpecError as e:
        raise PodRefused(str(e), reason="InvalidAnnotation") from None
    if ann.get("partition") and ann["partition"] != partition:
        raise PodRefused(f"annotation {PREFIX}partition asks for {ann['partition']!r} but the pod is on the node of "
                         f"partition {partition!r}: select that partition's node instead", reason="InvalidAnnotation")
    cpus = math.ceil(want.cpus - 1e-9) if want.cpus else (flavor.cpus or 1)
    pod_mb = math.ceil(want.mem_bytes / 2**20) if want.mem_bytes else timefmt.parse_mem_mb(flavor.mem or cfg.default_mem)
    gpus = want.gpus or (flavor.gpus or 0)
    try:
        flags = shlex.split(ann.get("sbatch-flags", ""))
    except ValueError as e:
        raise PodRefused(f"annotation {PREFIX}sbatch-flags does not parse ({e}): quote it as a shell would",
                         reason="InvalidAnnotation") from None
    if problem := sbatch_args_problem(flags):
        raise PodRefused(f"annotation {PREFIX}sbatch-flags: sbatch option {problem.split(': use ')[0]}: give the time, "
                         f"account and qos as {PREFIX} annotations and CPUs, memory and GPUs as the pod's resources",
                         reason="InvalidAnnotation")
    if bad := next((f for f in flags if _flag_name(f) not in POD_FLAGS), None):
        raise PodRefused(f"annotation {PREFIX}sbatch-flags: {bad!r} is not one a pod may set (a pod may set "
                         f"{', '.join('--' + n for n in sorted(set(POD_FLAGS.values())))}): ask the bridge's admin "
                         f"for a flavor that sets it", reason="InvalidAnnotation")
    options: dict[str, Any] = {
        "partition": partition,
        "time": _time(pod, ann, flavor.time, default_time),
        "cpus": max(1, cpus),
        "mem": f"{pod_mb + timefmt.parse_mem_mb(cfg.cluster_mem)}M",
        "sbatch_args": [*flavor.sbatch_args, *flags],
    }
    if gpus:
        options["gpus"] = str(gpus)
    for key in ("account", "qos"):
        if ann.get(key):
            options[key] = ann[key]
    if ann.get("node-image") and ann["node-image"] not in cfg.node_images:
        raise PodRefused(f"annotation {PREFIX}node-image names {ann['node-image']}, which is not one the bridge's admin "
                         f"allows (bridge.node_images: {', '.join(cfg.node_images) or 'none'})",
                         reason="NodeImageNotAllowed")
    if ann.get("node-image") or flavor.node_image:
        options["node_image"] = ann.get("node-image") or flavor.node_image
    images = list(flavor.load_images)
    for path in (p.strip() for p in ann.get("load-images", "").split(",")):
        if not path:
            continue
        if not under(path, cfg.image_archive_prefixes):
            raise PodRefused(f"annotation {PREFIX}load-images names {path}, outside the directories the bridge's admin "
                             f"allows (bridge.image_archive_prefixes: {cfg.image_archive_prefixes or 'none'})",
                             reason="ImageArchiveNotAllowed")
        images.append(path)
    if images:
        options["load_images"] = images
    req = RunRequest(prefix_of((pod.get("metadata") or {}).get("name", "")), fname, options)
    if largest is not None:
        too_big = [f"{have} {what}" for have, most, what in ((req.cpus, largest[0], "CPUs"),
                                                             (req.mem_mb, largest[1], "MB of memory"),
                                                             (req.gpus, largest[2], "GPUs")) if have > most]
        if too_big:
            raise PodNotReady(f"the run needs {', '.join(too_big)} (memory includes {cfg.cluster_mem} for the kind "
                              f"node), more than any node of partition {partition} has "
                              f"({largest[0]} CPUs, {largest[1]} MB, {largest[2]} GPUs): lower the pod's limits",
                              reason="TooLargeForPartition")
    return req
