"""The last step of an interactive cluster (`kindslurm up`): once every node is
Ready, say so in the run's record (phase `held`, with the job's end) and hold
the allocation until `kindslurm down` (completed, 0), the time-limit warning
(74) or scancel (143). The lifecycle tears the cluster down on each, as for
any run.

The kubeconfig handed out is the cluster's own (0600 in the user's state
directory, named in the record): the cluster's deletion, gc and the Epilog
already remove it, so no copy can outlive the cluster.
"""

from __future__ import annotations

import signal
import socket
import time
from typing import TYPE_CHECKING, Any

from kindslurm import proc, records
from kindslurm.errors import KindslurmError
from kindslurm.node import allocation
from kindslurm.node.steps import Decided, Step
from kindslurm.phases import Phase

if TYPE_CHECKING:
    from kindslurm.node.lifecycle import Lifecycle

READY_TIMEOUT = 300.0
POLL = 1.0
DOWN_REASON = "taken down with `kindslurm down`"


def api_server_sans(kind_config: str, names: list[str]) -> str:
    """The kind config with a kubeadm patch that adds `names` to the API
    server certificate beside kind's own localhost and 127.0.0.1 (the list is
    replaced by the patch, so those are repeated): TLS stays verified when the
    cluster is reached by the node's name or through a tunnel's 127.0.0.1."""
    import yaml

    doc = yaml.safe_load(kind_config)
    sans = list(dict.fromkeys(["localhost", "127.0.0.1", *names]))
    patch = yaml.safe_dump({"kind": "ClusterConfiguration", "apiServer": {"certSANs": sans}}, sort_keys=False)
    doc["kubeadmConfigPatches"] = [*(doc.get("kubeadmConfigPatches") or []), patch]
    return yaml.safe_dump(doc, sort_keys=False)


def node_names() -> list[str]:
    host = socket.gethostname()
    return list(dict.fromkeys([host, host.split(".")[0], socket.getfqdn()]))


def _ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))


def wait_nodes_ready(core: Any, count: int, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        try:
            nodes = core.list_node(_request_timeout=10).items
            seen = ", ".join(f"{n.metadata.name} {'Ready' if _ready(n) else 'NotReady'}" for n in nodes)
            if len(nodes) >= count and all(_ready(n) for n in nodes):
                return
        except Exception as e:
            seen = str(e).splitlines()[0][:200]
        time.sleep(POLL)
    raise KindslurmError(f"the cluster's nodes were not all Ready within {timeout:.0f}s ({seen or 'no nodes'})")


def job_end(squeue: str, job_id: str, started: float, time_seconds: int) -> float:
    """When Slurm ends the job: SLURM_JOB_END_TIME where Slurm sets it (22.05
    does not), else squeue's end time (%e), else start plus the time limit."""
    if end := allocation.end_time():
        return float(end)
    try:
        res = proc.run([squeue, "-h", "-j", job_id, "-o", "%e"], check=False, timeout=15)
        return time.mktime(time.strptime(res.stdout.strip(), "%Y-%m-%dT%H:%M:%S"))
    except (KindslurmError, ValueError):
        return started + time_seconds


class HoldCluster(Step["Lifecycle"]):
    phase = Phase.STARTING

    def wanted(self, lc: Lifecycle) -> bool:
        return lc.spec.hold

    def do(self, lc: Lifecycle) -> None:
        assert lc.kube is not None
        nodes = 1 + lc.spec.workers
        lc.say(f"waiting for {nodes} node{'s' if nodes > 1 else ''} to be Ready")
        wait_nodes_ready(lc.kube.core, nodes)
        ends = job_end(lc.spec.tool("squeue"), lc.alloc.job_id, time.time(), lc.spec.time_seconds) \
            if lc.alloc else time.time() + lc.spec.time_seconds
        lc.best_effort("update the run's state record", lambda: records.update(lc.spec.run_id, ends=ends))
        lc.runner.enter(Phase.HELD)
        lc.say(f"cluster {lc.cluster} is Ready and held until {time.strftime('%H:%M', time.localtime(ends))}: "
               f"KUBECONFIG={lc.kubeconfig} on {socket.gethostname()}, `kindslurm kubeconfig {lc.spec.prefix}` "
               f"elsewhere; `kindslurm down {lc.spec.prefix}` ends it")
        from kindslurm.node.lifecycle import Interrupt

        try:
            while not lc.paths.down_request.exists():
                time.sleep(POLL)
        except Interrupt as e:
            if e.signum != signal.SIGTERM or not lc.paths.down_request.exists():
                raise
        lc.say("down requested: tearing down")
        lc.result = (0, Phase.COMPLETED, DOWN_REASON)
        raise Decided
