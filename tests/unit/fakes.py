"""In-memory stand-ins for the seams, for unit tests of the logic above them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Mapping, Sequence

from kindslurm.cluster.provider import ClusterResources, HostInfo, NodeContainer, ToolNeed
from kindslurm.errors import ClusterCreateError, ClusterExistsError, KindslurmError


class FakeProvider:
    """A Provider holding clusters in a dict: no podman, no kind."""

    def __init__(self, *, fail_create: bool = False, leftovers: Sequence[str] = ()) -> None:
        self.found: dict[str, ClusterResources] = {}
        self.calls: list[str] = []
        self.fail_create = fail_create
        self.leftovers = list(leftovers)
        self.images: set[str] = set()
        self.podman_store: set[str] = set()  # what podman "holds" (held_images)
        self.in_nodes: dict[str, set[str]] = {}  # cluster -> image names its nodes hold

    def add(self, name: str, nodes: int = 1, created: float | None = None) -> None:
        when = time.time() if created is None else created
        self.found[name] = ClusterResources(
            name, [NodeContainer(f"{name}-control-plane" if i == 0 else f"{name}-worker{i}", name,
                                 "control-plane" if i == 0 else "worker", "running", when) for i in range(nodes)],
            [f"{name}-control-plane"])

    def tools(self) -> list[ToolNeed]:
        return [ToolNeed("engine", "true", True, "none needed")]

    def info(self) -> HostInfo | None:
        return HostInfo(runtime="fake", cgroup_controllers=["cpu", "memory", "pids"], graph_root="/")

    def image_state(self, image: str, archive: str | None) -> str:
        return "present" if image in self.images else ("archive" if archive else "pull")

    def endpoint(self, name: str, timeout: float = 30.0) -> str | None:
        return "https://127.0.0.1:6443" if name in self.found else None

    def create(self, name: str, config: str, kubeconfig: Path, image: str | None, log: IO[str],
               timeout: float = 600.0) -> None:
        self.calls.append(f"create {name}")
        if name in self.found:
            raise ClusterExistsError(f"a cluster named {name} already exists")
        self.add(name)
        if self.fail_create:
            raise ClusterCreateError("kind create cluster failed (exit 1)")
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        kubeconfig.write_text("apiVersion: v1\nkind: Config\n")

    def delete(self, name: str, kubeconfig: Path | None = None, timeout: float = 60.0) -> list[str]:
        self.calls.append(f"delete {name}")
        if kubeconfig is not None:
            kubeconfig.unlink(missing_ok=True)
        return self.remove_many([name], timeout)

    def remove_many(self, names: list[str], timeout: float = 120.0) -> list[str]:
        self.calls.append("remove " + " ".join(names))
        left = [f"{n}: container {n}-control-plane" for n in names if n in self.leftovers]
        for n in names:
            if n not in self.leftovers:
                self.found.pop(n, None)
        return left

    def clusters(self, timeout: float = 60.0) -> dict[str, ClusterResources]:
        return dict(self.found)

    def load_archive(self, name: str, archive: str, log: IO[str]) -> None:
        self.calls.append(f"load {archive}")

    def ensure_image(self, image: str, archive: str | None) -> str:
        return self.image_state(image, archive)

    def limit_resources(self, name: str, cpuset: str | None, cpus: int | None, mem_mb: int | None) -> dict[str, dict]:
        return {}

    def node_pod_log(self, name: str, namespace: str, pod: str, container: str, timeout: float = 10.0) -> str | None:
        return None

    def remove_unused_network(self, timeout: float = 30.0) -> bool:
        return False

    def held_images(self) -> set[str]:
        self.calls.append("held_images")
        return set(self.podman_store)

    def node_images(self, name: str) -> set[str]:
        self.calls.append(f"node_images {name}")
        return set(self.in_nodes.get(name, set()))

    def save_images(self, refs: list[str], archive: str) -> None:
        self.calls.append(f"save {' '.join(refs)}")
        Path(archive).write_text("fake archive")

    def alias_images(self, name: str, pairs: list[tuple[str, str]]) -> None:
        self.calls.append(f"alias {name} " + " ".join(f"{a}={b}" for a, b in pairs))
        self.in_nodes.setdefault(name, set()).update(b for _, b in pairs)


@dataclass
class FakeJob:
    slurm_state: str

    @property
    def active(self) -> bool:
        return self.slurm_state in ("PENDING", "RUNNING")


@dataclass
class FakeJobStates:
    """The scheduler as gc sees it; `broken` plays a Slurm that cannot be asked."""

    jobs: dict[str, str] = field(default_factory=dict)
    broken: bool = False

    def states(self, job_ids: Sequence[str]) -> Mapping[str, FakeJob]:
        if self.broken:
            raise KindslurmError("squeue failed")
        return {j: FakeJob(self.jobs[j]) for j in job_ids if j in self.jobs}

