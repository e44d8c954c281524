"""logs -f, exec, attach and port-forward through the outer API server, the bridge's kubelet endpoint
and the pod's own inner API server (reached on the compute node's non-loopback address), with real
kubectl. All on the session's long-running `server` pod (scene.py)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
import urllib.request
from typing import Iterator

import pytest

from tests.bridge.controlplane import free_port
from tests.bridge.harness import Outer, wait
from tests.bridge.scene import Scene


@pytest.fixture(scope="module")
def server(scene: Scene) -> Iterator[Outer]:
    wait("server Running", lambda: scene.outer.phase("server") == "Running", 300)
    yield scene.outer


def kubectl(outer: Outer, *args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(["kubectl", f"--kubeconfig={outer.cp.admin}", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.PIPE, text=True, **kw)  # type: ignore[call-overload]


def ticks(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"^tick (\d+)$", text, re.M)]


def test_logs_follow_streams_while_the_pod_runs(server: Outer) -> None:
    before = max(ticks(server.kubectl("logs", "server", "-c", "main").stdout), default=0)
    follow = kubectl(server, "logs", "-f", "server", "-c", "main")
    try:
        assert follow.stdout is not None
        seen: list[int] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not [n for n in seen if n > before + 2]:
            line = follow.stdout.readline()
            seen += ticks(line)
        assert [n for n in seen if n > before + 2], f"no live lines past tick {before}: {seen[-5:]}"
    finally:
        follow.kill()
        follow.wait(timeout=10)


def test_log_options_reach_the_running_container(server: Outer) -> None:
    assert len(server.kubectl("logs", "server", "-c", "main", "--tail=2").stdout.splitlines()) == 2
    stamped = server.kubectl("logs", "server", "-c", "main", "--tail=1", "--timestamps").stdout
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z tick \d+$", stamped.strip()), stamped
    assert server.kubectl("logs", "server", "-c", "main", "--limit-bytes=4").stdout == "env "
    recent = ticks(server.kubectl("logs", "server", "-c", "main", "--since=3s").stdout)
    assert recent and len(recent) <= 5


def test_exec_runs_a_command_and_returns_its_output_and_exit_code(server: Outer) -> None:
    res = server.kubectl("exec", "server", "-c", "main", "--", "sh", "-c", "cat /cfg/MODE; echo to-stderr >&2; exit 3",
                         check=False)
    assert (res.returncode, res.stdout) == (3, "fast")
    assert "to-stderr" in res.stderr
    ok = server.kubectl("exec", "server", "-c", "main", "--", "hostname")
    assert ok.returncode == 0 and ok.stdout.strip() == "server"


def test_exec_passes_stdin_and_its_end(server: Outer) -> None:
    res = server.kubectl("exec", "-i", "server", "-c", "main", "--", "sh", "-c", "wc -l; cat /nonexistent 2>&1 || true",
                         input="one\ntwo\nthree\n")
    assert res.stdout.split("\n")[0].strip() == "3"


# The first size races the command's start (kubectl sends it once, the runtime may drop it before the process
# exists: the same happens on any node), so the terminal is resized while the command runs, and the command
# reports the first size it sees that is neither the start's nor empty.
STTY = "i=0; while [ $i -lt 300 ]; do s=$(stty size 2>/dev/null); case \"$s\" in ''|'0 0'|'20 60') ;; *) break;; " \
       "esac; i=$((i+1)); echo waiting; sleep 0.2; done; echo \"size=$s\"; exit 7"


def test_exec_with_a_terminal_follows_its_size(server: Outer) -> None:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 20, 60, 0, 0))
    proc = subprocess.Popen(["kubectl", f"--kubeconfig={server.cp.admin}", "exec", "-it", "server", "-c", "main",
                             "--", "sh", "-c", STTY], stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    out = b""
    sizes = [(33, 101), (34, 102)]
    resizes = 0
    last = 0.0
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            if b"waiting" in out and time.monotonic() - last > 1.5:  # the command runs: resize it (SIGWINCH)
                rows, cols = sizes[resizes % 2]
                fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                proc.send_signal(signal.SIGWINCH)
                resizes, last = resizes + 1, time.monotonic()
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                out += os.read(master, 4096)
            elif proc.poll() is not None:
                break  # kubectl is gone and everything it wrote was read
        assert proc.wait(timeout=30) == 7
    finally:
        proc.kill()
        os.close(master)
        os.close(slave)
    assert resizes and re.search(rb"size=(33 101|34 102)", out), out


def test_attach_reaches_a_containers_stdin_and_stdout(server: Outer) -> None:
    attach = kubectl(server, "attach", "-i", "server", "-c", "echo")
    try:
        assert attach.stdin is not None and attach.stdout is not None
        token = f"ping-{time.time_ns()}"
        got = ""
        deadline = time.monotonic() + 60
        while token not in got and time.monotonic() < deadline:
            attach.stdin.write(token + "\n")  # until the attachment is up, lines may go nowhere: resend
            attach.stdin.flush()
            ready, _, _ = select.select([attach.stdout], [], [], 2)
            if ready:
                got += os.read(attach.stdout.fileno(), 4096).decode(errors="replace")
        assert token in got, got
    finally:
        attach.kill()
        attach.wait(timeout=10)


def test_port_forward_reaches_a_port_the_pod_serves(server: Outer) -> None:
    port = free_port()
    forward = kubectl(server, "port-forward", "pod/server", f"{port}:8080")
    try:
        body = wait("a page through the forwarded port", lambda: _get(f"http://127.0.0.1:{port}/"), 60)
        assert body == "served by server\n"
        assert _get(f"http://127.0.0.1:{port}/") == body  # a second connection on the same forward
    finally:
        forward.kill()
        forward.wait(timeout=10)


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()
    except OSError:
        return ""


def test_the_old_websocket_protocol_is_relayed_too(server: Outer) -> None:
    from kubernetes import client, config
    from kubernetes.stream import stream

    api = client.CoreV1Api(config.new_client_from_config(config_file=str(server.cp.admin)))
    out = stream(api.connect_get_namespaced_pod_exec, "server", "default", container="main",
                 command=["sh", "-c", "echo over-websocket; cat /sec/password"], stderr=True, stdin=False, stdout=True,
                 tty=False)
    assert out == "over-websocket\ns3cret"
