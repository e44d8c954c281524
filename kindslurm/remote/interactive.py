"""Interactive clusters from a laptop: `up` and `down` are the login node's
own (it keeps the records, the job directories and talks to Slurm), started
over SSH under a run id chosen here; `kubeconfig` and `tunnel` forward a port
of this host to the login node's tunnel, so kubectl here reaches the cluster
with TLS verified end to end."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any

from kindslurm import api, naming
from kindslurm.transport import where
from kindslurm.errors import CommandError, ConnectionLost
from kindslurm.interactive import clusters, reach, tunnel
from kindslurm.phases import Phase
from kindslurm.remote.run import FLAGS, recover, refused


def up(name: str | None, options: dict[str, Any], wait: bool, out: IO[str] = sys.stdout) -> int:
    """Paths among the options (--kind-config, --mount, ...) are the login node's."""
    run_id = naming.new_run_id()
    args = ["up", "--no-wait", "--run-id", run_id, *(["--name", name] if name else [])]
    for key, flag in FLAGS.items():
        value = options.get(key)
        for v in (value if isinstance(value, (list, tuple)) else [value]) if value not in (None, (), []) else []:
            args += [flag, str(v)]
    try:
        res = api.get_transport().run(where.remote_command(*args), timeout=180, retry=False)
        job_id = res.stdout.strip().splitlines()[-1]
    except CommandError as e:
        raise refused(e) from None
    except ConnectionLost:
        job_id = recover(run_id)
    if not wait:
        print(job_id, file=out, flush=True)
        return 0
    rec = api.get_records().load(run_id)
    prefix = rec.prefix if rec else (name or "")
    submitted = api.Submitted(job_id, run_id, f"{prefix}-{job_id}", rec.job_dir if rec else "")
    print(f"Submitted job {job_id} on {api.remote_info().host} (run {run_id}, cluster {submitted.cluster})",
          file=sys.stderr, flush=True)
    ready = clusters.wait_ready(submitted)
    print(clusters.usage(ready, " " + " ".join(where.host_args()) if where.host_args() else ""), end="", file=out, flush=True)
    return 0


def passthrough(*args: str) -> int:
    """The login node's own `kindslurm ARGS`, its output here as it comes (down, doctor, gc)."""
    from kindslurm.transport.ssh import SSHTransport

    transport = api.get_transport()
    assert isinstance(transport, SSHTransport)
    return transport.stream(where.remote_command(*args), sys.stdout, sys.stderr, retry=True)


def kubeconfig(ref: str, force_tunnel: bool) -> Path:
    rec = reach.held(ref)
    assert rec.cluster
    st = tunnel.live(rec.cluster) or tunnel.start_background(
        rec.cluster, [*reach.command(), *where.host_args(), "tunnel", rec.run_id, *(["--tunnel"] if force_tunnel else [])])
    return Path(st.kubeconfig)


def serve(ref: str, force_tunnel: bool, out: IO[str]) -> int:
    """Forward a port of this host to the login node's tunnel (or, on the
    cluster's own node, its API server) until the cluster ends."""
    rec = reach.held(ref)
    reach.refuse_second(rec)
    transport, host = api.get_transport(), api.remote_info().host
    res = transport.run(where.remote_command("kubeconfig", rec.run_id, *(["--tunnel"] if force_tunnel else [])),
                        timeout=90, retry=True)
    remote_kc = res.stdout.strip().splitlines()[-1]
    text = transport.read_text(remote_kc)
    _, port = transport.forward_port("127.0.0.1", tunnel.api_port(text))
    st = tunnel.publish(rec, port, text, f"ssh:{host}")
    print(f"tunnel to cluster {rec.cluster} through {host} at 127.0.0.1:{port}\nkubeconfig: {st.kubeconfig}",
          file=out, flush=True)
    source = api.get_records()

    def still_live() -> bool:
        cur = source.load(rec.run_id)
        return cur is not None and cur.phase == Phase.HELD

    return tunnel.hold_open(st, still_live, out, interval=5.0)
