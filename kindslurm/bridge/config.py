"""The `bridge:` mapping of the config files: flavors and the admin's rules.

Pod authors reach the bridge only through their pods; what a pod may mount
from the host (hostPath prefixes, PVC directories, image archives) is decided
here, by whoever configures the bridge (the site file, then the bridge
owner's file), and is closed by default.
"""

from __future__ import annotations

import fnmatch
import os
import re
from typing import Any

import msgspec

from kindslurm import timefmt
from kindslurm.config import sbatch_args_problem
from kindslurm.errors import SpecError


class Flavor(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Defaults for a kind of pod (interLink's flavors): a pod's own limits win."""

    cpus: int | None = None
    mem: str | None = None
    gpus: int | None = None
    time: str | None = None
    sbatch_args: list[str] = msgspec.field(default_factory=list)
    uses_gpu: bool = False  # picked for a pod asking for GPUs that names no flavor
    node_image: str | None = None
    load_images: list[str] = msgspec.field(default_factory=list)


class PvcRule(msgspec.Struct, forbid_unknown_fields=True):
    """A PersistentVolumeClaim, by namespace and claim name (shell patterns), is this directory."""

    path: str  # may use {namespace} and {claim}
    namespace: str = "*"
    claim: str = "*"

    def matches(self, namespace: str, claim: str) -> bool:
        return fnmatch.fnmatchcase(namespace, self.namespace) and fnmatch.fnmatchcase(claim, self.claim)

    def directory(self, namespace: str, claim: str) -> str:
        return os.path.normpath(self.path.format(namespace=namespace, claim=claim))


class BridgeConfig(msgspec.Struct, forbid_unknown_fields=True):
    flavors: dict[str, Flavor] = msgspec.field(default_factory=dict)
    default_flavor: str | None = None
    cluster_mem: str = "2G"  # added to the pod's memory: the kind node itself needs it
    default_mem: str = "1G"  # a pod's memory when neither it nor its flavor says
    host_path_prefixes: list[str] = msgspec.field(default_factory=list)
    pvc_rules: list[PvcRule] = msgspec.field(default_factory=list)
    image_archive_prefixes: list[str] = msgspec.field(default_factory=list)
    node_images: list[str] = msgspec.field(default_factory=list)  # what kindslurm.io/node-image may name
    node_prefix: str = "kindslurm-"
    max_pods: int = 1000
    lease_seconds: int = 40
    poll_seconds: float = 5.0
    rediscover_seconds: float = 60.0

    def flavor(self, name: str | None, wants_gpu: bool) -> tuple[str | None, Flavor]:
        """The named flavor, else a GPU flavor for a pod asking for GPUs, else the default."""
        if name:
            if name not in self.flavors:
                known = ", ".join(sorted(self.flavors)) or "none are configured"
                raise SpecError(f"unknown flavor {name!r}: use one of {known} (bridge.flavors in the config)")
            return name, self.flavors[name]
        if wants_gpu:
            for fname in sorted(self.flavors):
                if self.flavors[fname].uses_gpu:
                    return fname, self.flavors[fname]
        if self.default_flavor:
            return self.default_flavor, self.flavors[self.default_flavor]
        return None, Flavor()

    def pvc_directory(self, namespace: str, claim: str) -> str | None:
        for rule in self.pvc_rules:
            if rule.matches(namespace, claim):
                return rule.directory(namespace, claim)
        return None


def under(path: str, prefixes: list[str]) -> bool:
    """Whether `path` lies inside one of the directories (no `..` escapes, no prefix tricks like /scratchy)."""
    norm = os.path.normpath(path)
    if not os.path.isabs(norm) or ".." in norm.split(os.sep):
        return False
    return any(os.path.commonpath([norm, os.path.normpath(p)]) == os.path.normpath(p) for p in prefixes)


def _problem(e: msgspec.ValidationError) -> str:
    text = str(e)
    m = re.search(r"`\$\.([^`]+)`", text)
    where = f"bridge.{m.group(1)}" if m else "bridge"
    return f"{where}: {text.split(' - at ')[0]}"


def load(raw: dict[str, Any]) -> BridgeConfig:
    """The checked `bridge:` mapping; SpecError (one line naming the key and the fix) otherwise."""
    try:
        cfg = msgspec.convert(raw or {}, type=BridgeConfig, str_keys=True)
    except msgspec.ValidationError as e:
        raise SpecError(f"config {_problem(e)}: fix that key of the bridge mapping") from None
    if cfg.default_flavor and cfg.default_flavor not in cfg.flavors:
        raise SpecError(f"bridge.default_flavor {cfg.default_flavor!r} is not one of bridge.flavors "
                        f"({', '.join(sorted(cfg.flavors)) or 'none'}): add it or fix the name")
    for name, fl in cfg.flavors.items():
        where = f"bridge.flavors.{name}"
        if fl.mem:
            _checked(lambda: timefmt.parse_mem_mb(str(fl.mem)), where)
        if fl.time:
            _checked(lambda: timefmt.slurm_time_seconds(str(fl.time)), where)
        if fl.cpus is not None and fl.cpus < 1 or fl.gpus is not None and fl.gpus < 0:
            raise SpecError(f"{where}: cpus must be at least 1 and gpus at least 0")
        if problem := sbatch_args_problem(fl.sbatch_args):
            raise SpecError(f"{where}.sbatch_args: sbatch option {problem}")
    for key in ("cluster_mem", "default_mem"):
        _checked(lambda: timefmt.parse_mem_mb(getattr(cfg, key)), f"bridge.{key}")
    for key in ("host_path_prefixes", "image_archive_prefixes"):
        for p in getattr(cfg, key):
            if not os.path.isabs(p) or os.path.normpath(p) == "/":
                raise SpecError(f"bridge.{key}: {p!r} must be an absolute directory other than /: e.g. /scratch")
    for rule in cfg.pvc_rules:
        try:
            path = rule.directory("ns", "claim")
        except (KeyError, IndexError, ValueError):
            raise SpecError(f"bridge.pvc_rules: path {rule.path!r} may use only {{namespace}} and {{claim}}") from None
        if not os.path.isabs(path):
            raise SpecError(f"bridge.pvc_rules: path {rule.path!r} must be absolute, e.g. /shared/{{namespace}}/{{claim}}")
    if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9-])?", cfg.node_prefix) or len(cfg.node_prefix) > 40:
        raise SpecError(f"bridge.node_prefix {cfg.node_prefix!r} must be lowercase letters, digits, '.' and '-'")
    if cfg.lease_seconds < 4 or cfg.poll_seconds <= 0 or cfg.rediscover_seconds <= 0 or cfg.max_pods < 1:
        raise SpecError("bridge: lease_seconds must be at least 4, poll_seconds, rediscover_seconds and max_pods positive")
    return cfg


def _checked(fn: Any, where: str) -> None:
    try:
        fn()
    except SpecError as e:
        raise SpecError(f"{where}: {e}") from None
