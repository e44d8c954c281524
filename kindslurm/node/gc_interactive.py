"""What an interactive cluster leaves besides the cluster and its kubeconfig
(which gc removes as for every run): the tunnels to it, a process, a state
file, a kubeconfig and a log per tunnel and host.

A held cluster is live while its job runs (the collector's rule for every
run); once it is not, these go with it. A tunnel's process is stopped only
on the host it runs on; a tunnel from a laptop (via SSH) belongs to a run
whose record is on the login node, so here it goes only once its process
is gone.
"""

from __future__ import annotations

import functools
import json
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kindslurm import paths, proc, records

if TYPE_CHECKING:
    from kindslurm.node.gc import Collector, Step
    from kindslurm.node.gc import Action


def _stop_tunnel(state: Path, pid: int | None, start: str | None) -> list[str]:
    if pid and proc.alive(pid, start):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    stem = state.name[: -len(".json")]
    for suffix in ("json", "yaml", "log"):
        (state.parent / f"{stem}.{suffix}").unlink(missing_ok=True)
    return []


def plan(gc: Collector, recs: list[records.Record]) -> list[tuple[Action, Step]]:
    from kindslurm.node.gc import Action

    out: list[tuple[Action, Step]] = []
    tdir = paths.tunnels_dir()
    if gc.job is not None or not tdir.is_dir():
        return out  # the Epilog runs on the compute node; tunnels live where their users are
    by_run = {r.run_id: r for r in recs}
    for state in sorted(tdir.glob("*.json")):
        try:
            data: dict[str, Any] = json.loads(paths.read_private(state))
        except (OSError, ValueError):
            data = {}
        pid, start, host = data.get("pid"), data.get("pid_start"), data.get("host")
        here = host == gc.host
        running = here and isinstance(pid, int) and proc.alive(pid, start)
        owner = by_run.get(str(data.get("run_id")))
        if str(data.get("via", "")).startswith("ssh:"):
            if running or not here:
                continue  # its run's record is on the login node: only its own end tells
            why = "its process is gone"
        else:
            live, why = gc._record_live(owner) if owner is not None else (False, "its run is gone")
            if live and (running or not here):
                continue
            why = why if not live else "its process is gone"
        out.append((Action("tunnel", state.name[: -len(".json")], why),
                    functools.partial(_stop_tunnel, state, pid if running else None, start)))
    return out
