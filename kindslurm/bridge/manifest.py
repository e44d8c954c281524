"""The outer pod as the manifest applied to its own inner cluster.

Scheduling fields are stripped (the inner cluster has one node and no virtual
taint), the outer service-account token volume is dropped (the inner cluster
mounts its own), the ConfigMaps and Secrets the pod references are copied in,
downward-API values that differ inside (the UID, the node name) are written
as literals. Volumes: emptyDir, configMap, secret, projected, downwardAPI as
they are; hostPath only under the admin's prefixes; a PVC only through an
admin's rule naming a directory. Those directories are mounted into the kind
node at the same path, so the inner pod's hostPath finds them.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from kindslurm.bridge.config import BridgeConfig, under
from kindslurm.bridge.mapping import GPU
from kindslurm.errors import PodNotReady, PodRefused

Fetch = Callable[[str, str, str], "dict[str, Any] | None"]  # (kind, namespace, name) -> object or None if absent

SCHEDULING = ("nodeName", "nodeSelector", "affinity", "tolerations", "schedulerName", "priority", "priorityClassName",
              "preemptionPolicy", "topologySpreadConstraints", "schedulingGates", "overhead", "runtimeClassName")
PLAIN_VOLUMES = ("emptyDir", "configMap", "secret", "projected", "downwardAPI")
_KEEP_META = ("name", "namespace", "labels", "annotations")
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass
class Inner:
    """The inner cluster's objects, in apply order, and the host directories its node must mount."""

    docs: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k in _KEEP_META and v}
    if _LAST_APPLIED in (meta.get("annotations") or {}):
        meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k != _LAST_APPLIED}
    return meta


