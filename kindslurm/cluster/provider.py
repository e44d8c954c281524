"""The cluster-provider seam: what the lifecycle and gc need from a provider.

kind on podman is the one implementation (kind_podman.py). Container labels
are the source of truth for which clusters exist, as in kind itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

CLUSTER_LABEL = "io.x-k8s.kind.cluster"
ROLE_LABEL = "io.x-k8s.kind.role"


@dataclass
class NodeContainer:
    name: str
    cluster: str
    role: str
    state: str
    created: float


@dataclass
class ClusterResources:
    """What a cluster occupies on this host, as the provider sees it."""

    name: str
    containers: list[NodeContainer] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    @property
    def created(self) -> float:
        return min((c.created for c in self.containers), default=0.0)


@dataclass
class ToolNeed:
    """A program the provider runs, for preflight to look up on PATH."""

    name: str
    path: str
    required: bool
    fix: str


@dataclass
class HostInfo:
    """What the container engine says about this host (preflight reads it)."""

    runtime: str
    cgroup_controllers: list[str] = field(default_factory=list)
    graph_root: str | None = None


class Provider(Protocol):
    def tools(self) -> list[ToolNeed]: ...

    def info(self) -> HostInfo | None:
        """None when the engine cannot be asked."""

    def image_state(self, image: str, archive: str | None) -> str:
        """"present", "archive", "pull" or "no-archive"."""

    def endpoint(self, name: str, timeout: float = ...) -> str | None:
        """The cluster's API server URL on this host, None if it has none."""

    def create(self, name: str, config: str, kubeconfig: Path, image: str | None, log: IO[str],
               timeout: float = ...) -> None:
        """Raises ClusterExistsError, having touched nothing, when the name is taken."""

    def delete(self, name: str, kubeconfig: Path | None = None, timeout: float = ...) -> list[str]:
        """Returns what could not be removed within `timeout`."""

    def remove_many(self, names: list[str], timeout: float = ...) -> list[str]: ...

    def clusters(self, timeout: float = ...) -> dict[str, ClusterResources]: ...

    def load_archive(self, name: str, archive: str, log: IO[str]) -> None: ...

    def ensure_image(self, image: str, archive: str | None) -> str: ...

    def limit_resources(self, name: str, cpuset: str | None, cpus: int | None, mem_mb: int | None) -> dict[str, dict]: ...

    def node_pod_log(self, name: str, namespace: str, pod: str, container: str, timeout: float = ...) -> str | None:
        """A container's log read from the node itself, once the API cannot serve it."""

    def remove_unused_network(self, timeout: float = ...) -> bool: ...

    def held_images(self) -> set[str]:
        """The image names the engine's own store holds (a user's builds)."""

    def node_images(self, name: str) -> set[str]:
        """The image names every node of the cluster holds."""

    def save_images(self, refs: list[str], archive: str) -> None: ...

    def alias_images(self, name: str, pairs: list[tuple[str, str]]) -> None:
        """Tag (source, name) in every node, so pods naming `name` find `source`."""
