"""`kindslurm node-pod NAMESPACE NAME`: the workload of a bridged pod's run.

It runs in the job as the workload script, once the pod's manifest has been
applied to the run's own cluster, and ends when the pod does, with its exit
code (the first non-zero container exit code, 1 for a failed pod without one).
Meanwhile it keeps the pod's files in the job directory for the bridge
(podfiles.py): the inner status at every change, every container's output with
the kubelet's timestamps, and where the inner API server can be reached from
another host. A delete request from the bridge becomes a delete of the inner
pod with the outer pod's grace period, so preStop hooks and SIGTERM run.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

import yaml
from kubernetes.client.rest import ApiException

from kindslurm.kube import Kube
from kindslurm.node.address import node_address
from kindslurm.podfiles import PodFiles, read_json, write_json

POLL = 1.0
GONE_AFTER = 30  # polls without the pod (and no delete asked): it was removed from inside


def api_port(kubeconfig: str) -> int:
    doc = yaml.safe_load(Path(kubeconfig).read_text())
    server = doc["clusters"][0]["cluster"]["server"]
    return int(urlparse(server).port or 443)


def exit_code(status: dict[str, Any]) -> int:
    codes = [((cs.get("state") or {}).get("terminated") or {}).get("exitCode")
             for cs in status.get("containerStatuses") or []]
    failed = [c for c in codes if c]
    if failed:
        return int(failed[0])
    return 1 if status.get("phase") == "Failed" else 0


class PodAgent:
    def __init__(self, kube: Kube, files: PodFiles, namespace: str, name: str, out: IO[str]) -> None:
        self.kube = kube
        self.files = files
        self.namespace = namespace
        self.name = name
        self.out = out
        self.followers: dict[tuple[str, int], threading.Thread] = {}
        self.deleting = False

    def say(self, message: str) -> None:
        print(f"[pod {self.namespace}/{self.name} {time.strftime('%H:%M:%S')}] {message}", file=self.out, flush=True)

    def run(self) -> int:
        last: Any = None
        missing = 0
        phase = ""
        while True:
            self._delete_if_asked()
            try:
                pod = self.kube.core.read_namespaced_pod(self.name, self.namespace, _request_timeout=10)
                missing = 0
            except ApiException as e:
                if e.status != 404:
                    time.sleep(POLL)
                    continue
                missing += 1
                if self.deleting or missing >= GONE_AFTER:
                    self.say("the pod is gone" + (" (deleted by the bridge)" if self.deleting else ""))
                    self._finish_logs()
                    return 143 if self.deleting else 1
                time.sleep(POLL)
                continue
            except Exception:  # the API server restarting or busy: the next poll tells
                time.sleep(POLL)
                continue
            status = self.kube.api.sanitize_for_serialization(pod.status) or {}
            if status != last:
                write_json(self.files.status, {"status": status, "node": socket.gethostname(), "time": time.time()})
                last = status
            if status.get("phase") != phase:
                phase = status.get("phase") or ""
                self.say(phase)
            self._follow(status)
            if phase in ("Succeeded", "Failed"):
                self._finish_logs()
                code = exit_code(status)
                self.say(f"ended {phase}: exit code {code}")
                return code
            time.sleep(POLL)

    def _delete_if_asked(self) -> None:
        if self.deleting:
            return
        req = read_json(self.files.delete_request)
        if req is None:
            return
        grace = int(req.get("grace", 30)) if isinstance(req, dict) else 30
        self.say(f"the outer pod was deleted: deleting this one with a {grace}s grace period")
        self.deleting = True
        try:
            self.kube.core.delete_namespaced_pod(self.name, self.namespace, grace_period_seconds=grace,
                                                 _request_timeout=10)
        except ApiException as e:
            if e.status != 404:
                self.say(f"warning: delete failed ({e.status} {e.reason}): the bridge will cancel the job")
        except Exception as e:
            self.say(f"warning: delete failed ({e}): the bridge will cancel the job")

    def _follow(self, status: dict[str, Any]) -> None:
        """One thread per container instance that has started, copying its output as it comes."""
        for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
            state = cs.get("state") or {}
            if not ("running" in state or "terminated" in state) or not cs.get("containerID"):
                continue
            key = (cs["name"], int(cs.get("restartCount") or 0))
            if key not in self.followers:
                t = threading.Thread(target=self._copy_log, args=key, daemon=True)
                self.followers[key] = t
                t.start()

    def _copy_log(self, container: str, restart: int) -> None:
        path = self.files.log(container, restart)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            resp: Any = self.kube.core.read_namespaced_pod_log(self.name, self.namespace, container=container, follow=True,
                                                          timestamps=True, _preload_content=False)
            with open(path, "ab") as f:
                for chunk in resp.stream(4096):
                    f.write(chunk)
                    f.flush()
        except Exception as e:  # the harvest at teardown still saves what the API has
            self.say(f"warning: could not follow the log of {container}: {e}")

    def _finish_logs(self, budget: float = 20.0) -> None:
        deadline = time.monotonic() + budget
        for t in self.followers.values():
            t.join(timeout=max(0.1, deadline - time.monotonic()))


def main(namespace: str, name: str) -> int:
    job_dir = os.environ.get("KINDSLURM_JOB_DIR")
    kubeconfig = os.environ.get("KUBECONFIG")
    if not job_dir or not kubeconfig:
        print("kindslurm node-pod runs inside a bridged pod's run (KINDSLURM_JOB_DIR and KUBECONFIG unset)",
              file=sys.stderr)
        return 64
    files = PodFiles.of(job_dir)
    write_json(files.endpoint, {"address": node_address(), "port": api_port(kubeconfig), "node": socket.gethostname()})
    return PodAgent(Kube(Path(kubeconfig)), files, namespace, name, sys.stdout).run()