def _copy_object(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": _meta(obj)}
    for key in ("data", "binaryData", "stringData", "type", "immutable"):
        if obj.get(key) is not None:
            out[key] = obj[key]
    return out


def _is_token_volume(vol: dict[str, Any]) -> bool:
    """The API server's own service-account token volume (kube-api-access-*): meaningless inside."""
    sources = (vol.get("projected") or {}).get("sources") or []
    return vol.get("name", "").startswith("kube-api-access-") and any("serviceAccountToken" in s for s in sources)


def _references(spec: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(kind, name, optional) of every ConfigMap and Secret the pod reads."""
    refs: list[tuple[str, str, bool]] = []
    for vol in spec.get("volumes") or []:
        if "configMap" in vol:
            refs.append(("ConfigMap", vol["configMap"].get("name", ""), bool(vol["configMap"].get("optional"))))
        if "secret" in vol:
            refs.append(("Secret", vol["secret"].get("secretName", ""), bool(vol["secret"].get("optional"))))
        for src in (vol.get("projected") or {}).get("sources") or []:
            if "configMap" in src:
                refs.append(("ConfigMap", src["configMap"].get("name", ""), bool(src["configMap"].get("optional"))))
            if "secret" in src:
                refs.append(("Secret", src["secret"].get("name", ""), bool(src["secret"].get("optional"))))
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for env in c.get("env") or []:
            ref = env.get("valueFrom") or {}
            if "configMapKeyRef" in ref:
                refs.append(("ConfigMap", ref["configMapKeyRef"].get("name", ""), bool(ref["configMapKeyRef"].get("optional"))))
            if "secretKeyRef" in ref:
                refs.append(("Secret", ref["secretKeyRef"].get("name", ""), bool(ref["secretKeyRef"].get("optional"))))
        for src in c.get("envFrom") or []:
            if "configMapRef" in src:
                refs.append(("ConfigMap", src["configMapRef"].get("name", ""), bool(src["configMapRef"].get("optional"))))
            if "secretRef" in src:
                refs.append(("Secret", src["secretRef"].get("name", ""), bool(src["secretRef"].get("optional"))))
    for s in spec.get("imagePullSecrets") or []:
        refs.append(("Secret", s.get("name", ""), True))
    return list(dict.fromkeys(r for r in refs if r[1]))


def _downward_literals(containers: list[dict[str, Any]], pod: dict[str, Any], node: str) -> None:
    literal = {"metadata.uid": (pod.get("metadata") or {}).get("uid", ""), "spec.nodeName": node}
    for c in containers:
        for env in c.get("env") or []:
            path = ((env.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if path in literal:
                env.pop("valueFrom")
                env["value"] = literal[path]


def _strip_extended(containers: list[dict[str, Any]]) -> None:
    """kind has no device plugins: GPUs reach the kind node as devices, not as a schedulable resource."""
    for c in containers:
        for key in ("limits", "requests"):
            res = (c.get("resources") or {}).get(key)
            if res:
                for name in [n for n in res if "/" in n or n == GPU]:
                    res.pop(name)


def _volume(vol: dict[str, Any], namespace: str, cfg: BridgeConfig, mounts: list[str]) -> dict[str, Any]:
    name = vol.get("name", "")
    if any(k in vol for k in PLAIN_VOLUMES):
        return vol
    if "hostPath" in vol:
        path = os.path.normpath(vol["hostPath"].get("path", ""))
        if not under(path, cfg.host_path_prefixes):
            raise PodRefused(f"volume {name} mounts host path {path}, outside the directories the bridge's admin allows "
                             f"(bridge.host_path_prefixes: {', '.join(cfg.host_path_prefixes) or 'none'})",
                             reason="HostPathNotAllowed")
        mounts.append(f"{path}:{path}")
        return {"name": name, "hostPath": {**vol["hostPath"], "path": path}}
    if "persistentVolumeClaim" in vol:
        claim = vol["persistentVolumeClaim"].get("claimName", "")
        directory = cfg.pvc_directory(namespace, claim)
        if directory is None:
            raise PodRefused(f"volume {name} uses PersistentVolumeClaim {namespace}/{claim}, and no bridge.pvc_rules "
                             f"entry maps it to a directory: ask the bridge's admin for a rule", reason="PVCNotMapped")
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as e:
            raise PodNotReady(f"cannot create the directory {directory} for claim {claim} ({e.strerror})",
                              reason="PVCDirectoryUnavailable") from None
        mounts.append(f"{directory}:{directory}")
        return {"name": name, "hostPath": {"path": directory, "type": "Directory"}}
    kinds = sorted(set(vol) - {"name"})
    raise PodRefused(f"volume {name} is of type {', '.join(kinds) or 'unknown'}, which the bridge cannot provide: use "
                     f"emptyDir, configMap, secret, projected, downwardAPI, hostPath or a mapped PVC",
                     reason="VolumeNotSupported")


def inner_objects(pod: dict[str, Any], node: str, cfg: BridgeConfig, fetch: Fetch) -> Inner:
    """Everything the inner cluster needs for this pod. PodRefused for what cannot be provided,
    PodNotReady for a referenced ConfigMap or Secret that does not exist (yet)."""
    meta = pod.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    spec = copy.deepcopy(pod.get("spec") or {})
    if spec.get("resourceClaims"):
        raise PodRefused("the pod uses resourceClaims (dynamic resource allocation), which the bridge cannot provide",
                         reason="ResourceClaimsNotSupported")
    if spec.get("ephemeralContainers"):
        spec.pop("ephemeralContainers")
    for key in SCHEDULING:
        spec.pop(key, None)
    dropped = {v["name"] for v in spec.get("volumes") or [] if _is_token_volume(v)}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    for c in containers:
        c["volumeMounts"] = [m for m in c.get("volumeMounts") or [] if m.get("name") not in dropped]
        if not c["volumeMounts"]:
            c.pop("volumeMounts")
    _downward_literals(containers, pod, node)
    _strip_extended(containers)
    inner = Inner()
    spec["volumes"] = [_volume(v, namespace, cfg, inner.mounts) for v in spec.get("volumes") or [] if v["name"] not in dropped]
    if not spec["volumes"]:
        spec.pop("volumes")
    if namespace != "default":
        inner.docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    account = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if account and account != "default":
        inner.docs.append({"apiVersion": "v1", "kind": "ServiceAccount",
                           "metadata": {"name": account, "namespace": namespace}})
    for kind, name, optional in _references(spec):
        obj = fetch(kind, namespace, name)
        if obj is None:
            if optional:
                continue
            raise PodNotReady(f"{kind} {namespace}/{name}, which the pod uses, does not exist: create it",
                              reason="CreateContainerConfigError")
        inner.docs.append(_copy_object(kind, obj))
    inner.docs.append({"apiVersion": "v1", "kind": "Pod", "metadata": {**_meta(pod), "namespace": namespace},
                       "spec": spec})
    inner.mounts = list(dict.fromkeys(inner.mounts))
    return inner
