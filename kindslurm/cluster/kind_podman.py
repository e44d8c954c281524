"""kind on podman: create, delete, list and feed clusters.

Facts this leans on (see the field notes): kind deletes a failed create's nodes
itself; `kind delete cluster` is idempotent and also removes node volumes;
nodes are disposable once logs are saved, so they are killed before delete
instead of waiting out podman's stop timeout; the shared `kind` network's first
creation races between parallel creates and is serialized by a local lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import IO, Iterator

from kindslurm import paths, proc
from kindslurm.locks import local_lock
from kindslurm.errors import (
    ClusterCreateError,
    ClusterExistsError,
    CommandError,
    CommandTimeout,
    KindslurmError,
    PreflightError,
)
from kindslurm.cluster.provider import CLUSTER_LABEL, ROLE_LABEL, ClusterResources, HostInfo, NodeContainer, ToolNeed

KIND_NETWORK = "kind"
CREATE_TIMEOUT = 600.0  # kind's own --wait is only a warning: a hung create must end too
# kind labels each node's /var volume with the key `<node name>=true`
_NODE_VOLUME = re.compile(r"^(.+)-(control-plane\d*|worker\d*|external-load-balancer)$")


def missing_archive(image: str, archive: str | None) -> tuple[str, str]:
    """What is wrong and the fix, for `doctor` and for a run alike."""
    return (f"{image} is not in podman and its archive {archive} does not exist",
            "copy the archive to this node or fix node_image_archive (setup/node-image/build.sh makes one)")


class KindPodman:
    def __init__(self, kind: str = "kind", podman: str = "podman") -> None:
        self.kind = kind
        self.podman = podman
        self.env = {"KIND_EXPERIMENTAL_PROVIDER": "podman"}

    # -- lifecycle -------------------------------------------------------
    def create(self, name: str, config: str, kubeconfig: Path, image: str | None, log: IO[str],
               timeout: float = CREATE_TIMEOUT) -> None:
        """Raises ClusterExistsError, having touched nothing, if the name is taken on this node."""
        argv = [self.kind, "create", "cluster", "--name", name, "--config", "-", "--kubeconfig", str(kubeconfig)]
        if image:
            argv += ["--image", image]
        paths.ensure_private_dir(kubeconfig.parent)
        with self._network_lock():
            if name in self.clusters():
                raise ClusterExistsError(
                    f"a cluster named {name} already exists on this node and is not this run's: "
                    "pick another --name, or `kindslurm gc` if it is a leftover"
                )
            try:
                proc.run(argv, env=self.env, input=config, log=log, timeout=timeout)
            except CommandError as e:
                raise ClusterCreateError(f"kind create cluster failed (exit {e.returncode}): see {log.name}") from None
            except CommandTimeout:
                raise ClusterCreateError(f"kind create cluster did not finish in {timeout:.0f}s: see {log.name}") from None
        if kubeconfig.exists():
            kubeconfig.chmod(0o600)

    @contextlib.contextmanager
    def _network_lock(self) -> Iterator[None]:
        """Creates share the lock; the first create (which makes the shared
        network) and the removal of an unused network take it alone. The mode is
        decided again under the lock: the network can go between look and lock."""
        mode = fcntl.LOCK_SH if self.network_exists() else fcntl.LOCK_EX
        while True:
            with local_lock("kind-network", mode):
                if mode == fcntl.LOCK_SH and not self.network_exists():
                    mode = fcntl.LOCK_EX  # removed meanwhile: this create makes it again, alone
                    continue
                yield
                return

    def delete(self, name: str, kubeconfig: Path | None = None, timeout: float = 60.0) -> list[str]:
        """Remove every trace of the cluster within `timeout`; returns what could not be removed."""
        deadline = time.monotonic() + timeout

        def left(cap: float) -> float:
            return max(1.0, min(cap, deadline - time.monotonic()))

        try:
            ids = self._ids(["ps", "-a", "-q", "--filter", f"label={CLUSTER_LABEL}={name}"], timeout=left(15))
            if ids:
                proc.run([self.podman, "kill", *ids], check=False, timeout=left(15))
            argv = [self.kind, "delete", "cluster", "--name", name]
            if kubeconfig is not None:
                argv += ["--kubeconfig", str(kubeconfig)]
            proc.run(argv, env=self.env, check=False, timeout=left(40))
        except KindslurmError:
            pass  # a hung kill or delete: the forced removal below still runs
        try:
            left_over = self.remove_many([name], timeout=left(30))
        except KindslurmError as e:
            left_over = [f"{name}: {e}"]
        if kubeconfig is not None:
            kubeconfig.unlink(missing_ok=True)
            Path(f"{kubeconfig}.lock").unlink(missing_ok=True)
        try:
            self.remove_unused_network(timeout=left(10))
        except KindslurmError:
            pass  # the network is shared and harmless; gc removes it later
        return left_over

    def remove_many(self, names: list[str], timeout: float = 120.0) -> list[str]:
        """Force-remove the containers and volumes of many clusters in two podman calls
        (gc's path: one `kind delete` per cluster is far slower)."""
        found = self.clusters(timeout=timeout)
        targets = [found[n] for n in names if n in found]
        containers = [c.name for t in targets for c in t.containers]
        volumes = [v for t in targets for v in t.volumes]
        if containers:
            proc.run([self.podman, "rm", "-f", "-t", "0", "-v", *containers], check=False, timeout=timeout)
        if volumes:
            proc.run([self.podman, "volume", "rm", "-f", *volumes], check=False, timeout=timeout)
        if not targets:
            return []
        after = self.clusters(timeout=timeout)
        failed = []
        for n in names:
            res = after.get(n)
            if res is not None:
                failed += [f"{n}: container {c.name}" for c in res.containers]
                failed += [f"{n}: volume {v}" for v in res.volumes]
        return failed

    def remove_unused_network(self, timeout: float = 30.0) -> bool:
        """Drop the shared `kind` network once no container uses it and no create is running."""
        with local_lock("kind-network", fcntl.LOCK_EX | fcntl.LOCK_NB) as got:
            if not got or not self.network_exists():
                return False
            if self._ids(["ps", "-a", "-q", "--filter", f"network={KIND_NETWORK}"], timeout=timeout):
                return False
            return proc.run([self.podman, "network", "rm", KIND_NETWORK], check=False, timeout=timeout).ok

    def _ids(self, args: list[str], timeout: float = 30.0) -> list[str]:
        res = proc.run([self.podman, *args], check=False, timeout=timeout)
        return res.stdout.split() if res.ok else []

    # -- discovery -------------------------------------------------------
    def clusters(self, timeout: float = 60.0) -> dict[str, ClusterResources]:
        res = proc.run([self.podman, "ps", "-a", "--format", "json", "--filter", f"label={CLUSTER_LABEL}"], timeout=timeout)
        found: dict[str, ClusterResources] = {}
        for c in json.loads(res.stdout or "[]"):
            labels = c.get("Labels") or {}
            name = labels.get(CLUSTER_LABEL)
            if not name:
                continue
            names = c.get("Names") or [c.get("Id", "?")[:12]]
            found.setdefault(name, ClusterResources(name)).containers.append(
                NodeContainer(
                    name=names[0],
                    cluster=name,
                    role=labels.get(ROLE_LABEL, ""),
                    state=c.get("State", ""),
                    created=float(c.get("Created") or 0),
                )
            )
        vres = proc.run([self.podman, "volume", "ls", "--format", "json"], check=False, timeout=timeout)
        for v in json.loads(vres.stdout or "[]") if vres.ok else []:
            for key, value in (v.get("Labels") or {}).items():
                m = _NODE_VOLUME.match(key)
                if m and value == "true":
                    found.setdefault(m.group(1), ClusterResources(m.group(1))).volumes.append(v.get("Name", ""))
        return found

    def tools(self) -> list[ToolNeed]:
        return [
            ToolNeed("podman", self.podman, True, "apt-get install podman (see setup/node-prereqs.md)"),
            ToolNeed("kind", self.kind, True, "run setup/install-kind.sh or set tools.kind in the config"),
        ]

    def info(self) -> HostInfo | None:
        """What podman says about this host, or None when `podman info` fails."""
        if shutil.which(self.podman) is None:
            return None
        res = proc.run([self.podman, "info", "--format", "json"], check=False, timeout=60)
        if not res.ok:
            return None
        try:
            data = json.loads(res.stdout)
        except ValueError:
            return None
        host, store = data.get("host") or {}, data.get("store") or {}
        return HostInfo(
            runtime=(host.get("ociRuntime") or {}).get("name", "?"),
            cgroup_controllers=list(host.get("cgroupControllers") or []),
            graph_root=store.get("graphRoot") or None,
        )

    def endpoint(self, name: str, timeout: float = 30.0) -> str | None:
        """The API server's URL on this host, as podman maps the control plane's 6443."""
        res = proc.run([self.podman, "port", f"{name}-control-plane", "6443/tcp"], check=False, timeout=timeout)
        hostport = res.stdout.strip().splitlines()[0] if res.ok and res.stdout.strip() else ""
        host, _, port = hostport.rpartition(":")
        if not port.isdigit():
            return None
        return f"https://{host if host not in ('', '0.0.0.0') else '127.0.0.1'}:{port}"

    def network_exists(self) -> bool:
        return proc.run([self.podman, "network", "exists", KIND_NETWORK], check=False, timeout=30).ok

    # -- images and resources -------------------------------------------
    def image_exists(self, image: str) -> bool:
        return proc.run([self.podman, "image", "exists", image], check=False).ok

    def image_state(self, image: str, archive: str | None) -> str:
        """"present", "archive" (loadable from it), "pull" (no archive: kind pulls it,
        for sites with registry access) or "no-archive" (the configured archive is missing)."""
        if self.image_exists(image):
            return "present"
        if not archive:
            return "pull"
        return "archive" if os.path.isfile(archive) else "no-archive"

    def ensure_image(self, image: str, archive: str | None) -> str:
        """Load the node image from its archive once per node. Returns the image's
        state before: "present", "archive" (loaded now) or "pull" (kind pulls it)."""
        state = self.image_state(image, archive)
        if state == "no-archive":
            detail, fix = missing_archive(image, archive)
            raise PreflightError(f"node image: {detail}: {fix}")
        if state != "archive" or archive is None:
            return state
        with local_lock("node-image"):
            if not self.image_exists(image):
                try:
                    proc.run([self.podman, "load", "-q", "-i", archive], timeout=900)
                except CommandError:
                    raise PreflightError(f"podman cannot load {archive}: replace it with a `podman save` archive of {image}") from None
        if not self.image_exists(image):
            raise PreflightError(f"archive {archive} does not contain image {image}: fix node_image or the archive")
        return state

    def load_archive(self, name: str, archive: str, log: IO[str]) -> None:
        proc.run([self.kind, "load", "image-archive", archive, "--name", name], env=self.env, log=log, timeout=600)

    def node_pod_log(self, name: str, namespace: str, pod: str, container: str, timeout: float = 10.0) -> str | None:
        """A container's log from the kubelet's own files in the nodes, for when
        the API can no longer serve it (the container was removed first)."""
        from kindslurm.kube import parse_cri_log

        found = self.clusters(timeout=timeout).get(name)
        script = 'cat /var/log/pods/"$1"_"$2"_*/"$3"/*.log 2>/dev/null'
        for node in found.containers if found else []:
            res = proc.run([self.podman, "exec", node.name, "sh", "-c", script, "sh", namespace, pod, container],
                           check=False, timeout=timeout)
            if res.ok and res.stdout:
                return parse_cri_log(res.stdout)
        return None

    def limit_resources(self, name: str, cpuset: str | None, cpus: int | None, mem_mb: int | None) -> dict[str, dict]:
        """Keep node containers inside the Slurm allocation (they run outside its
        cgroup): each node is capped at the granted CPUs and CPU set, and the
        granted memory is split between the nodes. Returns what podman reports."""
        nodes = self._ids(["ps", "-q", "--filter", f"label={CLUSTER_LABEL}={name}"])
        if not nodes:
            return {}
        argv: list[str] = []
        if cpuset:
            argv += ["--cpuset-cpus", cpuset]
        if cpus:
            argv += ["--cpus", str(cpus)]
        if mem_mb:
            per_node = max(512, mem_mb // len(nodes))
            argv += ["--memory", f"{per_node}m", "--memory-swap", f"{per_node}m"]
        for node in nodes if argv else []:
            proc.run([self.podman, "update", *argv, node], timeout=60)
        res = proc.run([self.podman, "inspect", "--format", "json", *nodes], check=False, timeout=60)
        from kindslurm.cluster import cgroups

        applied = {}
        for c in json.loads(res.stdout or "[]") if res.ok else []:
            applied[c.get("Name", "?")] = cgroups.limits(int((c.get("State") or {}).get("Pid") or 0))
        return applied

    # -- workload images from podman's store (cluster/podman_images.py) -----
    def held_images(self) -> set[str]:
        from kindslurm.cluster import podman_images

        return podman_images.held(self.podman)

    def node_images(self, name: str) -> set[str]:
        from kindslurm.cluster import podman_images

        return podman_images.in_nodes(self.podman, name)

    def save_images(self, refs: list[str], archive: str) -> None:
        from kindslurm.cluster import podman_images

        podman_images.save(self.podman, refs, archive)

    def alias_images(self, name: str, pairs: list[tuple[str, str]]) -> None:
        from kindslurm.cluster import podman_images

        podman_images.tag_in_nodes(self.podman, name, pairs)
