"""Tunnels to an interactive cluster's API server, which listens on its
compute node's 127.0.0.1 only.

A tunnel is a listener on this host's 127.0.0.1 and a kubeconfig pointing at
it, with the cluster's own CA and credentials: the API server's certificate
names 127.0.0.1, so TLS stays verified end to end. On the login node every
connection runs `srun --jobid=JOB --overlap -- kindslurm node-relay PORT`
inside the cluster's own job, so it works where SSH to compute nodes is
refused; from a laptop, an SSH port forward reaches the login node's tunnel
(kindslurm.remote.tunnel). A tunnel ends with its cluster: when the run's
record ends or its job leaves Slurm. Its state file and kubeconfig live in
the user's state directory (0600), named after the cluster and this host,
so `kindslurm kubeconfig` reuses a live one and gc removes dead ones.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Callable, Sequence
from urllib.parse import urlsplit

from kindslurm import paths, proc, records
from kindslurm.errors import KindslurmError

CHECK_EVERY = 2.0
START_TIMEOUT = 30.0
BUFFER = 1 << 16


@dataclass
class TunnelState:
    cluster: str
    run_id: str
    job_id: str
    host: str  # where the tunnel listens
    pid: int
    pid_start: str | None
    port: int
    kubeconfig: str
    via: str  # "srun", or "ssh:<login node>"


def here() -> str:
    return socket.gethostname()


def _file(cluster: str, suffix: str) -> Path:
    return paths.tunnels_dir() / f"{cluster}@{here()}.{suffix}"


def state_file(cluster: str) -> Path:
    return _file(cluster, "json")


def log_file(cluster: str) -> Path:
    return _file(cluster, "log")


def read_state(path: Path) -> TunnelState | None:
    try:
        data = json.loads(paths.read_private(path))
        return TunnelState(**{k: data[k] for k in TunnelState.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live(cluster: str) -> TunnelState | None:
    """This host's running tunnel to `cluster` that accepts connections, if any."""
    st = read_state(state_file(cluster))
    if st is None or st.host != here() or not proc.alive(st.pid, st.pid_start):
        return None
    try:
        socket.create_connection(("127.0.0.1", st.port), timeout=2).close()
    except OSError:
        return None
    return st


def api_port(kubeconfig: str) -> int:
    """The API server's port on its node, from the job's kubeconfig."""
    import yaml

    try:
        server = yaml.safe_load(kubeconfig)["clusters"][0]["cluster"]["server"]
        port = urlsplit(server).port
    except (yaml.YAMLError, KeyError, IndexError, TypeError, ValueError):
        port = None
    if not port:
        raise KindslurmError("the cluster's kubeconfig names no API server port: is the cluster still up?")
    return port


def rewrite(kubeconfig: str, port: int) -> str:
    """The same kubeconfig (CA, credentials, context) with the server at this host's 127.0.0.1:`port`."""
    import yaml

    doc = yaml.safe_load(kubeconfig)
    for c in doc.get("clusters") or []:
        c["cluster"]["server"] = f"https://127.0.0.1:{port}"
    return yaml.safe_dump(doc, sort_keys=False)


def publish(rec: records.Record, port: int, kubeconfig: str, via: str) -> TunnelState:
    assert rec.cluster and rec.job_id
    kc = _file(rec.cluster, "yaml")
    paths.write_private(kc, rewrite(kubeconfig, port))
    st = TunnelState(rec.cluster, rec.run_id, rec.job_id, here(), os.getpid(), proc.start_time(os.getpid()), port,
                     str(kc), via)
    paths.write_private(state_file(rec.cluster), json.dumps(asdict(st)))
    return st


def withdraw(st: TunnelState) -> None:
    """Remove a tunnel's files, unless another tunnel has taken its place since."""
    cur = read_state(state_file(st.cluster))
    if cur is not None and (cur.pid, cur.host) != (st.pid, st.host):
        return
    for suffix in ("json", "yaml", "log"):
        _file(st.cluster, suffix).unlink(missing_ok=True)


def hold_open(st: TunnelState, still_live: Callable[[], bool], out: IO[str], interval: float = CHECK_EVERY) -> int:
    """Serve until the cluster ends or we are told to stop; the files go either way."""
    stop = threading.Event()
    old = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    code = 0
    try:
        while not stop.wait(interval):
            try:
                if not still_live():
                    print(f"cluster {st.cluster} has ended: tunnel closed", file=out, flush=True)
                    break
            except KindslurmError as e:
                print(f"kindslurm: error: {e}", file=out, flush=True)
                code = e.exit_code
                break
    finally:
        withdraw(st)
        for s, h in old.items():
            signal.signal(s, h)
    return code


def _bridge(conn: socket.socket, child: Any) -> None:
    """One connection through one relay process, both ways, until either side ends."""
    def upstream() -> None:
        try:
            while data := conn.recv(BUFFER):
                child.stdin.write(data)
        except OSError:
            pass
        finally:
            try:
                child.stdin.close()
            except OSError:
                pass

    threading.Thread(target=upstream, daemon=True).start()
    try:
        while data := child.stdout.read(BUFFER):
            conn.sendall(data)
    except OSError:
        pass
    finally:
        conn.close()
        proc.stop_group(child, grace=2.0)


class Listener:
    """127.0.0.1:<free port>; each connection gets `relay()`'s process."""

    def __init__(self, relay: Sequence[str]) -> None:
        self.relay = list(relay)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            try:
                child = proc.pipe(self.relay)
            except KindslurmError:
                conn.close()
                continue
            threading.Thread(target=_bridge, args=(conn, child), daemon=True).start()

    def close(self) -> None:
        self.sock.close()


def wait_started(cluster: str, child: Any, log: Path, timeout: float = START_TIMEOUT) -> TunnelState:
    """The background tunnel `child` once it listens; its log's last line if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = live(cluster)
        if st is not None and st.pid == child.pid:
            return st
        if child.poll() is not None:
            break
        time.sleep(0.2)
    try:
        tail = [line for line in log.read_text().splitlines() if line.strip()][-1:]
    except OSError:
        tail = []
    raise KindslurmError(f"the tunnel to {cluster} did not start ({tail[0] if tail else 'no output'}): "
                         f"see {log}, or run `kindslurm tunnel {cluster}` to watch it")


def start_background(cluster: str, argv: Sequence[str]) -> TunnelState:
    """Run `argv` (a `kindslurm tunnel`) detached from us and wait until it listens."""
    log = log_file(cluster)
    paths.ensure_private_dir(log.parent)
    return wait_started(cluster, proc.detach(argv, log), log)
