"""Talking to the run's own cluster through the official Kubernetes client.

Imported only on the node side: the client is slow to import and `--help`
must stay fast. API errors are mapped to kindslurm errors here, once.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from kindslurm.errors import ApplyError, KindslurmError

FIELD_MANAGER = "kindslurm"
UNREADABLE = "unable to retrieve container logs"  # what the kubelet says once a container is gone
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "local-path-storage")
_ORDER = {
    "CustomResourceDefinition": 0,
    "Namespace": 1,
    "PriorityClass": 2,
    "StorageClass": 2,
    "ResourceQuota": 3,
    "LimitRange": 3,
    "ServiceAccount": 4,
    "Secret": 5,
    "ConfigMap": 5,
    "PersistentVolume": 6,
    "PersistentVolumeClaim": 6,
    "ClusterRole": 7,
    "ClusterRoleBinding": 7,
    "Role": 7,
    "RoleBinding": 7,
    "Service": 8,
}


@dataclass(frozen=True)
class Applied:
    api_version: str
    kind: str
    name: str
    namespace: str | None
    source: str

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}" + (f" -n {self.namespace}" if self.namespace else "")


def load_documents(paths: list[str]) -> list[tuple[str, dict[str, Any]]]:
    docs: list[tuple[str, dict[str, Any]]] = []
    for p in paths:
        for doc in yaml.safe_load_all(Path(p).read_text()):
            if not doc:
                continue
            if doc.get("kind", "").endswith("List") and "items" in doc:
                docs += [(p, item) for item in doc["items"]]
            else:
                docs.append((p, doc))
    return sorted(docs, key=lambda d: _ORDER.get(d[1].get("kind", ""), 9))


class Kube:
    def __init__(self, kubeconfig: Path) -> None:
        self.api = config.new_client_from_config(str(kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self._dynamic: DynamicClient | None = None
        self.unreadable: set[Path] = set()  # saved logs that hold an error, not the container's lines

    # -- readiness --------------------------------------------------------
    def wait_api(self, timeout: float = 120.0) -> None:
        """Return as soon as the API serves and the default ServiceAccount exists.

        Pods are refused until that ServiceAccount is there, and the controller
        that makes it starts seconds after the API server: creating it ourselves
        (a no-op if it exists; tokens are requested per pod since v1.24) lets the
        workload start at once.
        """
        deadline = time.monotonic() + timeout
        last = ""
        body = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
        while time.monotonic() < deadline:
            try:
                self.core.create_namespaced_service_account("default", body, _request_timeout=5)
                return
            except ApiException as e:
                if e.status == 409:
                    return
                last = f"{e.status} {e.reason}"
            except Exception as e:  # connection refused while the API server starts
                last = str(e).splitlines()[0][:200]
            time.sleep(0.2)
        raise KindslurmError(f"the cluster's API server did not become ready in {timeout:.0f}s ({last})")

    # -- apply ------------------------------------------------------------
    @property
    def dynamic(self) -> DynamicClient:
        if self._dynamic is None:
            self._dynamic = DynamicClient(self.api)
        return self._dynamic

    def apply(self, manifests: list[str], retry_for: float = 30.0) -> list[Applied]:
        """Server-side apply in dependency order (CRDs, namespaces, config, RBAC, the rest)."""
        applied: list[Applied] = []
        for source, doc in load_documents(manifests):
            applied.append(self._apply_one(source, doc, retry_for))
            if doc.get("kind") == "CustomResourceDefinition":
                self._dynamic = None  # rediscover so the new kinds resolve
        return applied

    def _apply_one(self, source: str, doc: dict[str, Any], retry_for: float) -> Applied:
        api_version, kind = doc["apiVersion"], doc["kind"]
        meta = doc.setdefault("metadata", {})
        deadline = time.monotonic() + retry_for
        while True:
            try:
                res = self.dynamic.resources.get(api_version=api_version, kind=kind)
                ns = (meta.get("namespace") or "default") if res.namespaced else None
                if ns:
                    meta["namespace"] = ns
                if meta.get("name"):
                    out = res.server_side_apply(
                        body=doc, name=meta["name"], namespace=ns, field_manager=FIELD_MANAGER, force_conflicts=True
                    )
                else:
                    out = res.create(body=doc, namespace=ns)
                return Applied(api_version, kind, out.metadata.name, ns, source)
            except ResourceNotFoundError:
                if time.monotonic() < deadline and api_version.count("/") and "." in api_version:
                    self._dynamic = None  # a CRD may still be registering
                    time.sleep(1)
                    continue
                raise ApplyError(f"manifest {source}: the cluster has no kind {kind} in {api_version}: fix apiVersion/kind") from None
            except ApiException as e:
                message = _api_message(e)
                transient = e.status in (429, 500, 503, 504) or "serviceaccount" in message.lower()
                if transient and time.monotonic() < deadline:
                    time.sleep(1)
                    continue
                name = meta.get("name") or meta.get("generateName")
                raise ApplyError(f"manifest {source}: {kind}/{name} was rejected: {message}") from None

    # -- waiting ----------------------------------------------------------
    def outcome(self, applied: list[Applied]) -> dict[str, str]:
        """Status of every applied Job and Pod: running, succeeded or failed."""
        states: dict[str, str] = {}
        for obj in applied:
            if obj.kind == "Job" and obj.api_version == "batch/v1":
                job = self.batch.read_namespaced_job_status(obj.name, obj.namespace)
                conds = {c.type: c.status for c in (job.status.conditions or [])}
                if conds.get("Complete") == "True":
                    states[obj.ref] = "succeeded"
                elif conds.get("Failed") == "True":
                    states[obj.ref] = "failed"
                else:
                    states[obj.ref] = "running"
            elif obj.kind == "Pod" and obj.api_version == "v1":
                phase = self.core.read_namespaced_pod_status(obj.name, obj.namespace).status.phase
                states[obj.ref] = {"Succeeded": "succeeded", "Failed": "failed"}.get(phase or "", "running")
        return states

    def wait(self, applied: list[Applied], deadline: float | None, on_poll: Callable[[dict[str, str]], None] | None = None) -> dict[str, str]:
        while True:
            states = self.outcome(applied)
            if on_poll:
                on_poll(states)
            if all(s != "running" for s in states.values()):
                return states
            if deadline is not None and time.monotonic() >= deadline:
                return states
            time.sleep(1)

    # -- harvest ----------------------------------------------------------
    def save_pod_logs(self, dest: Path, timeout: float = 20.0) -> int:
        """Every container's log of every pod, as pods/<namespace>/<pod>/<container>.log.

        A log that cannot be read (its container is gone) never replaces one
        saved earlier; the file is then listed in `unreadable` for the node fallback.
        """
        count = 0
        deadline = time.monotonic() + timeout
        for pod in self.core.list_pod_for_all_namespaces(_request_timeout=_left(deadline)).items:
            spec = pod.spec
            containers = [c.name for c in (spec.init_containers or [])] + [c.name for c in spec.containers]
            for name in containers:
                out = log_path(dest, pod.metadata.namespace, pod.metadata.name, name)
                if time.monotonic() >= deadline:
                    self._keep(out, "(no log: out of time for log collection)\n", failed=True)
                    continue
                try:
                    text = self.core.read_namespaced_pod_log(
                        pod.metadata.name, pod.metadata.namespace, container=name, _request_timeout=_left(deadline)
                    )
                    self._keep(out, text, failed=text.startswith(UNREADABLE))
                except ApiException as e:
                    self._keep(out, f"(no log: {_api_message(e)})\n", failed=True)
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
            lines.append(f"{stamp}\t{e.metadata.namespace}\t{obj.kind}/{obj.name}\t{e.type}\t{e.reason}\t{(e.message or '').strip()}")
        dest.write_text("\n".join(lines) + "\n")
        return len(events)

    def workload_pods(self, timeout: float = 10.0) -> list[Any]:
        pods = self.core.list_pod_for_all_namespaces(_request_timeout=max(1.0, timeout)).items
        return [p for p in pods if p.metadata.namespace not in SYSTEM_NAMESPACES]

    def follow(self, ns: str, pod: str, container: str, out: Path, budget: float) -> threading.Thread:
        """Stream a container's log into `out` from its first line until it exits,
        so lines printed while it is being stopped are kept even if the container
        is removed before anyone could read its log again."""

        def pump() -> None:
            try:
                resp = self.core.read_namespaced_pod_log(
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
        pods = self.workload_pods(timeout=_left(deadline, 10.0))
        streams = []
        for p in pods:
            for c in p.spec.containers:
                out = log_path(logs, p.metadata.namespace, p.metadata.name, c.name)
                streams.append(self.follow(p.metadata.namespace, p.metadata.name, c.name, out, _left(deadline)))
        for p in pods:
            try:
                self.core.delete_namespaced_pod(p.metadata.name, p.metadata.namespace, _request_timeout=_left(deadline, 10.0))
            except ApiException:
                pass
        remaining = {(p.metadata.namespace, p.metadata.name) for p in pods}
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
        return [f"{p.metadata.namespace}/{p.metadata.name}" for p in pods]

    def _orphan_controllers(self, timeout: float = 10.0) -> None:
        """Remove Jobs and workload controllers but keep their pods, so nothing
        recreates the pods we are about to stop."""
        apps = client.AppsV1Api(self.api)
        body = client.V1DeleteOptions(propagation_policy="Orphan")
        kinds = (
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
                if obj.metadata.namespace in SYSTEM_NAMESPACES:
                    continue
                try:
                    deleter(obj.metadata.name, obj.metadata.namespace, body=body, _request_timeout=max(1.0, timeout))
                except Exception:
                    pass


def log_path(dest: Path, ns: str, pod: str, container: str) -> Path:
    return dest / ns / pod / f"{container}.log"


def _left(deadline: float, cap: float | None = None) -> float:
    """A request timeout: what is left of the budget, at least a second."""
    left = max(1.0, deadline - time.monotonic())
    return min(left, cap) if cap else left


def parse_cri_log(text: str) -> str:
    """The lines of a kubelet log file (`<time> <stream> <P|F> <line>`, P = partial)."""
    out: list[str] = []
    for raw in text.splitlines():
        parts = raw.split(" ", 3)
        if len(parts) < 3 or parts[1] not in ("stdout", "stderr"):
            continue
        tag, line = parts[2], parts[3] if len(parts) == 4 else ""
        out.append(line if tag.startswith("P") else line + "\n")
    return "".join(out)


def _api_message(e: ApiException) -> str:
    try:
        return str(json.loads(e.body).get("message") or e.reason)
    except (TypeError, ValueError, AttributeError):
        return str(e.reason)
