"""Pods bound to virtual nodes, each one real kindslurm run (its Slurm job, its kind cluster).

Every pod is created at once by the session's `scene` (scene.py), so their
clusters boot side by side; each test waits for its own pod's conditions.
Streaming (logs -f, exec, attach, port-forward) is in test_streaming.py.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.bridge.harness import TERMINAL_SLURM, Outer, jobs_with_comment, sh, slurm_state, wait
from tests.bridge.scene import Scene


def annotation(outer: Outer, pod: str, key: str) -> str:
    obj = outer.get("pod", pod) or {}
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(key, "")


def pod_status(outer: Outer, pod: str) -> dict[str, Any]:
    return ((outer.get("pod", pod) or {}).get("status") or {})


def test_a_pod_sees_its_configmap_secret_and_downward_values(scene: Scene) -> None:
    outer = scene.outer
    wait("server Running", lambda: outer.phase("server") == "Running", 300)
    uid = outer.get("pod", "server")["metadata"]["uid"]  # type: ignore[index]
    logs = wait("the server's first lines", lambda: (r := outer.kubectl("logs", "server", "-c", "main", check=False))
                .returncode == 0 and "downward" in r.stdout and r.stdout, 60)
    assert "env MODE=fast PASSWORD=s3cret" in logs
    assert "files mode=fast password=s3cret" in logs
    assert f"downward uid={uid} node={scene.main.node} name=server" in logs
    st = pod_status(outer, "server")
    assert [c["type"] for c in st["conditions"] if c["status"] == "True"].count("Ready") == 1
    assert {c["name"]: c["ready"] for c in st["containerStatuses"]} == {"main": True, "echo": True}
    record = scene.main.record(uid)
    assert record is not None and record["job_id"] == annotation(outer, "server", "kindslurm.io/job-id")
    endpoint = json.loads((Path(record["job_dir"]) / "pod" / "endpoint.json").read_text())
    assert not ipaddress.ip_address(endpoint["address"]).is_loopback  # the bridge reaches the node from outside
    assert st["hostIP"] == endpoint["address"]
    saved = Path(record["job_dir"]) / "inputs" / "manifests"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in saved.iterdir())  # the copied Secret is private


def test_a_job_on_the_virtual_node_completes_and_its_logs_stay(scene: Scene) -> None:
    outer = scene.outer
    wait("Job batch-ok complete", lambda: (j := outer.get("job", "batch-ok")) and any(
        c["type"] == "Complete" and c["status"] == "True" for c in (j.get("status") or {}).get("conditions") or []),
        360)
    pod = scene.pod_of_job("batch-ok")
    seen = scene.phases.get(pod, [])
    order = [p for p, _ in seen]
    assert order.index("Pending") < order.index("Running") < order.index("Succeeded"), seen
    assert ("Pending", "ContainerCreating") in seen, seen
    out = outer.kubectl("logs", "job/batch-ok").stdout
    assert out == "batch started\nbatch done\n"
    assert outer.kubectl("logs", pod, "--tail=1").stdout == "batch done\n"


def test_a_held_job_keeps_its_pod_pending_and_scancel_by_hand_fails_it(scene: Scene) -> None:
    outer = scene.outer
    msg = wait("held pod pending with Slurm's reason", lambda: "held by you" in
               (m := pod_status(outer, "held").get("message") or "") and m, 120)
    job = annotation(outer, "held", "kindslurm.io/job-id")
    assert job and f"Slurm job {job} is pending" in msg and outer.phase("held") == "Pending"
    assert sh(["scancel", job]).returncode == 0
    wait("held pod Failed", lambda: outer.phase("held") == "Failed", 120)
    st = pod_status(outer, "held")
    assert st["reason"] == "SlurmJobCancelled" and "cancelled outside Kubernetes" in st["message"]
    assert any(e["reason"] == "SlurmJobCancelled" and e["type"] == "Warning" for e in outer.events("held"))


def test_a_pod_larger_than_the_partition_stays_pending_unsubmitted(scene: Scene) -> None:
    outer = scene.outer
    cond = wait("the scheduler's word on the oversize pod", lambda: next(
        (c for c in pod_status(outer, "oversize").get("conditions") or [] if c["type"] == "PodScheduled"), None), 60)
    assert cond["status"] == "False" and "Insufficient cpu" in cond["message"]
    assert outer.phase("oversize") == "Pending" and annotation(outer, "oversize", "kindslurm.io/run-id") == ""
    uid = outer.get("pod", "oversize")["metadata"]["uid"]  # type: ignore[index]
    assert scene.main.record(uid) is None and jobs_with_comment(f"kindslurm-run:pod-{uid}") == []


def test_a_bad_annotation_fails_the_pod_with_the_fix_and_submits_nothing(scene: Scene) -> None:
    outer = scene.outer
    wait("badflags Failed", lambda: outer.phase("badflags") == "Failed", 60)
    st = pod_status(outer, "badflags")
    assert st["reason"] == "InvalidAnnotation"
    assert "'--time=5'" in st["message"] and "kindslurm.io/ annotations" in st["message"]
    uid = outer.get("pod", "badflags")["metadata"]["uid"]  # type: ignore[index]
    assert jobs_with_comment(f"kindslurm-run:pod-{uid}") == [] and scene.main.record(uid) is None
    assert any(e["reason"] == "InvalidAnnotation" for e in outer.events("badflags"))


def test_a_bridge_killed_right_after_sbatch_adopts_its_job_and_the_pod_fails_with_its_exit_code(scene: Scene) -> None:
    outer, bridge = scene.outer, scene.adopt
    assert bridge.proc is not None
    wait("the bridge killed right after sbatch", lambda: bridge.proc is not None and bridge.proc.poll() is not None, 120)
    assert bridge.proc.returncode == -signal.SIGKILL
    uid = outer.get("pod", "fails")["metadata"]["uid"]  # type: ignore[index]
    assert annotation(outer, "fails", "kindslurm.io/run-id") == f"pod-{uid}"
    assert annotation(outer, "fails", "kindslurm.io/job-id") == ""  # killed before it could note the job
    jobs = jobs_with_comment(f"kindslurm-run:pod-{uid}")
    assert len(jobs) == 1
    bridge.env.pop("KINDSLURM_BRIDGE_FAULT")
    bridge.start(wait_ready=False)
    bridge.wait_acting(timeout=120)  # once the dead bridge's lease has expired
    wait("the pod Failed", lambda: outer.phase("fails") == "Failed", 360)
    st = pod_status(outer, "fails")
    term = st["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"
    assert annotation(outer, "fails", "kindslurm.io/job-id") == jobs[0]
    assert jobs_with_comment(f"kindslurm-run:pod-{uid}") == jobs  # exactly one job, ever
    assert any(e["reason"] == "Adopted" for e in outer.events("fails"))
    assert outer.kubectl("logs", "fails").stdout == "about to fail\n"


def test_deleting_a_running_pod_stops_it_gracefully_and_the_object_goes_only_after_its_job(scene: Scene) -> None:
    outer, bridge = scene.outer, scene.doomed
    wait("doomed Running", lambda: outer.phase("doomed") == "Running", 300)
    uid = outer.get("pod", "doomed")["metadata"]["uid"]  # type: ignore[index]
    job = annotation(outer, "doomed", "kindslurm.io/job-id")
    record = bridge.record(uid)
    assert record is not None and job
    outer.kubectl("delete", "pod", "doomed", "--wait=false")
    bridge.kill(signal.SIGKILL)  # the deletion has to survive the bridge dying
    bridge.start(wait_ready=False)
    states = []
    deadline = time.monotonic() + 240
    while outer.get("pod", "doomed") is not None:
        states.append(slurm_state(job))
        assert time.monotonic() < deadline, f"pod still there; job states {states[-5:]}; {bridge.text()[-2000:]}"
        time.sleep(0.5)
    gone = slurm_state(job)
    assert gone in TERMINAL_SLURM, f"the pod object went while job {job} was {gone}"
    cluster = bridge.record(uid)["cluster"]  # type: ignore[index]
    saved = Path(record["job_dir"]) / "pod" / "logs" / "main.0.log"
    assert "got TERM" in saved.read_text()  # the inner pod was stopped with its grace period, not killed
    assert sh(["podman", "ps", "-a", "-q", "--filter", f"label=io.x-k8s.kind.cluster={cluster}"]).stdout == ""
    assert not Path(bridge.record(uid)["kubeconfig"]).exists()  # type: ignore[index]
    assert bridge.record(uid)["phase"] in ("completed", "failed", "cancelled")  # type: ignore[index]
    assert os.path.exists(record["job_dir"])  # the job directory stays, as for every run
