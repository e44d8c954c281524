"""Virtual nodes: registered from sinfo, kept alive by a Lease, NotReady when the bridge stops or the
partition goes, and never served by two bridges at once. No cluster boots here."""

from __future__ import annotations

import datetime as dt
import json
import signal
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.bridge.harness import Bridge, Outer, sh, wait


def node(outer: Outer, name: str) -> dict[str, Any]:
    return json.loads(outer.kubectl("get", "node", name, "-o", "json").stdout)


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def lease_holder(outer: Outer, name: str) -> str:
    res = outer.kubectl("get", "lease", name, "-n", "kube-node-lease", "-o", "json", check=False)
    return json.loads(res.stdout)["spec"].get("holderIdentity") or "" if res.returncode == 0 else ""


def lease_renewed(outer: Outer, name: str) -> dt.datetime:
    spec = json.loads(outer.kubectl("get", "lease", name, "-n", "kube-node-lease", "-o", "json").stdout)["spec"]
    return dt.datetime.fromisoformat(spec["renewTime"].replace("Z", "+00:00"))


def sinfo_totals(partition: str) -> tuple[int, int]:
    cpus = mem = 0
    for line in sh(["sinfo", "-h", "-N", "-p", partition, "-o", "%c|%m"]).stdout.split():
        c, m = line.split("|")
        cpus, mem = cpus + int(c), mem + int(m)
    return cpus, mem


@pytest.fixture
def bridge(outer: Outer, tmp_path: Path) -> Iterator[Bridge]:
    b = Bridge(outer, tmp_path / "bridge")
    try:
        yield b.start()
    finally:
        b.cleanup()


def test_each_partition_is_a_ready_node_sized_by_sinfo(outer: Outer, bridge: Bridge) -> None:
    obj = node(outer, bridge.node)
    cpus, mem = sinfo_totals("debug")
    assert obj["status"]["capacity"]["cpu"] == str(cpus) and obj["status"]["capacity"]["memory"] == f"{mem}Mi"
    assert obj["status"]["allocatable"] == obj["status"]["capacity"]
    labels = obj["metadata"]["labels"]
    assert (labels["type"], labels["kubernetes.io/role"], labels["kindslurm.io/partition"]) == \
        ("virtual-kubelet", "agent", "debug")
    assert labels["kindslurm.io/max-time-seconds"] == "infinite"
    assert {"key": "kindslurm.io/virtual-node", "value": "debug", "effect": "NoSchedule"} in obj["spec"]["taints"]
    assert ready(obj)["status"] == "True"
    assert obj["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == bridge.port
    line = next(ln for ln in outer.kubectl("get", "nodes").stdout.splitlines() if ln.startswith(bridge.node))
    assert line.split()[1:3] == ["Ready", "agent"]
    assert lease_holder(outer, bridge.node).startswith("kindslurm-bridge/")


def test_a_killed_bridge_leaves_its_node_not_ready_once_the_lease_expires(outer: Outer, bridge: Bridge) -> None:
    renewed = json.loads(outer.kubectl("get", "lease", bridge.node, "-n", "kube-node-lease", "-o", "json").stdout)
    assert renewed["spec"]["leaseDurationSeconds"] == 12
    bridge.kill(signal.SIGKILL)
    assert ready(node(outer, bridge.node))["status"] == "True"  # nothing of the bridge could say otherwise
    wait("node NotReady after the lease expired", lambda: ready(node(outer, bridge.node))["status"] == "Unknown", 90)
    line = next(ln for ln in outer.kubectl("get", "nodes").stdout.splitlines() if ln.startswith(bridge.node))
    assert line.split()[1] == "NotReady"


def test_a_second_bridge_for_the_same_node_stands_aside_until_the_first_stops(outer: Outer, bridge: Bridge,
                                                                              tmp_path: Path) -> None:
    first = lease_holder(outer, bridge.node)
    second = Bridge(outer, tmp_path / "second")
    second.node = bridge.node
    try:
        second.start(wait_ready=False)
        wait("the second bridge noticing the first", lambda: "held by another bridge" in second.text(), 60)
        started = dt.datetime.now(dt.timezone.utc)
        # past a whole lease duration after the second started, the first one still renews it
        wait("the first bridge renewing past a lease duration",
             lambda: lease_renewed(outer, bridge.node) > started + dt.timedelta(seconds=13), 60)
        assert lease_holder(outer, bridge.node) == first
        assert f"node {bridge.node}: acting" not in second.text()
        bridge.stop()  # a clean stop frees the lease at once
        wait("the second bridge taking over", lambda: f"node {bridge.node}: acting" in second.text(), 60)
        assert lease_holder(outer, bridge.node) not in ("", first)
        wait("the node Ready again under the second bridge", lambda: ready(node(outer, bridge.node))["status"] == "True",
             30)
    finally:
        second.cleanup()


def test_a_vanished_partition_turns_its_node_not_ready(outer: Outer, tmp_path: Path) -> None:
    partition = f"ksvanish{uuid.uuid4().hex[:6]}"
    sh(["scontrol", "create", f"PartitionName={partition}", "Nodes=ALL", "State=UP", "MaxTime=30"], check=True)
    b = Bridge(outer, tmp_path / "vanish", partition=partition)
    try:
        b.start()
        obj = node(outer, b.node)
        assert ready(obj)["status"] == "True" and obj["metadata"]["labels"]["kindslurm.io/max-time-seconds"] == "1800"
        sh(["scontrol", "delete", f"PartitionName={partition}"], check=True)
        wait("node NotReady once its partition is gone",
             lambda: ready(node(outer, b.node))["reason"] == "PartitionNotFound", 60)
        assert ready(node(outer, b.node))["status"] == "False"
        assert node(outer, b.node)["status"]["capacity"]["cpu"] == "0"
    finally:
        b.cleanup()
        sh(["scontrol", "delete", f"PartitionName={partition}"])


def test_bad_input_is_one_line_and_registers_nothing(outer: Outer, tmp_path: Path) -> None:
    b = Bridge(outer, tmp_path / "bad")
    for args, words in ((["--partition", "no-such-partition"], "unknown partition 'no-such-partition'"),
                        (["--partition", "debug", "--node-name", "debug=Bad_Name"], "bad --node-name")):
        res = sh([sys.executable, "-m", "kindslurm", "bridge", "--kubeconfig", str(outer.bridge_kubeconfig), *args],
                 env=b.env, cwd=str(b.root))
        assert res.returncode == 64 and words in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert outer.kubectl("get", "node", "kindslurm-no-such-partition", check=False).returncode != 0
    b.config.write_text("bridge: {flavors: {small: {cpus: many}}}\n")
    res = sh([sys.executable, "-m", "kindslurm", "bridge", "--kubeconfig", str(outer.bridge_kubeconfig),
              "--partition", "debug"], env=b.env, cwd=str(b.root))
    assert res.returncode == 64 and "bridge.flavors" in res.stderr and res.stderr.count("\n") == 1
