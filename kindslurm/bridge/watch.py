"""List, then watch, the pods bound to one node, for as long as the bridge runs.

The official client's list and watch calls, one thread per node (a field
selector names one node): a list gives the whole truth, the watch carries
changes from its resourceVersion, an expired version (410) or a dropped
connection means listing again. No periodic relisting of everything.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from kindslurm.bridge.outer import Outer
from kindslurm.errors import OuterAPIError

log = logging.getLogger("kindslurm.bridge")

OnEvent = Callable[[str, dict[str, Any]], None]
OnList = Callable[[str, list[dict[str, Any]]], None]


class Watcher(threading.Thread):
    def __init__(self, outer: Outer, node: str, on_list: OnList, on_event: OnEvent, stop: threading.Event,
                 seconds: int = 300) -> None:
        super().__init__(name=f"watch-{node}", daemon=True)
        self.outer = outer
        self.node = node
        self.on_list = on_list
        self.on_event = on_event
        self.stop_event = stop
        self.seconds = seconds
        self.synced = threading.Event()

    def run(self) -> None:
        backoff = 1.0
        while not self.stop_event.is_set():
            try:
                pods, version = self.outer.pods(self.node)
                self.on_list(self.node, pods)
                self.synced.set()
                backoff = 1.0
                while not self.stop_event.is_set():
                    version = self._watch(version)
                    if not version:
                        break  # expired: list again
            except OuterAPIError as e:
                log.warning("watching pods of %s: %s (again in %.0fs)", self.node, e, backoff)
                self.stop_event.wait(backoff)
                backoff = min(30.0, backoff * 2)
            except Exception:
                log.exception("watching pods of %s failed (again in %.0fs)", self.node, backoff)
                self.stop_event.wait(backoff)
                backoff = min(30.0, backoff * 2)

    def _watch(self, version: str) -> str:
        """One watch request; the version to go on from, or "" to list again."""
        for kind, obj in self.outer.watch_pods(self.node, version, self.seconds):
            if self.stop_event.is_set():
                return version
            if kind == "ERROR":
                log.info("pod watch of %s: %s", self.node, obj.get("message", "expired"))
                return ""
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self.on_event(kind, obj)
        return version
