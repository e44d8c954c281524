"""`kindslurm bridge`: the pieces put together and run until SIGTERM.

Threads: one heartbeat (leases, node status, partition rediscovery), one
watch per node, the kubelet endpoint's event loop, and the poll loop (this
thread). A clean stop marks the nodes NotReady and frees their leases; the
pods' jobs go on, and the next bridge adopts them.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from kindslurm import api, config, naming, paths
from kindslurm.bridge import certs
from kindslurm.bridge import config as bridge_config
from kindslurm.bridge.controller import Controller, NodeCtx
from kindslurm.bridge.endpoint import Endpoint, Server
from kindslurm.bridge.heartbeat import Heartbeat
from kindslurm.bridge.inner import InnerAPIs
from kindslurm.bridge.lease import Lease, identity
from kindslurm.bridge.nodes import NodeView, node_name
from kindslurm.bridge.outer import Outer
from kindslurm.bridge.runs import Runs
from kindslurm.bridge.watch import Watcher
from kindslurm.errors import BridgeError, OuterAPIError, SpecError
from kindslurm.node.address import node_address
from kindslurm.scheduler import sinfo

log = logging.getLogger("kindslurm.bridge")


@dataclass
class Options:
    partitions: list[str]
    kubeconfig: str | None = None
    node_names: list[str] = field(default_factory=list)  # PARTITION=NAME
    address: str | None = None
    port: int = 10250
    bind_address: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    client_ca: str | None = None
    verbose: bool = False


def _kubeconfig(given: str | None) -> str | None:
    """--kubeconfig, else $KUBECONFIG, else ~/.kube/config, else the pod's service account (None)."""
    if given:
        if not Path(given).expanduser().is_file():
            raise SpecError(f"kubeconfig {given} does not exist: pass the outer cluster's kubeconfig to --kubeconfig")
        return str(Path(given).expanduser())
    env = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    for candidate in (env, str(Path.home() / ".kube" / "config")):
        if candidate and Path(candidate).is_file():
            return candidate
    if not Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists():
        raise SpecError("no kubeconfig for the outer cluster: pass --kubeconfig FILE")
    return None


def _names(opts: Options, prefix: str) -> dict[str, str]:
    """Partition -> node name, with --node-name PARTITION=NAME overrides."""
    names = {p: node_name(prefix, p) for p in opts.partitions}
    for item in opts.node_names:
        part, sep, name = item.partition("=")
        if not sep or part not in names or not naming.KIND_NAME.match(name):
            raise SpecError(f"bad --node-name {item!r}: write PARTITION=NAME for a --partition, NAME lowercase letters, "
                            f"digits, '.' and '-'")
        names[part] = name
    if len(set(names.values())) != len(names):
        raise SpecError("two partitions would share one node name: give each its own --node-name")
    return names


def run(opts: Options) -> int:
    logging.basicConfig(format="[kindslurm bridge %(asctime)s] %(message)s", datefmt="%H:%M:%S", stream=sys.stderr,
                        level=logging.DEBUG if opts.verbose else logging.INFO)
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retries are summed up in our own one line
    cfg = config.load()
    if api.is_remote():
        raise SpecError("kindslurm bridge runs where Slurm's commands and the job directories are (a login node): "
                        "start it there, without --host or remote.host")
    bcfg = bridge_config.load(cfg.bridge)
    if not opts.partitions:
        raise SpecError("no partition to serve: give --partition NAME (repeatable)")
    if not 0 < opts.port < 65536:
        raise SpecError(f"bad --port {opts.port}: use 1 to 65535")
    names = _names(opts, bcfg.node_prefix)
    kubeconfig = _kubeconfig(opts.kubeconfig)
    transport = api.get_transport()
    scheduler = api.get_scheduler(cfg)

    def discover() -> dict[str, sinfo.Partition]:
        return sinfo.partitions(transport, cfg.tool("sinfo"))

    found = discover()
    missing = [p for p in opts.partitions if p not in found]
    if missing:
        raise SpecError(f"unknown partition {missing[0]!r}: use one of {', '.join(sorted(found)) or '(none)'} (see sinfo)")
    address = opts.address or node_address()
    outer = Outer(kubeconfig)
    try:
        outer.node(next(iter(names.values())))
    except OuterAPIError as e:
        raise BridgeError(f"{e}: check --kubeconfig and that the outer cluster is up") from None
    client_ca = Path(opts.client_ca).read_text() if opts.client_ca else certs.outer_ca(kubeconfig)
    if opts.tls_cert and opts.tls_key:
        cert, key = Path(opts.tls_cert), Path(opts.tls_key)
    elif opts.tls_cert or opts.tls_key:
        raise SpecError("give both --tls-cert-file and --tls-key-file, or neither (a self-signed pair is made)")
    else:
        cert, key = certs.self_signed(address, paths.ensure_private_dir(paths.state_dir() / "bridge" / "pki"))
    ctx = certs.server_context(cert, key, client_ca)
    holder = identity()
    nodes = {name: NodeCtx(NodeView(name, part, address, opts.port, bcfg.max_pods),
                           Lease(outer, name, holder, bcfg.lease_seconds), found[part]) for part, name in names.items()}
    controller = Controller(outer, Runs(scheduler, naming.current_user()), scheduler, nodes, bcfg, str(cfg.time))
    server = Server(Endpoint(outer, controller, InnerAPIs()), opts.bind_address or address, opts.port, ctx)
    server.start()
    server.ready.wait(30)
    if server.error is not None:
        raise BridgeError(f"cannot serve the kubelet endpoint on {opts.bind_address or address}:{opts.port} "
                          f"({server.error}): choose another --port or --bind-address")
    stop = threading.Event()
    watchers: dict[str, Watcher] = {}

    def acquired(name: str) -> None:
        if name not in watchers:
            watchers[name] = Watcher(outer, name, controller.synced, controller.seen, stop)
            watchers[name].start()

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal %d: stopping (the pods' jobs go on)", signum)
        stop.set()
        controller.wake.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    heartbeat = Heartbeat(outer, nodes, discover, bcfg.lease_seconds, bcfg.rediscover_seconds, stop, acquired)
    heartbeat.beat()
    heartbeat.start()
    log.info("serving %s on https://%s:%d as %s", ", ".join(f"{n} (partition {p})" for p, n in names.items()),
             address, opts.port, holder)
    swept = 0.0
    try:
        while not stop.is_set():
            if all(w.synced.is_set() for w in watchers.values()) and watchers and \
                    time.monotonic() - swept >= bcfg.rediscover_seconds:
                swept = time.monotonic()
                controller.sweep_orphans()
            controller.poll()
            controller.wake.wait(timeout=bcfg.poll_seconds)
            controller.wake.clear()
    finally:
        heartbeat.stop_nodes()
        server.stop()
    return 0
