"""Reaching a pod's own (inner) API server from the bridge's host.

A bridged run's kind cluster binds its API server to every address of the
compute node (runs.KIND_CONFIG), and the node side writes the node's address
and the API port into the job directory (podfiles endpoint.json). The bridge
dials that address with the run's own kubeconfig: the client certificate it
holds, and TLS verified against the run's own cluster CA (made by kubeadm
for this cluster alone). The certificate names the server `kubernetes`
(kubeadm puts it in every API server certificate), not the node's address,
so that is the name verified; no SAN for the node is needed and the
kubeconfig stays as kind wrote it: 0600, in the user's own state directory.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kindslurm import paths, records
from kindslurm.podfiles import PodFiles, read_json

SERVER_NAME = "kubernetes"


class NotReachable(Exception):
    """The pod's cluster cannot be reached (not up yet, or gone): `message` says which."""


@dataclass(frozen=True)
class InnerAPI:
    host: str
    port: int
    ssl: ssl.SSLContext
    server_name: str = SERVER_NAME

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}{path}"


def _context(kubeconfig: dict[str, Any]) -> ssl.SSLContext:
    cluster = (kubeconfig.get("clusters") or [{}])[0].get("cluster") or {}
    user = (kubeconfig.get("users") or [{}])[0].get("user") or {}
    ca, cert, key = (cluster.get("certificate-authority-data"), user.get("client-certificate-data"),
                     user.get("client-key-data"))
    if not (ca and cert and key):
        raise NotReachable("the run's kubeconfig holds no CA and client certificate")
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=base64.b64decode(ca).decode())
    # ssl loads a client key only from a file: a private one, gone right after loading
    tmp = paths.ensure_private_dir(paths.state_dir() / "bridge" / "tmp")
    fd, name = tempfile.mkstemp(dir=tmp, prefix=".client-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64decode(cert) + b"\n" + base64.b64decode(key))
        ctx.load_cert_chain(name)
    finally:
        Path(name).unlink(missing_ok=True)
    return ctx


class InnerAPIs:
    """One TLS context per run, made again when its kubeconfig or endpoint changes."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[Any, ...], InnerAPI]] = {}

    def of(self, run_id: str) -> InnerAPI:
        rec = records.load(run_id)
        if rec is None or not rec.kubeconfig:
            raise NotReachable("the pod's cluster has not been created yet")
        endpoint = read_json(PodFiles.of(rec.job_dir).endpoint)
        if not isinstance(endpoint, dict) or not endpoint.get("address") or not endpoint.get("port"):
            raise NotReachable("the pod's cluster is still starting")
        try:
            stamp = os.stat(rec.kubeconfig).st_mtime
        except OSError:
            raise NotReachable("the pod's cluster is gone (its kubeconfig was removed)") from None
        key = (rec.kubeconfig, stamp, endpoint["address"], int(endpoint["port"]))
        cached = self._cache.get(run_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            doc = yaml.safe_load(paths.read_private(Path(rec.kubeconfig)))
        except (OSError, yaml.YAMLError) as e:
            raise NotReachable(f"cannot read the run's kubeconfig ({e})") from None
        api = InnerAPI(str(endpoint["address"]), int(endpoint["port"]), _context(doc))
        self._cache[run_id] = (key, api)
        return api

    def drop(self, run_id: str) -> None:
        self._cache.pop(run_id, None)
