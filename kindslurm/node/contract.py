"""What the workload script gets: the Kind-in-Slurm (KSI) contract, so scripts
written for `run-workload.sh` run unchanged, plus kindslurm's own names.

| name | value |
| K8S_CLUSTER_NAME | the kubeconfig context, `kind-<cluster>` (`kubectl --context "$K8S_CLUSTER_NAME"`) |
| KIND_CLUSTER_NAME, KINDSLURM_CLUSTER | the bare cluster name (what `kind load` needs) |
| K8S_CLUSTER_API | the API server URL, the same the kubeconfig holds |
| K8S_CLUSTER_API_TOKEN | a kube-system/admin-user (cluster-admin) token that expires with the job |
| K8S_PORT | the leased host port mapped 1:1 to the control-plane node |

The token is a TokenRequest, never a Secret: nothing long-lived is left in
the cluster or the job directory, and it stops working 5 minutes after the
job's end (at least the API server's 10-minute minimum).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kindslurm.errors import KindslurmError

if TYPE_CHECKING:
    from kindslurm.k8sport import Lease
    from kindslurm.node.pullwatch import PullWatcher

ADMIN_USER, ADMIN_NAMESPACE = "admin-user", "kube-system"
TOKEN_GRACE = 300  # seconds past the job's end: teardown and log collection still use the API
TOKEN_MINIMUM = 600  # the API server refuses shorter TokenRequests


@dataclass
class KsiState:
    """What the contract's steps make and later steps (and undos) use."""

    lease: Lease | None = None
    env: dict[str, str] = field(default_factory=dict)
    loaded: set[str] = field(default_factory=set)  # manifest image names served from podman's store
    certs_d: str | None = None  # the registry mirrors' hosts.toml tree in the job directory
    watcher: PullWatcher | None = None


def context_name(cluster: str) -> str:
    return f"kind-{cluster}"


def token_seconds(now: float, job_end: float | None, time_seconds: int) -> int:
    """Until the job's end (Slurm's, else now plus its time limit) plus the grace."""
    end = job_end if job_end else now + time_seconds
    return max(TOKEN_MINIMUM, int(end - now) + TOKEN_GRACE)


def kubeconfig_server(kubeconfig: Path, context: str) -> str | None:
    """The server of `context` in the kubeconfig, as `kubectl config view` shows it."""
    import yaml

    try:
        doc: Any = yaml.safe_load(kubeconfig.read_text()) or {}
        cluster = next(c["context"]["cluster"] for c in doc.get("contexts") or [] if c.get("name") == context)
        return next(c["cluster"]["server"] for c in doc.get("clusters") or [] if c.get("name") == cluster)
    except (OSError, StopIteration, KeyError, TypeError, yaml.YAMLError):
        return None


def admin_token(api_client: Any, seconds: int) -> str:
    """KSI's admin-user: the ServiceAccount and its cluster-admin binding (kept
    if they exist), then a bound token of `seconds`."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    sa = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=ADMIN_USER, namespace=ADMIN_NAMESPACE))
    binding = client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name=ADMIN_USER),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="cluster-admin"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=ADMIN_USER, namespace=ADMIN_NAMESPACE)],
    )
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds))
    deadline = time.monotonic() + 60
    while True:
        try:
            for create in (lambda: core.create_namespaced_service_account(ADMIN_NAMESPACE, sa),
                           lambda: rbac.create_cluster_role_binding(binding)):
                try:
                    create()
                except ApiException as e:
                    if e.status != 409:
                        raise
            out = core.create_namespaced_service_account_token(ADMIN_USER, ADMIN_NAMESPACE, request)
            if out.status is None or not out.status.token:
                raise KindslurmError("the API server answered the admin-user TokenRequest without a token")
            return str(out.status.token)
        except ApiException as e:
            if e.status not in (404, 429, 500, 503) or time.monotonic() > deadline:  # kube-system may still be made
                raise KindslurmError(f"could not create the admin-user token: {e.status} {e.reason}") from None
            time.sleep(1)


def wait_namespaces_usable(api_client: Any, timeout: float = 180.0) -> None:
    """Until the controller manager's ServiceAccount controller runs.

    KSI's scripts create a namespace and a pod in it at once, as they could
    after `kind create --wait`: a namespace without its `default`
    ServiceAccount refuses pods. That controller also makes kube-system's, so
    its presence tells the controller runs (usually 1-5 s after the API server).
    """
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api_client)
    deadline = time.monotonic() + timeout
    while True:
        try:
            core.read_namespaced_service_account("default", "kube-system", _request_timeout=5)
            return
        except ApiException as e:
            if e.status != 404:
                raise KindslurmError(f"cannot read kube-system's ServiceAccounts: {e.status} {e.reason}") from None
        except Exception:
            pass  # the API server restarting: look again
        if time.monotonic() > deadline:
            raise KindslurmError(f"the cluster's controller manager did not start in {timeout:.0f}s "
                                 f"(new namespaces get no ServiceAccount): see kind.log and events.txt")
        time.sleep(0.25)


def environment(cluster: str, kubeconfig: Path, api_url: str, token: str, port: int | None) -> dict[str, str]:
    env = {
        "K8S_CLUSTER_NAME": context_name(cluster),
        "KIND_CLUSTER_NAME": cluster,
        "KINDSLURM_CLUSTER": cluster,
        "K8S_CLUSTER_API": api_url,
        "K8S_CLUSTER_API_TOKEN": token,
        "KUBECONFIG": str(kubeconfig),
    }
    if port is not None:
        env["K8S_PORT"] = str(port)
    return env
