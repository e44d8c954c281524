"""The steps of one run on its node, in order, each with its undo (see steps.py).

Undo is reverse order, and the order carries meaning: the workload's process
stops first; logs and events are saved (the API step's undo) while the
cluster still exists; the cluster goes next; the name's marker only after
it, and only if nothing was left that gc must find through it; the host
sysctls last, once no marker of any run is left on the node.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import TYPE_CHECKING, NoReturn

from kindslurm import exitcodes
from kindslurm.errors import ClusterExistsError, CommandError, PreflightError
from kindslurm.node import allocation, capacity, hold, ksi_steps, preflight
from kindslurm.node.steps import Decided, Step
from kindslurm.node.teardown import kill_wait
from kindslurm.phases import Phase

if TYPE_CHECKING:
    from kindslurm.node.lifecycle import Lifecycle


def _warm_import() -> None:
    try:
        import kindslurm.kube  # noqa: F401
        import kindslurm.node.harvest  # noqa: F401
    except Exception:
        pass  # the real import later reports it


def _timeout(lc: Lifecycle) -> NoReturn:
    lc.result = (exitcodes.WORKLOAD_TIMEOUT, Phase.FAILED, f"workload timeout ({lc.spec.timeout_seconds:.0f}s) expired")
    raise Decided


class Preflight(Step["Lifecycle"]):
    phase = Phase.PREFLIGHT

    def do(self, lc: Lifecycle) -> None:
        spec = lc.spec
        # The Kubernetes client takes a second to import: do it while kind boots.
        threading.Thread(target=_warm_import, daemon=True).start()
        lc.say(f"run {spec.run_id} on {socket.gethostname()}: cluster {lc.cluster}")
        if lc.alloc is not None:
            lc.kill_wait = kill_wait(spec.tool("scontrol"))
        checks = preflight.run_checks(lc.provider, kubectl=spec.tool("kubectl"))
        for c in checks:
            if c.status == preflight.WARN:
                lc.say(f"warning: {c.line}")
        if errs := preflight.errors(checks):
            raise PreflightError(errs[0].line)


class NodeImage(Step["Lifecycle"]):
    phase = Phase.PREFLIGHT

    def wanted(self, lc: Lifecycle) -> bool:
        return bool(lc.spec.node_image)

    def do(self, lc: Lifecycle) -> None:
        spec = lc.spec
        assert spec.node_image
        image_state = lc.provider.ensure_image(spec.node_image, spec.node_image_archive)
        if image_state == "archive":
            lc.say(f"loaded node image {spec.node_image} from {spec.node_image_archive}")
        elif image_state == "pull":
            lc.say(f"warning: node image {spec.node_image} is not in podman: kind will pull it")


class KindConfig(Step["Lifecycle"]):
    phase = Phase.CREATING

    def do(self, lc: Lifecycle) -> None:
        from kindslurm.cluster import kindconfig

        spec = lc.spec
        lc.say(f"creating cluster {lc.cluster} ({1 + spec.workers} node{'s' if spec.workers else ''})")
        port = lc.ksi.lease.port if lc.ksi.lease is not None else None
        lc.kind_config = kindconfig.render(spec, kindconfig.gpu_devices(allocation.gpus()), k8s_port=port,
                                           certs_d=lc.ksi.certs_d)
        if spec.hold:  # reached from elsewhere by the node's name or a tunnel: TLS must still verify
            lc.kind_config = hold.api_server_sans(lc.kind_config, hold.node_names())
        lc.paths.kind_config.write_text(lc.kind_config)


class ClaimName(Step["Lifecycle"]):
    """The cluster name's marker on this node. Its undo gives the name back,
    and then the host sysctls: capacity.release restores them only once no
    marker is left, so it must follow the marker's removal."""

    phase = Phase.CREATING
    undo_what = "give the cluster name back"

    def do(self, lc: Lifecycle) -> None:
        capacity.claim(lc.marker)

    def left_something(self, lc: Lifecycle, error: BaseException) -> bool:
        return False  # atomic: a claim that did not return took nothing, and the marker may be another run's

    def undo(self, lc: Lifecycle) -> None:
        if not lc.leftovers:  # with leftovers the marker stays: gc finds them through it
            lc.best_effort("remove the creation marker", lambda: lc.marker.unlink(missing_ok=True))
        if not lc.created:
            return
        try:
            if changed := capacity.release(lc.provider):
                lc.say(f"restored host sysctls {', '.join(k.replace('/', '.') for k in changed)}")
        except Exception as e:
            lc.say(f"warning: could not restore host sysctls: {e}")


