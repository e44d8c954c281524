"""Reaching a held cluster's API server from where the user stands: on its
node the job's own kubeconfig works as it is; anywhere else a tunnel (see
tunnel.py) does, started on first use and reused after."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import IO

from kindslurm import api, config, records
from kindslurm.errors import KindslurmError, SpecError
from kindslurm.interactive import clusters, tunnel
from kindslurm.phases import Phase
from kindslurm.scheduler.base import StatesUnknown

JOB_CHECK_EVERY = 10.0


def held(ref: str) -> records.Record:
    """A live interactive cluster that is Ready (held); a one-line error naming what it is otherwise."""
    rec = clusters.resolve(ref)
    if not rec.interactive:
        raise SpecError(f"run {rec.run_id} is not an interactive cluster (`kindslurm up`): its kubeconfig "
                        f"is for its own workload")
    if rec.phase != Phase.HELD:
        what = f"ended ({rec.phase})" if not rec.live else f"not Ready yet ({rec.phase})"
        raise SpecError(f"cluster {rec.cluster or rec.prefix} is {what}: see `kindslurm status {rec.job_id or ref}`")
    return rec


def cluster_kubeconfig(rec: records.Record) -> Path:
    """The cluster's own kubeconfig (for use on its node): the record names it; the cluster's deletion removes it."""
    if not rec.kubeconfig:
        raise KindslurmError(f"run {rec.run_id}'s record names no kubeconfig: is the cluster up?")
    return Path(rec.kubeconfig)


def on_node(rec: records.Record) -> bool:
    return bool(rec.node) and str(rec.node).split(".")[0] == socket.gethostname().split(".")[0]


def command() -> list[str]:
    from kindslurm.scheduler import render

    return render.kindslurm_command(config.load().kindslurm_command)


def kubeconfig(ref: str, force_tunnel: bool = False) -> Path:
    rec = held(ref)
    if on_node(rec) and not force_tunnel:
        return cluster_kubeconfig(rec)
    assert rec.cluster
    st = tunnel.live(rec.cluster) or tunnel.start_background(rec.cluster, [*command(), "--no-remote", "tunnel",
                                                                           rec.run_id])
    return Path(st.kubeconfig)


def refuse_second(rec: records.Record) -> None:
    assert rec.cluster
    if (st := tunnel.live(rec.cluster)) is not None:
        raise SpecError(f"a tunnel to {rec.cluster} already runs here (pid {st.pid}, 127.0.0.1:{st.port}): "
                        f"use its kubeconfig {st.kubeconfig}, or stop it with `kill {st.pid}`")


def serve(ref: str, out: IO[str]) -> int:
    """The tunnel in the foreground, until the cluster ends or Ctrl-C."""
    rec = held(ref)
    refuse_second(rec)
    assert rec.job_id
    try:
        kc = cluster_kubeconfig(rec).read_text()
    except OSError as e:
        raise KindslurmError(f"cluster {rec.cluster}'s kubeconfig cannot be read ({e.strerror}): is it still up?") from None
    sched = api.get_scheduler()
    listener = tunnel.Listener(sched.overlap_argv(rec.job_id, [*command(), "node-relay", str(tunnel.api_port(kc))]))
    st = tunnel.publish(rec, listener.port, kc, "srun")
    print(f"tunnel to cluster {rec.cluster} (job {rec.job_id} on {rec.node}) at 127.0.0.1:{listener.port}\n"
          f"kubeconfig: {st.kubeconfig}", file=out, flush=True)
    checked = [0.0]

    def still_live() -> bool:
        cur = records.load(rec.run_id)
        if cur is None or cur.phase != Phase.HELD:
            return False
        import time

        if time.monotonic() - checked[0] > JOB_CHECK_EVERY:
            checked[0] = time.monotonic()
            try:
                js = sched.state(rec.job_id or "")
            except StatesUnknown:
                return True  # Slurm cannot be asked: that proves nothing
            return js is not None and js.active
        return True

    try:
        return tunnel.hold_open(st, still_live, out)
    finally:
        listener.close()
