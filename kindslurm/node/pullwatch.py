"""A pod stuck pulling gets one clear line in the job output, instead of a
silent wait until the time limit: compute nodes often reach no registry.

A thread looks at every pod every few seconds while the workload runs and
warns once per pod and image: on ErrImagePull / ImagePullBackOff, or when a
container is still being created, with no image yet, a minute after its pod
was made (a pull through a registry that never answers).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

PULL_FAILED = {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "RegistryUnavailable"}
SLOW_AFTER = 60.0
FIXES = ("set registry_mirrors in the site or your config (e.g. docker.io: http://HOST:5000); "
         "or have it in podman on the node (podman build/load: a --manifest naming it loads it); "
         "or podman save it and pass --load-image TAR")


@dataclass(frozen=True)
class Waiting:
    """One container not running yet, as the watcher needs it."""

    namespace: str
    pod: str
    image: str
    reason: str
    has_image: bool
    age: float  # seconds since the pod was made


def message(w: Waiting) -> str:
    why = w.reason if w.reason in PULL_FAILED else f"still {w.reason} after {w.age:.0f}s"
    return f"warning: pod {w.namespace}/{w.pod} cannot get image {w.image} ({why}): {FIXES}"


def stuck(waiting: Iterable[Waiting], seen: set[tuple[str, str, str]], slow_after: float = SLOW_AFTER) -> list[str]:
    """Lines for what is newly stuck; `seen` remembers what was said."""
    lines = []
    for w in waiting:
        key = (w.namespace, w.pod, w.image)
        if key in seen:
            continue
        slow = w.reason == "ContainerCreating" and not w.has_image and w.age >= slow_after
        if w.reason in PULL_FAILED or slow:
            seen.add(key)
            lines.append(message(w))
    return lines


def waiting_of(pod: Any, now: float) -> list[Waiting]:
    """The waiting containers of a V1Pod."""
    meta, status = pod.metadata, pod.status
    created = meta.creation_timestamp.timestamp() if meta and meta.creation_timestamp else now
    out = []
    for cs in [*((status and status.init_container_statuses) or []), *((status and status.container_statuses) or [])]:
        waiting = cs.state.waiting if cs.state else None
        if waiting is None:
            continue
        out.append(Waiting(meta.namespace, meta.name, cs.image, waiting.reason or "", bool(cs.image_id), now - created))
    return out


class PullWatcher:
    def __init__(self, core: Any, say: Callable[[str], None], interval: float = 3.0) -> None:
        self.core = core
        self.say = say
        self.interval = interval
        self.seen: set[tuple[str, str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pullwatch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def check_once(self) -> None:
        import time

        pods = self.core.list_pod_for_all_namespaces(_request_timeout=10).items
        now = time.time()
        for line in stuck((w for p in pods for w in waiting_of(p, now)), self.seen):
            self.say(line)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check_once()
            except Exception:
                pass  # the API restarting or gone at teardown: the next look tells