class ReserveCapacity(Step["Lifecycle"]):
    """Fills the claimed marker (owner, booting): the claim's undo removes it."""

    phase = Phase.CREATING

    def do(self, lc: Lifecycle) -> None:
        capacity.reserve(lc.marker, 1 + lc.spec.workers, owner=lc.owner())


class CreateCluster(Step["Lifecycle"]):
    phase = Phase.CREATING
    undo_phase = Phase.TEARING_DOWN
    undo_what = "delete the cluster"

    def do(self, lc: Lifecycle) -> None:
        with open(lc.paths.kind_log, "a") as log:
            t = time.monotonic()
            lc.provider.create(lc.cluster, lc.kind_config, lc.kubeconfig, lc.spec.node_image, log)
            lc.timings["kind_create"] = time.monotonic() - t
        capacity.write_marker(lc.marker, 1 + lc.spec.workers, booting=False)

    def left_something(self, lc: Lifecycle, error: BaseException) -> bool:
        return not isinstance(error, ClusterExistsError)  # someone else's: never ours to delete

    def undo(self, lc: Lifecycle) -> None:
        lc.say(f"deleting cluster {lc.cluster}")
        t = time.monotonic()
        try:
            left = lc.provider.delete(lc.cluster, lc.kubeconfig, timeout=lc.teardown.for_delete())
        except Exception as e:
            left = [f"cluster {lc.cluster} ({e})"]
        lc.timings["kind_delete"] = time.monotonic() - t
        lc.leftovers = list(left or [])
        lc.best_effort("remove the kubeconfig", lambda: lc.kubeconfig.unlink(missing_ok=True))


class LimitResources(Step["Lifecycle"]):
    """Slurm's limits do not reach podman's containers: they get the job's CPUs and memory."""

    phase = Phase.CREATING

    def wanted(self, lc: Lifecycle) -> bool:
        return lc.alloc is not None

    def do(self, lc: Lifecycle) -> None:
        assert lc.alloc is not None
        try:
            lc.resources = lc.provider.limit_resources(lc.cluster, allocation.cpuset(), lc.alloc.cpus, lc.alloc.mem_mb)
        except CommandError as e:
            lc.say(f"warning: could not confine nodes to the allocation: {e}")


class LoadImages(Step["Lifecycle"]):
    phase = Phase.CREATING

    def wanted(self, lc: Lifecycle) -> bool:
        return bool(lc.spec.load_images)

    def do(self, lc: Lifecycle) -> None:
        with open(lc.paths.kind_log, "a") as log:
            for archive in lc.spec.load_images:
                lc.say(f"loading image archive {archive}")
                lc.provider.load_archive(lc.cluster, archive, log)


class ConnectAPI(Step["Lifecycle"]):
    """Its undo saves the logs and events: undone in reverse, that comes
    before the cluster's deletion."""

    phase = Phase.STARTING
    undo_phase = Phase.COLLECTING
    undo_what = "collect logs"

    def do(self, lc: Lifecycle) -> None:
        from kindslurm.kube import Kube

        lc.say("waiting for the API server")
        lc.kube = Kube(lc.kubeconfig)
        lc.kube.wait_api()

    def left_something(self, lc: Lifecycle, error: BaseException) -> bool:
        return lc.kube is not None  # no client, nothing to read from

    def undo(self, lc: Lifecycle) -> None:
        from kindslurm.node import harvest

        assert lc.harvester is not None
        harvest.collect(lc.harvester, lc.provider, lc.cluster, lc.paths, lc.teardown.for_harvest, lc.say)


