"""The kind cluster config a run boots with.

The API server binds to 127.0.0.1 on a port podman picks atomically
(apiServerPort -1), so parallel clusters never race for a port. The submit
directory is mounted at /app on every node; a user's own kind config is merged
over these defaults. K8S_PORT and the registry mirrors are added after the merge,
so a user's config keeps its own port mappings and containerd patches.
"""

from __future__ import annotations

import glob
import os
from typing import Any

from kindslurm.errors import SpecError
from kindslurm.spec import JobSpec


def _mount(host: str, container: str, readonly: bool = False) -> dict[str, Any]:
    m: dict[str, Any] = {"hostPath": host, "containerPath": container}
    if readonly:
        m["readOnly"] = True
    return m


def gpu_devices(job_gpus: str | None) -> list[str]:
    """Device files for the GPUs Slurm assigned (SLURM_JOB_GPUS holds global ids)."""
    if not job_gpus:
        return []
    devs = [f"/dev/nvidia{i.strip()}" for i in job_gpus.split(",") if i.strip().isdigit()]
    devs = [d for d in devs if os.path.exists(d)]
    if devs:
        devs += [d for d in ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools") if os.path.exists(d)]
        devs += sorted(glob.glob("/dev/nvidia-caps/*"))
    return devs


def node_mounts(spec: JobSpec, devices: list[str]) -> list[dict[str, Any]]:
    mounts = [_mount(spec.submit_dir, "/app")]
    for m in spec.extra_mounts:
        parts = m.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/") or parts[2:] not in ([], ["ro"], ["rw"]):
            raise SpecError(f"bad mount {m!r}: use HOST_PATH:CONTAINER_PATH[:ro|rw], with no ':' inside either path")
        mounts.append(_mount(parts[0], parts[1], readonly=parts[2:] == ["ro"]))
    mounts += [_mount(d, d) for d in devices]
    return mounts


def build(spec: JobSpec, user_config: dict[str, Any] | None = None, devices: list[str] | None = None, *,
          k8s_port: int | None = None, certs_d: str | None = None) -> dict[str, Any]:
    """`k8s_port` is mapped 1:1 on the control-plane node (KSI's K8S_PORT);
    `certs_d`, the registry mirrors' hosts.toml tree, is mounted in every node."""
    mounts = node_mounts(spec, devices or [])
    if certs_d:
        from kindslurm import mirrors

        mounts.append(_mount(certs_d, mirrors.CERTS_D, readonly=True))
    config: dict[str, Any] = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "networking": {"apiServerAddress": "127.0.0.1", "apiServerPort": -1},
        "nodes": [{"role": "control-plane"}] + [{"role": "worker"} for _ in range(spec.workers)],
    }
    if user_config:
        user = dict(user_config)
        config["networking"] = {**config["networking"], **(user.pop("networking", None) or {})}
        if user.get("nodes"):
            config["nodes"] = [dict(n) for n in user.pop("nodes")]
        config.update(user)
    for node in config["nodes"]:
        existing = {m.get("containerPath") for m in node.get("extraMounts") or []}
        node["extraMounts"] = list(node.get("extraMounts") or []) + [
            m for m in mounts if m["containerPath"] not in existing
        ]
    if k8s_port is not None:
        _map_port(config, k8s_port, spec.k8s_port_address)
    if certs_d:
        from kindslurm import mirrors

        config["containerdConfigPatches"] = [*(config.get("containerdConfigPatches") or []), mirrors.CONTAINERD_PATCH]
    return config


def _map_port(config: dict[str, Any], port: int, address: str) -> None:
    """On the first control-plane node (KSI maps it there), after the user's own mappings."""
    node = next((n for n in config["nodes"] if n.get("role", "control-plane") == "control-plane"), config["nodes"][0])
    mapping = {"containerPort": port, "hostPort": port, "listenAddress": address, "protocol": "TCP"}
    node["extraPortMappings"] = [*(node.get("extraPortMappings") or []), mapping]


def render(spec: JobSpec, devices: list[str] | None = None, *, k8s_port: int | None = None,
           certs_d: str | None = None) -> str:
    import yaml

    user = None
    if spec.kind_config:
        with open(spec.kind_config) as f:
            user = yaml.safe_load(f)
    return yaml.safe_dump(build(spec, user, devices, k8s_port=k8s_port, certs_d=certs_d), sort_keys=False)
