"""Who may use the bridge's kubelet endpoint: as a kubelet, a client certificate of the outer cluster's
CA or a bearer token (TokenReview), then `nodes/proxy` on the pod's node (SubjectAccessReview).
The pod here never runs (its annotation is refused), so no cluster boots."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.bridge.controlplane import PKI
from tests.bridge.harness import Bridge, Outer, wait

NODES_PROXY = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: log-reader, namespace: default}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: nobody, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ks-test-nodes-proxy}
rules: [{apiGroups: [""], resources: [nodes/proxy], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ks-test-log-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ks-test-nodes-proxy}
subjects: [{kind: ServiceAccount, name: log-reader, namespace: default}]
"""


@pytest.fixture(scope="module")
def endpoint(outer: Outer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bridge]:
    b = Bridge(outer, tmp_path_factory.mktemp("endpoint"))
    try:
        b.start()
        outer.apply(b.pod("authz", [{"name": "main", "image": "busybox"}],
                          metadata={"annotations": {"kindslurm.io/sbatch-flags": "--wrap=x"}}))
        outer.kubectl("apply", "-f", "-", input=NODES_PROXY)
        wait("authz refused", lambda: outer.phase("authz") == "Failed", 60)
        yield b
    finally:
        b.cleanup()
        outer.kubectl("delete", "pod", "authz", "--force", "--grace-period=0", check=False)


def get(b: Bridge, path: str, cert: tuple[Path, Path] | None = None, token: str | None = None) -> tuple[int, str]:
    assert b.outer.cp.pki is not None
    ctx = ssl.create_default_context(cafile=str(b.outer.cp.pki.ca_path))  # the bridge's serving cert is the CA's
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    req = urllib.request.Request(f"https://127.0.0.1:{b.port}{path}",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


LOGS = "/containerLogs/default/authz/main"


def test_healthz_needs_no_credentials(endpoint: Bridge) -> None:
    assert get(endpoint, "/healthz") == (200, "ok")


def test_no_credentials_is_unauthorized(endpoint: Bridge) -> None:
    assert get(endpoint, LOGS)[0] == 401
    assert get(endpoint, LOGS, token="not-a-token")[0] == 401


def test_a_user_without_nodes_proxy_is_forbidden(endpoint: Bridge) -> None:
    pki = endpoint.outer.cp.pki
    assert pki is not None
    code, body = get(endpoint, LOGS, cert=pki.issue("someone", "someone", groups=("developers",)))
    assert code == 403 and "user=someone" in body and f"name={endpoint.node}" in body
    code, _ = get(endpoint, LOGS, token=endpoint.outer.cp.token("default", "nobody"))
    assert code == 403


def test_the_api_servers_kubelet_client_and_an_allowed_token_get_through(endpoint: Bridge) -> None:
    root = endpoint.outer.cp.root / "pki"
    code, body = get(endpoint, LOGS, cert=(root / "apiserver-kubelet-client.crt", root / "apiserver-kubelet-client.key"))
    assert code == 400 and 'container "main" in pod "authz" is waiting to start' in body
    code, body = get(endpoint, LOGS, token=endpoint.outer.cp.token("default", "log-reader"))
    assert code == 400 and "waiting to start" in body
    assert get(endpoint, "/containerLogs/default/no-such-pod/main", token=endpoint.outer.cp.token("default",
                                                                                                  "log-reader"))[0] == 404


def test_a_certificate_of_another_ca_is_refused(endpoint: Bridge, tmp_path: Path) -> None:
    stranger = PKI(tmp_path / "other-ca").issue("intruder", "kube-apiserver-kubelet-client")
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        get(endpoint, LOGS, cert=stranger)


def test_kubectl_logs_reaches_the_bridge_through_the_api_server(endpoint: Bridge) -> None:
    res = endpoint.outer.kubectl("logs", "authz", check=False)
    assert res.returncode != 0 and "is waiting to start" in res.stderr and "InvalidAnnotation" not in res.stderr
    status = json.loads(endpoint.outer.kubectl("get", "pod", "authz", "-o", "json").stdout)["status"]
    assert status["reason"] == "InvalidAnnotation" and "--wrap" in status["message"]
