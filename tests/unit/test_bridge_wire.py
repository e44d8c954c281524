"""SPDY/3.1 framing, the sinfo reading behind the virtual nodes, the Node object, the streaming paths."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest

from kindslurm.bridge import spdy, streaming
from kindslurm.bridge.nodes import NodeView, max_time_label, node_name
from kindslurm.scheduler import sinfo


def test_the_dictionary_is_spdy3s() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert hashlib.sha1(spdy.DICTIONARY).hexdigest() == "d68ca9b208de9c3754703445a22cf668a5abebb3"
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2  # the DICTID a SPDY/3 zlib stream names


def test_frames_survive_a_byte_stream_cut_anywhere() -> None:
    send = spdy.HeaderCodec()
    frames = [spdy.Frame(spdy.SYN_STREAM, stream=1, priority=3, headers={"streamtype": ["error"]}),
              spdy.Frame(spdy.SYN_STREAM, stream=3, headers={"streamtype": ["data"], "port": ["8080"],
                                                             "requestid": ["0"]}),
              spdy.Frame(0, stream=3, data=b"payload", flags=spdy.FLAG_FIN),
              spdy.Frame(spdy.PING, ping_id=5), spdy.Frame(spdy.RST_STREAM, stream=1, status=spdy.RST_CANCEL),
              spdy.Frame(spdy.GOAWAY, stream=3, status=0)]
    wire = b"".join(spdy.encode(f, send) for f in frames)
    for cut in (1, 7, 8, 13, 29, len(wire) - 1):
        reader = spdy.FrameReader(spdy.HeaderCodec())
        got = reader.feed(wire[:cut]) + reader.feed(wire[cut:])
        assert [(f.kind, f.stream, f.headers, f.data, f.ping_id, f.status, f.fin) for f in got] == \
               [(f.kind, f.stream, f.headers, f.data, f.ping_id, f.status, f.fin) for f in frames]
    assert got[0].priority == 3


def test_header_blocks_share_one_zlib_context_per_direction() -> None:
    send, recv = spdy.HeaderCodec(), spdy.FrameReader(spdy.HeaderCodec())
    for i in range(5):  # later blocks refer back to earlier ones: a fresh context could not read them
        frame = spdy.Frame(spdy.SYN_REPLY, stream=2 * i + 1, headers={"streamtype": ["stdout"]})
        assert recv.feed(spdy.encode(frame, send))[0].headers == {"streamtype": ["stdout"]}


def test_multiple_values_are_nul_separated() -> None:
    send, recv = spdy.HeaderCodec(), spdy.FrameReader(spdy.HeaderCodec())
    frame = spdy.Frame(spdy.HEADERS, stream=1, headers={"x-stream-protocol-version": ["v4.channel.k8s.io", "v3"]})
    assert recv.feed(spdy.encode(frame, send))[0].headers == frame.headers


def test_data_frame_layout_is_spdy3() -> None:
    raw = spdy.encode(spdy.Frame(0, stream=5, flags=spdy.FLAG_FIN, data=b"abc"), spdy.HeaderCodec())
    assert raw == struct.pack(">II", 5, (1 << 24) | 3) + b"abc"
    ping = spdy.encode(spdy.Frame(spdy.PING, ping_id=9), spdy.HeaderCodec())
    assert ping == struct.pack(">HHII", 0x8003, spdy.PING, 4, 9)


def test_another_version_is_a_protocol_error() -> None:
    with pytest.raises(spdy.ProtocolError):
        spdy.FrameReader(spdy.HeaderCodec()).feed(struct.pack(">HHII", 0x8002, spdy.PING, 4, 1))


def test_kubelet_paths_become_the_inner_api_servers() -> None:
    query = [("command", "sh"), ("command", "-c"), ("command", "echo a&b"), ("input", "1"), ("output", "1"),
             ("tty", "0")]

    class Multi(list):
        def items(self):  # like aiohttp's MultiDict
            return iter(self)

    path = streaming.inner_path("exec", "ns", "p", "main", Multi(query))
    assert path == ("/api/v1/namespaces/ns/pods/p/exec?container=main&command=sh&command=-c&command=echo+a%26b"
                    "&stdin=true&stdout=true")
    assert streaming.inner_path("portForward", "ns", "p", None, Multi([("port", "80")])) == \
        "/api/v1/namespaces/ns/pods/p/portforward?ports=80"


SINFO = """\
debug*|n1|16|64000|(null)|(null)|infinite|idle|up
debug*|n2|16|64000|(null)|ssd,fast|infinite|drained|up
gpu|g1|32|256000|gpu:a100:4(S:0-1)|a100|2-00:00:00|mixed|up
gpu|g2|32|256000|gpu:a100:2,gpu:v100:1|a100|2-00:00:00|down*|up
old|o1|8|1000|(null)|(null)|1:00:00|idle|down
"""


def test_sinfo_gives_each_partition_its_usable_capacity() -> None:
    parts = sinfo.parse(SINFO)
    assert sorted(parts) == ["debug", "gpu", "old"]
    assert (parts["debug"].cpus, parts["debug"].mem_mb, parts["debug"].features) == (16, 64000, ["fast", "ssd"])
    assert (parts["gpu"].gpus, parts["gpu"].largest) == (4, (32, 256000, 4))
    assert [n.gpus for n in parts["gpu"].nodes] == [4, 3]
    assert parts["debug"].ready and not parts["old"].ready and not parts["old"].up


def test_a_node_per_partition() -> None:
    parts = sinfo.parse(SINFO)
    view = NodeView(node_name("kindslurm-", "gpu"), "gpu", "10.0.0.5", 10250, 500)
    obj, status = view.object(parts["gpu"]), view.status(parts["gpu"])
    labels = obj["metadata"]["labels"]
    assert labels["type"] == "virtual-kubelet" and labels["kubernetes.io/role"] == "agent"
    assert labels["kindslurm.io/partition"] == "gpu" and labels["kindslurm.io/max-time-seconds"] == "172800"
    assert labels["feature.kindslurm.io/a100"] == "true" and labels["kindslurm.io/nodes"] == "2"
    assert obj["spec"]["taints"] == [{"key": "kindslurm.io/virtual-node", "value": "gpu", "effect": "NoSchedule"}]
    assert status["capacity"] == {"cpu": "32", "memory": "256000Mi", "pods": "500", "nvidia.com/gpu": "4"}
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert status["addresses"] == [{"type": "InternalIP", "address": "10.0.0.5"}]


@pytest.mark.parametrize("partition,reason", [(None, "PartitionNotFound"), ("old", "PartitionDown")])
def test_a_vanished_or_down_partition_is_not_ready(partition: str | None, reason: str) -> None:
    p = sinfo.parse(SINFO).get(partition) if partition else None
    status = NodeView("kindslurm-x", "x", "1.2.3.4", 1, 1).status(p)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert status["capacity"]["cpu"] == "0"


def test_names_and_labels_are_valid_for_kubernetes() -> None:
    assert node_name("kindslurm-", "GPU_a100") == "kindslurm-gpu-a100"
    assert max_time_label("infinite") == "infinite" and max_time_label("1-00:00:00") == "86400"
    assert sinfo.gpu_count("gpu:tesla:2(S:0),gpu:1,mps:100") == 3
