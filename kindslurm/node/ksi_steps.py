"""The steps behind KSI's workload-script contract and images without a
registry (see contract.py, images.py, pullwatch.py); actions.steps() puts
them in the run's order.

The order carries meaning: K8S_PORT is leased before the kind config that
maps it is written, and its undo (the release) runs after the cluster's
delete, so no other run can be given a port this cluster's node still binds.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

from kindslurm.node.steps import Step
from kindslurm.phases import Phase

if TYPE_CHECKING:
    from kindslurm.node.lifecycle import Lifecycle


class LeasePort(Step["Lifecycle"]):
    phase = Phase.CREATING
    undo_what = "release K8S_PORT"

    def do(self, lc: Lifecycle) -> None:
        from kindslurm import k8sport

        spec = lc.spec
        lc.ksi.lease = k8sport.lease(spec.k8s_port_address, spec.k8s_port)
        lc.say(f"K8S_PORT {lc.ksi.lease.port}: mapped to the control-plane node on {spec.k8s_port_address}")

    def left_something(self, lc: Lifecycle, error: BaseException) -> bool:
        return lc.ksi.lease is not None  # a refused lease holds nothing

    def undo(self, lc: Lifecycle) -> None:
        if lc.ksi.lease is not None:
            lc.ksi.lease.release()


class WriteMirrors(Step["Lifecycle"]):
    """containerd's hosts.toml per mirrored registry, in the job directory (mounted read-only in every node)."""

    phase = Phase.CREATING

    def wanted(self, lc: Lifecycle) -> bool:
        return bool(lc.spec.registry_mirrors)

    def do(self, lc: Lifecycle) -> None:
        from kindslurm import mirrors

        lc.ksi.certs_d = str(mirrors.write(lc.spec.registry_mirrors, lc.paths.root / "registry" / "certs.d"))
        for registry, url in sorted(lc.spec.registry_mirrors.items()):
            lc.say(f"registry mirror for {registry}: {url}")


class LoadFromPodman(Step["Lifecycle"]):
    phase = Phase.CREATING

    def wanted(self, lc: Lifecycle) -> bool:
        return bool(lc.spec.manifests)

    def do(self, lc: Lifecycle) -> None:
        from kindslurm.node import images

        with open(lc.paths.kind_log, "a") as log:
            lc.ksi.loaded = images.load_from_podman(lc.provider, lc.cluster, lc.spec.manifests,
                                                    lc.paths.root / "podman-images.tar", log, lc.say)
        if lc.spec.load_images:
            lc.ksi.loaded |= images.from_archives(lc.spec.manifests, lc.spec.load_images)


class WatchPulls(Step["Lifecycle"]):
    """Its undo stops the watcher before the logs are collected and the cluster goes."""

    phase = Phase.STARTING
    undo_what = "stop the image pull watcher"
    before_hold = True

    def do(self, lc: Lifecycle) -> None:
        from kindslurm.node.pullwatch import PullWatcher

        assert lc.kube is not None
        lc.ksi.watcher = PullWatcher(lc.kube.core, lc.say)
        lc.ksi.watcher.start()

    def undo(self, lc: Lifecycle) -> None:
        if lc.ksi.watcher is not None:
            lc.ksi.watcher.stop()


class PrepareContract(Step["Lifecycle"]):
    """The environment KSI's workload scripts expect (contract.py)."""

    phase = Phase.STARTING

    def wanted(self, lc: Lifecycle) -> bool:
        return bool(lc.spec.script)

    def do(self, lc: Lifecycle) -> None:
        from kindslurm.node import allocation, contract

        assert lc.kube is not None
        context = contract.context_name(lc.cluster)
        api = lc.provider.endpoint(lc.cluster) or contract.kubeconfig_server(lc.kubeconfig, context) or ""
        seconds = contract.token_seconds(time.time(), allocation.end_time(), lc.spec.time_seconds)
        token = contract.admin_token(lc.kube.api, seconds)
        contract.wait_namespaces_usable(lc.kube.api)
        port = lc.ksi.lease.port if lc.ksi.lease is not None else None
        lc.ksi.env = contract.environment(lc.cluster, lc.kubeconfig, api, token, port)


def prefer_local_patch(lc: Lifecycle) -> Callable[[dict[str, Any]], None] | None:
    """For ApplyManifests: IfNotPresent on containers of images loaded from podman or an archive, said once per image."""
    from kindslurm.node import images

    said: set[str] = set()

    def patch(doc: dict[str, Any]) -> None:
        for image in images.prefer_local(doc, lc.ksi.loaded):
            if image not in said:
                said.add(image)
                lc.say(f"imagePullPolicy IfNotPresent for {image} (loaded into the nodes; a :latest image would "
                       f"otherwise be pulled again)")

    return patch if lc.ksi.loaded else None
