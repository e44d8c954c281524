"""Saving what a run's cluster knows before it is deleted: every container's
log and the events, with the final lines of pods stopped at the time limit.

Each step works within the budget teardown gives it; a log the API can no
longer serve (its container is gone) is read from the kubelet's files in the
node while the node still exists.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from kindslurm.paths import JobPaths


def collect(kube: Any, provider: Any, cluster: str, job: JobPaths, budget: Callable[[], float],
            say: Callable[[str], None]) -> None:
    left = budget()
    if left < 1.0:
        say("warning: no time left to collect logs before the cluster must go")
        return
    t0 = time.monotonic()
    try:
        n = kube.save_pod_logs(job.pod_logs, timeout=left * 0.8)
        e = kube.save_events(job.events, timeout=max(1.0, left - (time.monotonic() - t0)))
        say(f"saved {n} container log(s) and {e} event(s) to {job.root}")
    except Exception as e:
        say(f"warning: log collection failed: {e}")
    logs_from_nodes(kube, provider, cluster, budget)


def logs_from_nodes(kube: Any, provider: Any, cluster: str, budget: Callable[[], float]) -> None:
    """Logs the API could not serve, from the kubelet's files, while the nodes still exist."""
    reader = getattr(provider, "node_pod_log", None)
    if reader is None:
        return
    for path in sorted(kube.unreadable):
        if budget() < 1.0:
            return
        container, pod, ns = path.stem, path.parent.name, path.parent.parent.name
        try:
            text = reader(cluster, ns, pod, container, timeout=min(10.0, budget()))
        except Exception:
            continue
        if text:
            path.write_text(text)
            kube.unreadable.discard(path)


def terminate(kube: Any, job: JobPaths, budget: float, say: Callable[[str], None]) -> None:
    """Time limit: delete workload pods with their grace, their logs streamed meanwhile."""
    try:
        stopped = kube.terminate_workload(job.pod_logs, budget)
        if stopped:
            say(f"stopped {len(stopped)} workload pod(s) with their termination grace")
    except Exception as e:
        say(f"warning: stopping workload pods failed: {e}")
