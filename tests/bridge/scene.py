"""The pods every pod test shares: created at once, so their clusters boot side by side.

Pods that need a bridge killed have a bridge (and node) of their own, so no
test's pods depend on another test's doings; the long-running `server` pod
serves the streaming tests (logs -f, exec, attach, port-forward) as well.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.bridge.harness import TOLERATE, Bridge, Outer

BUSYBOX = "localhost/kindslurm/busybox:1"


def container(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", script], **extra}


SERVER_SCRIPT = """\
echo "env MODE=$MODE PASSWORD=$PASSWORD"
echo "files mode=$(cat /cfg/MODE) password=$(cat /sec/password)"
echo "downward uid=$POD_UID node=$NODE name=$POD_NAME"
mkdir -p /www && echo "served by $POD_NAME" > /www/index.html && httpd -p 8080 -h /www
i=0
while [ ! -f /tmp/stop ]; do i=$((i+1)); echo "tick $i"; sleep 1; done
echo "server done"
"""


@dataclass
class Scene:
    outer: Outer
    main: Bridge
    adopt: Bridge
    doomed: Bridge
    phases: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def record_phases(self) -> None:
        """(phase, container reason) of every pod as it changes, the way `kubectl get pod -w` shows them."""
        while not self.stop.is_set():
            res = self.outer.kubectl("get", "pods", "-o", "json", check=False)
            if res.returncode == 0:
                for p in json.loads(res.stdout).get("items") or []:
                    st = p.get("status") or {}
                    states = [cs.get("state") or {} for cs in st.get("containerStatuses") or []]
                    reason = next((s[k].get("reason", "") for s in states for k in ("waiting", "terminated") if k in s), "")
                    seen = self.phases.setdefault(p["metadata"]["name"], [])
                    if not seen or seen[-1] != (st.get("phase", ""), reason):
                        seen.append((st.get("phase", ""), reason))
            self.stop.wait(0.5)

    def pod_of_job(self, job: str) -> str:
        res = self.outer.kubectl("get", "pods", "-l", f"job-name={job}", "-o", "jsonpath={.items[0].metadata.name}")
        return res.stdout.strip()


def objects(scene: Scene) -> list[dict[str, Any]]:
    main, adopt, doomed = scene.main, scene.adopt, scene.doomed
    server = main.pod("server", [
        container("main", SERVER_SCRIPT, env=[
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            volumeMounts=[{"name": "cfg", "mountPath": "/cfg"}, {"name": "sec", "mountPath": "/sec"}]),
        {"name": "echo", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["cat"], "stdin": True}],
        volumes=[{"name": "cfg", "configMap": {"name": "settings"}}, {"name": "sec", "secret": {"secretName": "creds"}}])
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "batch-ok", "namespace": "default"},
           "spec": {"backoffLimit": 0, "template": {"spec": {
               "nodeSelector": {"kubernetes.io/hostname": main.node},
               "tolerations": TOLERATE,
               "restartPolicy": "Never",
               "containers": [container("work", "echo batch started; sleep 10; echo batch done")]}}}}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"MODE": "fast"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}},
        server, job,
        main.pod("held", [container("main", "true")], metadata={"annotations": {"kindslurm.io/sbatch-flags": "--hold"}}),
        main.pod("oversize", [container("main", "true", resources={"requests": {"cpu": "1000"}})]),
        main.pod("badflags", [container("main", "true")],
                 metadata={"annotations": {"kindslurm.io/sbatch-flags": "--time=5"}}),
        adopt.pod("fails", [container("main", "echo about to fail; exit 3")]),
        doomed.pod("doomed", [container("main", "trap 'echo got TERM; exit 0' TERM; echo doomed up; "
                                                "while true; do sleep 1; done")], terminationGracePeriodSeconds=20),
    ]
