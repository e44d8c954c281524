"""Saving what a run's cluster knows before it is deleted: every container's
log and the events, with the final lines of pods stopped at the time limit.

Each step works within the budget teardown gives it; a log the API can no
longer serve (its container is gone) is read from the kubelet's files in the
node while the node still exists. Imports the Kubernetes client: import this
module only once a cluster is up (`--help` and the boot must not wait for it).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from kubernetes import client
from kubernetes.client.rest import ApiException

from kindslurm.kube import api_message
from kindslurm.paths import JobPaths

if TYPE_CHECKING:
    from kindslurm.kube import Kube

UNREADABLE = "unable to retrieve container logs"  # what the kubelet says once a container is gone
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "local-path-storage")


def log_path(dest: Path, ns: str, pod: str, container: str) -> Path:
    return dest / ns / pod / f"{container}.log"


def _left(deadline: float, cap: float | None = None) -> float:
    """A request timeout: what is left of the budget, at least a second."""
    left = max(1.0, deadline - time.monotonic())
    return min(left, cap) if cap else left


def _ident(obj: Any) -> tuple[str, str]:
    meta = obj.metadata
    return (meta.namespace or "", meta.name or "") if meta is not None else ("", "")


class Harvester:
    """Reads logs and events through the run's API clients. `unreadable` lists
    saved logs that hold an error instead of the container's lines, so a later
    read (or the node fallback) may still replace them."""

    def __init__(self, core: client.CoreV1Api, batch: client.BatchV1Api, apps: client.AppsV1Api) -> None:
        self.core = core
        self.batch = batch
        self.apps = apps
        self.unreadable: set[Path] = set()

    @classmethod
    def of(cls, kube: Kube) -> Harvester:
        return cls(kube.core, kube.batch, client.AppsV1Api(kube.api))

    def save_pod_logs(self, dest: Path, timeout: float = 20.0) -> int:
        """Every container's log of every pod, as pods/<namespace>/<pod>/<container>.log.

        A log that cannot be read (its container is gone) never replaces one
        saved earlier; the file is then listed in `unreadable` for the node fallback.
        """
        count = 0
        deadline = time.monotonic() + timeout
        for pod in self.core.list_pod_for_all_namespaces(_request_timeout=_left(deadline)).items:
            spec = pod.spec
            if spec is None:
                continue
            ns, name = _ident(pod)
            containers = [c.name for c in (spec.init_containers or [])] + [c.name for c in spec.containers]
            for container in containers:
                out = log_path(dest, ns, name, container)
                if time.monotonic() >= deadline:
                    self._keep(out, "(no log: out of time for log collection)\n", failed=True)
                    continue
                try:
                    text = self.core.read_namespaced_pod_log(name, ns, container=container, _request_timeout=_left(deadline))
                    self._keep(out, text, failed=text.startswith(UNREADABLE))
                except ApiException as e:
                    self._keep(out, f"(no log: {api_message(e)})\n", failed=True)
                except Exception as e:  # a timeout or a dropped connection
                    self._keep(out, f"(no log: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__})\n", failed=True)
                count += 1
        return count

    def _keep(self, out: Path, text: str, *, failed: bool) -> None:
        if failed:
            if out.exists() and out.stat().st_size and out not in self.unreadable:
                return  # an earlier read (or the stream) got the real lines
            self.unreadable.add(out)
        else:
            self.unreadable.discard(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)

    def save_events(self, dest: Path, timeout: float = 20.0) -> int:
        events = self.core.list_event_for_all_namespaces(_request_timeout=max(1.0, timeout)).items

        def when(e: Any) -> float:
            t = e.last_timestamp or e.event_time or e.first_timestamp or e.metadata.creation_timestamp
            return t.timestamp() if t else 0.0

        lines = ["TIME\tNAMESPACE\tOBJECT\tTYPE\tREASON\tMESSAGE"]
        for e in sorted(events, key=when):
            obj = e.involved_object
            stamp = time.strftime("%H:%M:%S", time.gmtime(when(e)))
            lines.append(f"{stamp}\t{_ident(e)[0]}\t{obj.kind}/{obj.name}\t{e.type}\t{e.reason}\t{(e.message or '').strip()}")
        dest.write_text("\n".join(lines) + "\n")
        return len(events)

    def workload_pods(self, timeout: float = 10.0) -> list[Any]:
        pods = self.core.list_pod_for_all_namespaces(_request_timeout=max(1.0, timeout)).items
        return [p for p in pods if _ident(p)[0] not in SYSTEM_NAMESPACES]

    def follow(self, ns: str, pod: str, container: str, out: Path, budget: float) -> threading.Thread:
        """Stream a container's log into `out` from its first line until it exits,
        so lines printed while it is being stopped are kept even if the container
        is removed before anyone could read its log again."""

        def pump() -> None:
            try:
                resp: Any = self.core.read_namespaced_pod_log(
                    pod, ns, container=container, follow=True, _preload_content=False,
                    _request_timeout=(5, max(1.0, budget)),
                )
            except Exception:
                return
            first = b""
            f = None
            try:
                for chunk in resp.stream(4096):
                    if f is None:
                        first += chunk
                        if len(first) < len(UNREADABLE) and UNREADABLE.encode().startswith(first):
                            continue
                        if first.startswith(UNREADABLE.encode()):
                            return
                        out.parent.mkdir(parents=True, exist_ok=True)
                        f = open(out, "wb")
                        chunk = first
                    f.write(chunk)
                    f.flush()
                    self.unreadable.discard(out)
            except Exception:
                pass  # the stream ends when the container or the budget does
            finally:
                if f is not None:
                    f.close()
                resp.release_conn()

        t = threading.Thread(target=pump, daemon=True, name=f"log-{ns}/{pod}/{container}")
        t.start()
        return t

    def terminate_workload(self, logs: Path, budget: float) -> list[str]:
        """Delete workload pods with their grace period (preStop and SIGTERM reach them),
        streaming each container's log meanwhile so the final lines are kept."""
        deadline = time.monotonic() + budget
        self._orphan_controllers(timeout=min(10.0, budget / 4))
        pods = [(p, *_ident(p)) for p in self.workload_pods(timeout=_left(deadline, 10.0))]
        streams = []
        for p, ns, name in pods:
            for c in p.spec.containers:
                out = log_path(logs, ns, name, c.name)
                streams.append(self.follow(ns, name, c.name, out, _left(deadline)))
        for _, ns, name in pods:
            try:
                self.core.delete_namespaced_pod(name, ns, _request_timeout=_left(deadline, 10.0))
            except ApiException:
                pass
        remaining = {(ns, name) for _, ns, name in pods}
        while remaining and time.monotonic() < deadline:
            for ns, name in list(remaining):
                try:
                    self.core.read_namespaced_pod(name, ns, _request_timeout=_left(deadline, 5.0))
                except ApiException:
                    remaining.discard((ns, name))
                except Exception:
                    break
            time.sleep(0.5)
        for t in streams:
            t.join(timeout=max(0.1, min(2.0, deadline - time.monotonic())))
        return [f"{ns}/{name}" for _, ns, name in pods]

    def _orphan_controllers(self, timeout: float = 10.0) -> None:
        """Remove Jobs and workload controllers but keep their pods, so nothing
        recreates the pods we are about to stop."""
        apps = self.apps
        body = client.V1DeleteOptions(propagation_policy="Orphan")
        kinds: tuple[tuple[Callable[..., Any], Callable[..., Any]], ...] = (
            (self.batch.list_job_for_all_namespaces, self.batch.delete_namespaced_job),
            (apps.list_deployment_for_all_namespaces, apps.delete_namespaced_deployment),
            (apps.list_replica_set_for_all_namespaces, apps.delete_namespaced_replica_set),
            (apps.list_stateful_set_for_all_namespaces, apps.delete_namespaced_stateful_set),
            (apps.list_daemon_set_for_all_namespaces, apps.delete_namespaced_daemon_set),
        )
        for lister, deleter in kinds:
            try:
                items = lister(_request_timeout=max(1.0, timeout)).items
            except Exception:
                continue
            for obj in items:
                ns, name = _ident(obj)
                if ns in SYSTEM_NAMESPACES:
                    continue
                try:
                    deleter(name, ns, body=body, _request_timeout=max(1.0, timeout))
                except Exception:
                    pass


