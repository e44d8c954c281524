"""Talking to the run's own cluster through the official Kubernetes client.

Imported only on the node side: the client is slow to import and `--help`
must stay fast. API errors are mapped to kindslurm errors here, once. What is
saved from the cluster before it goes (logs, events) is node/harvest.py's.
"""

from __future__ import annotations

import json
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

    def apply(self, manifests: list[str], retry_for: float = 30.0,
              patch: Callable[[dict[str, Any]], None] | None = None) -> list[Applied]:
        """Server-side apply in dependency order (CRDs, namespaces, config, RBAC, the rest);
        `patch` may change each document first (the pull policy of images loaded from podman)."""
        applied: list[Applied] = []
        for source, doc in load_documents(manifests):
            if patch is not None:
                patch(doc)
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
                message = api_message(e)
                transient = e.status in (429, 500, 503, 504) or "serviceaccount" in message.lower()
                if transient and time.monotonic() < deadline:
                    time.sleep(1)
                    continue
                name = meta.get("name") or meta.get("generateName")
                raise ApplyError(f"manifest {source}: {kind}/{name} was rejected: {message}") from None

    # -- waiting ----------------------------------------------------------
    def outcome(self, applied: list[Applied]) -> dict[str, str]:
        """Status of every applied Job and Pod: running, succeeded or failed (also when deleted before it ended)."""
        states: dict[str, str] = {}
        for obj in applied:
            try:
                state = self._outcome_of(obj)
            except ApiException as e:
                if e.status != 404:
                    raise
                state = "failed"
            if state is not None:
                states[obj.ref] = state
        return states

    def _outcome_of(self, obj: Applied) -> str | None:
        ns = obj.namespace or "default"
        if obj.kind == "Job" and obj.api_version == "batch/v1":
            job = self.batch.read_namespaced_job_status(obj.name, ns)
            conds = {c.type: c.status for c in ((job.status and job.status.conditions) or [])}
            if conds.get("Complete") == "True":
                return "succeeded"
            return "failed" if conds.get("Failed") == "True" else "running"
        if obj.kind == "Pod" and obj.api_version == "v1":
            status = self.core.read_namespaced_pod_status(obj.name, ns).status
            phase = status.phase if status else None
            return {"Succeeded": "succeeded", "Failed": "failed"}.get(phase or "", "running")
        return None

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


def api_message(e: ApiException) -> str:
    """The API server's own words for a refusal, not the whole HTTP response."""
    try:
        return str(json.loads(e.body or "").get("message") or e.reason)
    except (TypeError, ValueError, AttributeError):
        return str(e.reason)
