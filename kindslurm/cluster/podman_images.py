"""Workload images between podman's store and a cluster's nodes: what podman
holds, what the nodes' containerd holds, and the alias a podman build needs
(`localhost/NAME` serving a manifest's `NAME`)."""

from __future__ import annotations

import json
import shlex

from kindslurm import proc
from kindslurm.cluster.provider import CLUSTER_LABEL


def held(podman: str, timeout: float = 60.0) -> set[str]:
    """Every name podman's store holds, as podman writes them (`localhost/x:1`, `docker.io/library/alpine:latest`)."""
    res = proc.run([podman, "images", "--format", "json"], check=False, timeout=timeout)
    names: set[str] = set()
    for img in json.loads(res.stdout or "[]") if res.ok else []:
        names.update(img.get("Names") or [])
    return names


def nodes(podman: str, cluster: str, timeout: float = 30.0) -> list[str]:
    res = proc.run([podman, "ps", "-q", "--filter", f"label={CLUSTER_LABEL}={cluster}", "--format", "{{.Names}}"],
                   check=False, timeout=timeout)
    return sorted(res.stdout.split()) if res.ok else []


def in_nodes(podman: str, cluster: str, timeout: float = 60.0) -> set[str]:
    """The image names every node of the cluster holds (one exec per node)."""
    common: set[str] | None = None
    for node in nodes(podman, cluster):
        res = proc.run([podman, "exec", node, "ctr", "-n", "k8s.io", "images", "ls", "-q"], check=False, timeout=timeout)
        refs = set(res.stdout.split()) if res.ok else set()
        common = refs if common is None else common & refs
    return common or set()


def save(podman: str, refs: list[str], archive: str, timeout: float = 600.0) -> None:
    proc.run([podman, "save", "-q", "-m", "--format", "docker-archive", "-o", archive, *refs], timeout=timeout)


def tag_in_nodes(podman: str, cluster: str, pairs: list[tuple[str, str]], timeout: float = 60.0) -> None:
    """Give loaded images the names the manifests use, in every node."""
    script = "; ".join(f"ctr -n k8s.io images tag --force {shlex.quote(src)} {shlex.quote(dst)} >/dev/null"
                       for src, dst in pairs)
    for node in nodes(podman, cluster):
        proc.run([podman, "exec", node, "sh", "-ec", script], timeout=timeout)