class ApplyManifests(Step["Lifecycle"]):
    phase = Phase.APPLYING

    def wanted(self, lc: Lifecycle) -> bool:
        return bool(lc.spec.manifests)

    def do(self, lc: Lifecycle) -> None:
        assert lc.kube is not None
        lc.say(f"applying {len(lc.spec.manifests)} manifest file(s)")
        lc.applied = lc.kube.apply(lc.spec.manifests, patch=ksi_steps.prefer_local_patch(lc))
        for a in lc.applied:
            lc.say(f"applied {a.ref}")


class RunWorkload(Step["Lifecycle"]):
    phase = Phase.RUNNING
    undo_what = "stop the workload"
    before_hold = True

    def wanted(self, lc: Lifecycle) -> bool:
        return bool(lc.spec.script)

    def do(self, lc: Lifecycle) -> None:
        from kindslurm.node.workload import Workload, script_to_run

        spec = lc.spec
        lc.say(f"running {spec.script_origin or spec.script}")
        deadline = lc.deadline()
        t = time.monotonic()
        env = {
            **os.environ,
            "KIND_EXPERIMENTAL_PROVIDER": "podman",
            "KINDSLURM_JOB_DIR": spec.job_dir,
            "KINDSLURM_RUN_ID": spec.run_id,
            **lc.ksi.env,  # KSI's contract (contract.py): K8S_CLUSTER_NAME is the context, KUBECONFIG, K8S_PORT...
        }
        lc.workload = Workload(script_to_run(spec.script or "", spec.script_origin, lc.say), spec.script_args,
                               cwd=spec.submit_dir, env=env, log=lc.paths.workload_log, out=lc.out)
        rc = lc.workload.run(deadline)
        if rc is None:
            lc.say("workload timeout expired: the workload was stopped")
        lc.timings["workload"] = time.monotonic() - t
        if rc is None:
            _timeout(lc)
        lc.exit_code = rc
        lc.say(f"workload exited {rc}")

    def undo(self, lc: Lifecycle) -> None:
        if lc.workload is not None:
            lc.workload.stop()


def _script_failed(lc: Lifecycle) -> bool:
    return bool(lc.spec.script) and lc.exit_code != 0


class ManifestOutcome(Step["Lifecycle"]):
    """The script failed: its failure decides, so the manifests are only looked at."""

    phase = Phase.RUNNING

    def wanted(self, lc: Lifecycle) -> bool:
        return bool(lc.applied) and _script_failed(lc)

    def do(self, lc: Lifecycle) -> None:
        assert lc.kube is not None
        lc.outcome = lc.kube.outcome(lc.applied)


class WaitManifests(Step["Lifecycle"]):
    phase = Phase.WAITING

    def wanted(self, lc: Lifecycle) -> bool:
        return bool(lc.applied) and not _script_failed(lc)

    def do(self, lc: Lifecycle) -> None:
        assert lc.kube is not None
        lc.say("waiting for the manifests' Jobs and Pods")
        deadline = lc.deadline()
        t = time.monotonic()
        lc.outcome = lc.kube.wait(lc.applied, deadline)
        lc.timings["manifest_wait"] = time.monotonic() - t
        if any(s == "running" for s in lc.outcome.values()):
            _timeout(lc)
        failed = [ref for ref, s in lc.outcome.items() if s == "failed"]
        for ref, s in lc.outcome.items():
            lc.say(f"{ref}: {s}")
        if not lc.spec.script:
            lc.exit_code = exitcodes.WORKLOAD_FAILED if failed else exitcodes.OK


def steps() -> list[Step[Lifecycle]]:
    k = ksi_steps
    return [Preflight(), NodeImage(), k.LeasePort(), k.WriteMirrors(), KindConfig(), ClaimName(), ReserveCapacity(),
            CreateCluster(), LimitResources(), LoadImages(), k.LoadFromPodman(), ConnectAPI(), k.WatchPulls(),
            k.PrepareContract(), ApplyManifests(), RunWorkload(), ManifestOutcome(), WaitManifests(), hold.HoldCluster()]
