"""SSHTransport against an SSH server in the test process: commands, files,
follow and port forwards, what a drop does to each, host keys and keys.
(Debian's OpenSSH is in tests/integration/test_ssh_transport.py.)"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import paramiko
import pytest

from kindslurm import exitcodes
from kindslurm.errors import (CommandError, CommandTimeout, ConnectionLost, HostKeyError, KindslurmError, SpecError,
                              SSHAuthError, Unreachable)
from kindslurm.transport.base import Transport
from kindslurm.transport.ssh import SSHTransport
from kindslurm.transport.sshtarget import Target, parse_host
from tests.unit.sshserver import SSHServer


@pytest.fixture
def server(tmp_path: Path):
    s = SSHServer(tmp_path)
    yield s
    s.close()


def connect(server: SSHServer, **kw) -> SSHTransport:
    opts = dict(user=server.user, port=server.port, key=server.key_file, known_hosts=server.known_hosts)
    opts.update(kw)
    return SSHTransport(Target("127.0.0.1", **opts), reconnect_for=10)  # type: ignore[arg-type]


@pytest.fixture
def t(server: SSHServer):
    tr = connect(server)
    yield tr
    tr.close()


def test_it_is_a_transport(t: SSHTransport) -> None:
    assert isinstance(t, Transport)


def test_every_argument_arrives_as_one_word(t: SSHTransport) -> None:
    words = ["a b", "it's", '"q"', "$HOME", "; rm -rf /", "*", "new\nline", "", "-n"]
    res = t.run(["printf", "%s|", *words])
    assert res.stdout == "".join(f"{w}|" for w in words)


def test_run_takes_input_and_maps_failures_as_proc_does(t: SSHTransport) -> None:
    res = t.run(["sh", "-c", "cat; echo err >&2; exit 3"], input="in\n", check=False)
    assert (res.returncode, res.stdout, res.stderr) == (3, "in\n", "err\n")
    with pytest.raises(CommandError):
        t.run(["sh", "-c", "exit 2"])
    with pytest.raises(CommandTimeout):
        t.run(["sleep", "5"], timeout=0.3)
    with pytest.raises(KindslurmError, match="not found on tester@127.0.0.1"):
        t.run(["/nonexistent/kindslurm-tool"])


def test_files_written_atomically_with_their_mode_first(t: SSHTransport, tmp_path: Path) -> None:
    path = str(tmp_path / "a.txt")
    t.write_text(path, "hello\n", mode=0o640)
    assert t.read_text(path) == "hello\n" and os.stat(path).st_mode & 0o777 == 0o640
    t.write_text(path, "again\n")
    assert Path(path).read_text() == "again\n" and os.stat(path).st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".a.txt")) == []
    assert t.read_from(path, 2) == b"ain\n" and t.read_from(str(tmp_path / "none"), 0) is None
    assert t.exists(path) and not t.exists(str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError):
        t.read_text(str(tmp_path / "none"))


def test_directories_trees_and_copies(t: SSHTransport, tmp_path: Path) -> None:
    root = tmp_path / "job"
    t.make_dirs(str(root / "pods" / "ns" / "pod"), 0o700)
    assert (root / "pods").stat().st_mode & 0o777 == 0o700
    (root / "pods" / "ns" / "pod" / "c.log").write_text("log\n")
    (root / "slurm.out").write_text("out\n")
    os.symlink("/etc/passwd", root / "link")
    local = tmp_path / "src.bin"
    local.write_bytes(bytes(range(256)) * 1000)
    t.put_file(str(local), str(root / "in.bin"), 0o600)
    assert (root / "in.bin").read_bytes() == local.read_bytes() and (root / "in.bin").stat().st_mode & 0o777 == 0o600
    tree = t.walk(str(root))
    assert [rel for rel, _, _ in tree] == ["in.bin", "pods/ns/pod/c.log", "slurm.out"]
    assert t.list_dir(str(root / "pods"), "*/*/*.log") == [str(root / "pods/ns/pod/c.log")]
    assert t.list_dir(str(root), "*.out") == [str(root / "slurm.out")] and t.list_dir(str(tmp_path / "none")) == []
    os.utime(root / "slurm.out", (1000000000, 1000000000))
    t.get_file(str(root / "slurm.out"), str(tmp_path / "copy"))
    assert (tmp_path / "copy").read_text() == "out\n" and (tmp_path / "copy").stat().st_mtime == 1000000000


def test_follow_survives_drops_and_yields_every_line_once(server: SSHServer, t: SSHTransport, tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_text("")
    finished = threading.Event()

    def writer() -> None:
        for i in range(30):
            with open(path, "a") as f:
                f.write(f"line {i}\n")
            if i in (10, 20):
                server.drop()
            time.sleep(0.03)
        finished.set()

    threading.Thread(target=writer).start()
    got = "".join(t.follow(str(path), done=finished.is_set, interval=0.02))
    assert got == "".join(f"line {i}\n" for i in range(30))
    assert t.reconnects >= 1


def test_a_drop_repeats_only_what_cannot_act_twice(server: SSHServer, t: SSHTransport, tmp_path: Path) -> None:
    flag = tmp_path / "ran"
    script = f'if [ -e {flag} ]; then echo second; else touch {flag}; sleep 3; fi'
    threading.Timer(0.5, server.drop).start()
    with pytest.raises(ConnectionLost) as e:
        t.run(["sh", "-c", script])  # not known to be safe: never sent twice
    assert e.value.retryable and "whether it acted is unknown" in str(e.value)
    flag.unlink()
    threading.Timer(0.5, server.drop).start()
    assert t.run(["sh", "-c", script], retry=True).stdout == "second\n"
    assert sum("touch" in c for c in server.commands) == 3


def test_unknown_host_is_refused_then_accepted_when_asked(server: SSHServer, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    with pytest.raises(HostKeyError) as e:
        connect(server, known_hosts=str(empty)).run(["true"])
    assert "ssh-keyscan -p" in str(e.value) and "--accept-new-host-key" in str(e.value)
    assert e.value.exit_code == exitcodes.REMOTE and not e.value.retryable and not empty.exists()
    t = connect(server, known_hosts=str(empty), accept_new=True)
    assert t.run(["true"]).ok
    t.close()
    assert f"[127.0.0.1]:{server.port} ecdsa-sha2-nistp256 " in empty.read_text()
    assert empty.stat().st_mode & 0o777 == 0o600
    assert connect(server, known_hosts=str(empty)).run(["true"]).ok


def test_a_changed_host_key_is_always_refused(server: SSHServer, tmp_path: Path) -> None:
    other = paramiko.ECDSAKey.generate()
    known = tmp_path / "changed"
    known.write_text(f"[127.0.0.1]:{server.port} {other.get_name()} {other.get_base64()}\n")
    for accept_new in (False, True):
        with pytest.raises(HostKeyError, match="CHANGED.*ssh-keygen -f .* -R '\\[127.0.0.1\\]:"):
            connect(server, known_hosts=str(known), accept_new=accept_new).run(["true"])


def test_a_wrong_key_is_a_clear_error(server: SSHServer, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    paramiko.ECDSAKey.generate().write_private_key_file(str(wrong))
    with pytest.raises(SSHAuthError, match=r"refused our keys .*wrong.*--ssh-key"):
        connect(server, key=str(wrong)).run(["true"])


def test_nobody_listening_is_unreachable_and_retryable(tmp_path: Path) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    known = tmp_path / "kh"
    known.write_text("")
    t = SSHTransport(Target("127.0.0.1", user="x", port=port, known_hosts=str(known)), reconnect_for=1)
    with pytest.raises(Unreachable) as e:
        t.run(["true"])
    assert e.value.retryable and f"port {port}" in str(e.value)


def test_forward_port_reaches_a_port_of_the_far_side(t: SSHTransport) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def echo() -> None:
        conn, _ = srv.accept()
        conn.sendall(conn.recv(100).upper())
        conn.close()

    threading.Thread(target=echo, daemon=True).start()
    host, port = t.forward_port("127.0.0.1", srv.getsockname()[1])
    assert host == "127.0.0.1" and port != srv.getsockname()[1]
    with socket.create_connection((host, port), timeout=5) as c:
        c.sendall(b"hello")
        assert c.recv(100) == b"HELLO"
    srv.close()


@pytest.mark.parametrize("text,expected", [
    ("login", (None, "login", None)), ("me@login.example.org", ("me", "login.example.org", None)),
    ("me@login:2222", ("me", "login", 2222)), ("[::1]:22", (None, "::1", 22)), ("a.b-c_d", (None, "a.b-c_d", None)),
])
def test_host_forms(text: str, expected: tuple) -> None:
    assert parse_host(text) == expected


@pytest.mark.parametrize("text", ["", " login", "-oProxyCommand=x", "login:0", "login:99999", "login:", "me@",
                                  "bad user@login", "lo gin", "login;rm", "[::1", "login:22:33"])
def test_bad_hosts_are_bad_input(text: str) -> None:
    with pytest.raises(SpecError) as e:
        parse_host(text)
    assert e.value.exit_code == exitcodes.USAGE and "[USER@]HOST[:PORT]" in str(e.value)
