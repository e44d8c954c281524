"""What the outer pod's status says, from Slurm, the run's files and the inner pod; and the saved-log options."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kindslurm.bridge import logs
from kindslurm.bridge.status import Facts, pod_status, stamped
from kindslurm.scheduler.base import JobState

POD = {"metadata": {"name": "train"}, "spec": {"containers": [{"name": "main", "image": "registry/train:1"}],
                                               "initContainers": [{"name": "fetch", "image": "busybox"}]}}


def inner(phase: str, **state: Any) -> dict[str, Any]:
    return {"status": {"phase": phase, "startTime": "2030-01-01T00:00:00Z",
                       "conditions": [{"type": "PodScheduled", "status": "True"},
                                      {"type": "Ready", "status": "True", "lastTransitionTime": "2030-01-01T00:00:05Z",
                                       "lastProbeTime": None}],
                       "containerStatuses": [{"name": "main", "image": "docker.io/registry/train:1", "ready": True,
                                              "restartCount": 2, "containerID": "containerd://abc",
                                              "state": state or {"running": {"startedAt": "2030-01-01T00:00:01Z"}}}]}}


def main_state(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["containerStatuses"] if c["name"] == "main")["state"]


def test_a_pending_job_keeps_the_pod_pending_with_slurms_reason_in_words() -> None:
    s = pod_status(POD, Facts(job_id="7", job=JobState("7", "PENDING", "Priority")))
    assert s["phase"] == "Pending"
    assert s["message"] == "Slurm job 7 is pending: waiting behind higher-priority jobs (Priority)"
    assert main_state(s) == {"waiting": {"reason": "Pending", "message": s["message"]}}
    assert [c["name"] for c in s["initContainerStatuses"]] == ["fetch"]


def test_a_booting_cluster_shows_container_creating() -> None:
    s = pod_status(POD, Facts(job_id="7", job=JobState("7", "RUNNING"), phase="creating", node="n1"))
    assert main_state(s)["waiting"]["reason"] == "ContainerCreating"
    assert s["message"] == "Slurm job 7 runs on n1: booting the pod's cluster"


def test_the_inner_status_is_mirrored_under_the_outer_images() -> None:
    s = pod_status(POD, Facts(job_id="7", job=JobState("7", "RUNNING"), inner=inner("Running"), address="10.1.2.3"))
    assert s["phase"] == "Running" and s["startTime"] == "2030-01-01T00:00:00Z"
    cs = s["containerStatuses"][0]
    assert (cs["image"], cs["restartCount"], cs["ready"]) == ("registry/train:1", 2, True)
    assert [c["type"] for c in s["conditions"]] == ["Ready"] and "lastProbeTime" not in s["conditions"][0]
    assert s["hostIP"] == "10.1.2.3" and s["message"] is None and s["reason"] is None


def test_an_ended_pod_is_mirrored_with_its_exit_code() -> None:
    done = inner("Failed", terminated={"exitCode": 3, "reason": "Error"})
    s = pod_status(POD, Facts(job_id="7", job=JobState("7", "FAILED", exit_code=3), inner=done))
    assert s["phase"] == "Failed" and main_state(s)["terminated"]["exitCode"] == 3


@pytest.mark.parametrize("facts,reason,words", [
    (Facts(job_id="7", job=JobState("7", "CANCELLED by 0")), "SlurmJobCancelled", "cancelled outside Kubernetes"),
    (Facts(job_id="7", job=None, answered=True), "SlurmJobVanished", "gone from Slurm"),
    (Facts(job_id="7", job=JobState("7", "NODE_FAIL")), "NodeFailure", "failed with its node"),
    (Facts(job_id="7", job=JobState("7", "TIMEOUT"), summary={"status": "timeout", "exit_code": 74}),
     "DeadlineExceeded", "time limit"),
    (Facts(job_id="7", job=JobState("7", "FAILED"), summary={"status": "failed", "exit_code": 71,
                                                             "reason": "kind create cluster failed (exit 1)"}),
     "ClusterCreateFailed", "kind create cluster failed"),
])
def test_a_run_that_ends_before_its_pod_fails_it_with_a_reason(facts: Facts, reason: str, words: str) -> None:
    s = pod_status(POD, facts)
    assert s["phase"] == "Failed" and s["reason"] == reason and words in s["message"]
    assert all("terminated" in c["state"] for c in s["containerStatuses"] + s["initContainerStatuses"])


def test_a_failed_squeue_concludes_nothing() -> None:
    s = pod_status(POD, Facts(job_id="7", job=None, answered=False, phase="running", inner=inner("Running")))
    assert s["phase"] == "Running"


def test_a_refused_pod_fails_at_once() -> None:
    s = pod_status(POD, Facts(refused=("InvalidAnnotation", "unknown annotation kindslurm.io/x")))
    assert (s["phase"], s["reason"]) == ("Failed", "InvalidAnnotation")
    assert main_state(s)["terminated"]["reason"] == "InvalidAnnotation"


def test_unchanged_conditions_keep_their_time() -> None:
    old = {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2000-01-01T00:00:00Z"}]}
    new = stamped({"phase": "Failed", "conditions": [{"type": "Ready", "status": "False"},
                                                     {"type": "ContainersReady", "status": "False"}]}, old)
    assert new["conditions"][0]["lastTransitionTime"] == "2000-01-01T00:00:00Z"
    assert new["conditions"][1]["lastTransitionTime"] != "2000-01-01T00:00:00Z"


# -- saved logs -------------------------------------------------------------------
SAVED = (b"2030-01-01T00:00:00.000000001Z one\n2030-01-01T00:00:10.5Z two\n"
         b"2030-01-01T00:00:20.123456789Z three\n")


@pytest.mark.parametrize("query,out", [
    ({}, b"one\ntwo\nthree\n"),
    ({"timestamps": "true", "tailLines": "1"}, b"2030-01-01T00:00:20.123456789Z three\n"),
    ({"tailLines": "0"}, b""),
    ({"sinceTime": "2030-01-01T00:00:10Z"}, b"two\nthree\n"),
    ({"limitBytes": "6"}, b"one\ntw"),
    ({"tailLines": "2", "sinceTime": "2030-01-01T00:00:15Z"}, b"three\n"),
])
def test_saved_logs_take_the_kubelets_options(query: dict[str, str], out: bytes) -> None:
    assert logs.saved(SAVED, query) == out


def test_since_seconds_counts_back_from_now() -> None:
    now = dt.datetime(2030, 1, 1, 0, 0, 25, tzinfo=dt.timezone.utc)
    assert logs.saved(SAVED, {"sinceSeconds": "10"}, now=now) == b"three\n"


@pytest.mark.parametrize("query", [{"sinceSeconds": "1", "sinceTime": "2030-01-01T00:00:00Z"}, {"tailLines": "x"},
                                   {"limitBytes": "0"}, {"sinceTime": "yesterday"}])
def test_bad_log_options_are_refused(query: dict[str, str]) -> None:
    with pytest.raises(logs.BadOption):
        logs.saved(SAVED, query)


def test_previous_is_the_instance_before_the_last() -> None:
    from pathlib import Path

    instances = [(0, Path("a")), (1, Path("b"))]
    assert logs.pick(instances, previous=False) == Path("b")
    assert logs.pick(instances, previous=True) == Path("a")
    assert logs.pick(instances[:1], previous=True) is None


def test_the_pod_agent_exits_with_the_pods_code() -> None:
    from kindslurm.node.podagent import exit_code

    def status(phase: str, *codes: int | None) -> dict[str, Any]:
        return {"phase": phase, "containerStatuses": [
            {"state": {"terminated": {"exitCode": c}} if c is not None else {"running": {}}} for c in codes]}

    assert exit_code(status("Succeeded", 0, 0)) == 0
    assert exit_code(status("Failed", 0, 3, 4)) == 3
    assert exit_code(status("Failed")) == 1  # evicted, deadline exceeded: no container said


def test_a_client_certificate_names_the_user_and_groups() -> None:
    from kindslurm.bridge.endpoint import cert_user

    cert = {"subject": ((("organizationName", "system:masters"),), (("organizationName", "ops"),),
                        (("commonName", "kube-apiserver-kubelet-client"),))}
    assert cert_user(cert) == ("kube-apiserver-kubelet-client", ["system:masters", "ops"], None)
    assert cert_user(None) is None and cert_user({"subject": ()}) is None


def test_the_node_address_prefers_what_others_can_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    import ipaddress

    from kindslurm.node import address

    monkeypatch.setenv("KINDSLURM_NODE_ADDRESS", "10.9.8.7")
    assert address.node_address() == "10.9.8.7"
    monkeypatch.delenv("KINDSLURM_NODE_ADDRESS")
    monkeypatch.setattr(address.socket, "gethostname", lambda: "localhost")  # resolves to loopback: not it
    found = address.node_address()
    others = [ip for ip in address._interface_addresses() if not ipaddress.ip_address(ip).is_loopback]
    assert (found in others or not ipaddress.ip_address(found).is_loopback) if others else found == "127.0.0.1"
