"""The outer cluster's API, as the bridge uses it: every call in one place,
with JSON kept as dicts (the generated models cost memory per pod for
nothing) and every failure mapped once to OuterAPIError (retryable) or to an
answer (None for "not there", Conflict for a lost race).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Callable, Iterator, TypeVar

from kubernetes import client, config

from kindslurm.errors import OuterAPIError

T = TypeVar("T")
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
COMPONENT = "kindslurm-bridge"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"


class Conflict(OuterAPIError):
    """Someone else changed the object first (HTTP 409): re-read before acting."""


class _Refused(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body


def _message(body: bytes, status: int) -> str:
    try:
        return str(json.loads(body or b"{}").get("message") or status)
    except (TypeError, ValueError, AttributeError):
        return body.decode(errors="replace")[:300] or str(status)


def _call(what: str, fn: Callable[[], T], missing_ok: bool = False) -> T | None:
    try:
        return fn()
    except _Refused as e:
        if e.status == 404 and missing_ok:
            return None
        err = (Conflict if e.status == 409 else OuterAPIError)(
            f"outer API server refused to {what}: {e.status} {_message(e.body, e.status)}")
        err.status = e.status
        raise err from None
    except OuterAPIError:
        raise
    except Exception as e:  # connection refused, timeouts, TLS
        raise OuterAPIError(f"outer API server unreachable while trying to {what}: {str(e).splitlines()[0][:300]}") from None


class Outer:
    def __init__(self, kubeconfig: str | None = None) -> None:
        if kubeconfig:
            self.api = config.new_client_from_config(config_file=kubeconfig)
        else:
            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)
            self.api = client.ApiClient(cfg)
        self.api.configuration.connection_pool_maxsize = 32

    def _rest(self, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None,
              content_type: str = "application/json", timeout: Any = 30, stream: bool = False) -> Any:
        """One request, JSON in and out; _Refused for an answer that is not 2xx."""
        headers = {"Accept": "application/json", **({"Content-Type": content_type} if body is not None else {})}
        params = self.api.param_serialize(method, path, query_params=query or [], header_params=headers, body=body,
                                          auth_settings=["BearerToken"])
        resp = self.api.call_api(*params, _request_timeout=timeout)
        if not 200 <= resp.status < 300:
            raise _Refused(resp.status, resp.read() or b"")
        if stream:
            return resp.response
        data = resp.read()
        return json.loads(data) if data else {}

    # -- pods ---------------------------------------------------------------
    def pods(self, node: str) -> tuple[list[dict[str, Any]], str]:
        """Every pod bound to `node`, and the resourceVersion to watch from."""
        doc = _call("list pods", lambda: self._rest("GET", "/api/v1/pods", query=[
            ("fieldSelector", f"spec.nodeName={node}")], timeout=60))
        assert doc is not None
        return list(doc.get("items") or []), str((doc.get("metadata") or {}).get("resourceVersion") or "")

    def watch_pods(self, node: str, since: str, seconds: int = 300) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, object) events until the server ends the watch; ERROR events are passed on (410: relist)."""
        resp = _call("watch pods", lambda: self._rest("GET", "/api/v1/pods", query=[
            ("fieldSelector", f"spec.nodeName={node}"), ("watch", "true"), ("resourceVersion", since),
            ("allowWatchBookmarks", "true"), ("timeoutSeconds", str(seconds))], timeout=(10, seconds + 30), stream=True))
        assert resp is not None
        buf = b""
        try:
            for chunk in resp.stream(65536, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        yield str(event.get("type")), event.get("object") or {}
        except Exception as e:
            raise OuterAPIError(f"pod watch ended: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}") from None
        finally:
            resp.release_conn()

    def annotate(self, ns: str, name: str, uid: str, annotations: dict[str, str | None]) -> None:
        body = {"metadata": {"uid": uid, "annotations": annotations}}  # the uid makes it a precondition
        _call(f"annotate pod {ns}/{name}", lambda: self._rest("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}", body,
                                                              content_type=MERGE))

    def patch_status(self, ns: str, name: str, status: dict[str, Any]) -> None:
        _call(f"update the status of pod {ns}/{name}", lambda: self._rest(
            "PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status", {"status": status}, content_type=STRATEGIC))

    def remove_pod(self, ns: str, name: str, uid: str) -> None:
        """The kubelet's last word: the object goes now (grace 0), only if it is still this pod."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        _call(f"remove pod {ns}/{name}", lambda: self._rest("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}", body),
              missing_ok=True)

    def event(self, pod: dict[str, Any], kind: str, reason: str, message: str, node: str) -> None:
        meta = pod.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta.get('name')}.{uuid.uuid4().hex[:12]}", "namespace": ns},
            "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": ns, "name": meta.get("name"),
                               "uid": meta.get("uid")},
            "reason": reason, "message": message[:1000], "type": kind, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now, "source": {"component": COMPONENT, "host": node},
            "reportingComponent": COMPONENT, "reportingInstance": node,
        }
        _call(f"record an event for pod {meta.get('name')}", lambda: self._rest(
            "POST", f"/api/v1/namespaces/{ns}/events", body))

    def get(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        """A ConfigMap or Secret the pod reads, or None if it does not exist."""
        plural = {"ConfigMap": "configmaps", "Secret": "secrets"}[kind]
        return _call(f"read {kind} {ns}/{name}", lambda: self._rest("GET", f"/api/v1/namespaces/{ns}/{plural}/{name}"),
                     missing_ok=True)

    # -- nodes and leases -----------------------------------------------------
    def node(self, name: str) -> dict[str, Any] | None:
        return _call(f"read node {name}", lambda: self._rest("GET", f"/api/v1/nodes/{name}"), missing_ok=True)

    def create_node(self, body: dict[str, Any]) -> None:
        _call("register the node", lambda: self._rest("POST", "/api/v1/nodes", body))

    def patch_node(self, name: str, body: dict[str, Any]) -> None:
        _call(f"update node {name}", lambda: self._rest("PATCH", f"/api/v1/nodes/{name}", body, content_type=MERGE))

    def patch_node_status(self, name: str, status: dict[str, Any]) -> None:
        _call(f"update the status of node {name}", lambda: self._rest(
            "PATCH", f"/api/v1/nodes/{name}/status", {"status": status}, content_type=STRATEGIC))

    def lease(self, name: str) -> dict[str, Any] | None:
        return _call(f"read lease {name}", lambda: self._rest("GET", f"{LEASES}/{name}", timeout=15), missing_ok=True)

    def create_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        out = _call("create the node's lease", lambda: self._rest("POST", LEASES, body, timeout=15))
        assert out is not None
        return out

    def replace_lease(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT with the resourceVersion read: Conflict if another bridge wrote it since."""
        out = _call(f"renew lease {name}", lambda: self._rest("PUT", f"{LEASES}/{name}", body, timeout=15))
        assert out is not None
        return out

    # -- who is asking (the kubelet endpoint) --------------------------------
    def allowed(self, user: str, groups: list[str], uid: str | None, verb: str, node: str,
                subresource: str = "proxy") -> bool:
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {"user": user, "groups": groups, **({"uid": uid} if uid else {}),
                         "resourceAttributes": {"verb": verb, "resource": "nodes", "subresource": subresource,
                                                "name": node}}}
        out = _call("review access", lambda: self._rest(
            "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body, timeout=15))
        return bool(((out or {}).get("status") or {}).get("allowed"))

    def token_user(self, token: str) -> tuple[str, list[str], str | None] | None:
        """Who a bearer token belongs to (TokenReview), or None if it is not valid."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        out = _call("review a token", lambda: self._rest(
            "POST", "/apis/authentication.k8s.io/v1/tokenreviews", body, timeout=15))
        status = (out or {}).get("status") or {}
        if not status.get("authenticated"):
            return None
        user = status.get("user") or {}
        return str(user.get("username", "")), list(user.get("groups") or []), user.get("uid")