def collect(harvester: Harvester, provider: Any, cluster: str, job: JobPaths, budget: Callable[[], float],
            say: Callable[[str], None]) -> None:
    left = budget()
    if left < 1.0:
        say("warning: no time left to collect logs before the cluster must go")
        return
    t0 = time.monotonic()
    try:
        n = harvester.save_pod_logs(job.pod_logs, timeout=left * 0.8)
        e = harvester.save_events(job.events, timeout=max(1.0, left - (time.monotonic() - t0)))
        say(f"saved {n} container log(s) and {e} event(s) to {job.root}")
    except Exception as e:
        say(f"warning: log collection failed: {e}")
    logs_from_nodes(harvester, provider, cluster, budget)


def logs_from_nodes(harvester: Harvester, provider: Any, cluster: str, budget: Callable[[], float]) -> None:
    """Logs the API could not serve, from the kubelet's files, while the nodes still exist."""
    reader = getattr(provider, "node_pod_log", None)
    if reader is None:
        return
    for path in sorted(harvester.unreadable):
        if budget() < 1.0:
            return
        container, pod, ns = path.stem, path.parent.name, path.parent.parent.name
        try:
            text = reader(cluster, ns, pod, container, timeout=min(10.0, budget()))
        except Exception:
            continue
        if text:
            path.write_text(text)
            harvester.unreadable.discard(path)


def terminate(harvester: Harvester, job: JobPaths, budget: float, say: Callable[[str], None]) -> None:
    """Time limit: delete workload pods with their grace, their logs streamed meanwhile."""
    try:
        stopped = harvester.terminate_workload(job.pod_logs, budget)
        if stopped:
            say(f"stopped {len(stopped)} workload pod(s) with their termination grace")
    except Exception as e:
        say(f"warning: stopping workload pods failed: {e}")
