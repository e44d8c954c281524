"""The SSH transport against Debian's OpenSSH on a loopback port (no
clusters): a real login shell's quoting, files as a non-root user, host keys
and keys through the CLI, a ProxyJump chain, dropped connections, port
forwards, and the Slurm scheduler over both transports against the real
local Slurm."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from pathlib import Path

import pytest

from kindslurm.errors import KindslurmError
from kindslurm.scheduler.slurm import Slurm
from kindslurm.transport.local import LocalTransport
from kindslurm.transport.ssh import SSHTransport
from kindslurm.transport.sshtarget import Target

from .conftest import Env
from .sshd import SSHServer, keygen

pytestmark = [pytest.mark.slurm]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    login = tmp_path_factory.mktemp("login")
    server = SSHServer({"XDG_STATE_HOME": str(login / "state"), "XDG_DATA_HOME": str(login / "data"),
                        "XDG_CONFIG_HOME": str(login / "config")})
    yield server
    server.stop()


def connect(sshd: SSHServer, user: str = "root", **kw) -> SSHTransport:
    opts = dict(user=user, port=sshd.port, key=str(sshd.client_key), known_hosts=str(sshd.known_hosts))
    opts.update(kw)
    return SSHTransport(Target("127.0.0.1", **opts), reconnect_for=30)  # type: ignore[arg-type]


@pytest.fixture
def laptop(sshd: SSHServer, env: Env) -> Env:
    sshd.laptop_config(Path(env.vars["XDG_CONFIG_HOME"]) / "kindslurm" / "config.yaml")
    return env


@pytest.mark.parametrize("user", ["root", "kstest"])
def test_every_argument_reaches_the_login_shell_as_one_word(sshd: SSHServer, user: str) -> None:
    t = connect(sshd, user)
    try:
        words = ["a b", "it's", '"q"', "$HOME", "`id`", "; rm -rf /tmp/x", "*", "new\nline", "", "-n", "\\", "ü"]
        res = t.run(["printf", "%s|", *words])
        assert res.stdout == "".join(f"{w}|" for w in words)
        assert t.run(["id", "-un"]).stdout.strip() == user
        with pytest.raises(KindslurmError, match=f"kindslurm-no-such-tool not found on {user}@127.0.0.1"):
            t.run(["kindslurm-no-such-tool"])
    finally:
        t.close()


def test_files_belong_to_the_ssh_user_with_the_mode_asked(sshd: SSHServer, tmp_path: Path) -> None:
    t = connect(sshd, "kstest")
    root = f"/home/kstest/ks-test-{secrets.token_hex(4)}"
    try:
        t.make_dirs(f"{root}/a/b", 0o700)
        t.write_text(f"{root}/a/b/x.txt", "hello\n", 0o640)
        local = tmp_path / "in.bin"
        local.write_bytes(secrets.token_bytes(300_000))
        t.put_file(str(local), f"{root}/in.bin", 0o600)
        assert t.run(["stat", "-c", "%U %a", f"{root}/a/b/x.txt", f"{root}/in.bin", f"{root}/a"]).stdout.split("\n")[:3] \
            == ["kstest 640", "kstest 600", "kstest 700"]
        assert [rel for rel, _, _ in t.walk(root)] == ["a/b/x.txt", "in.bin"]
        t.get_file(f"{root}/in.bin", str(tmp_path / "back.bin"))
        assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()
        with pytest.raises(PermissionError):
            t.write_text("/root/ks-not-yours", "x")
    finally:
        t.run(["rm", "-rf", "--", root], check=False)
        t.close()


def test_an_unknown_host_is_refused_until_accepted(sshd: SSHServer, laptop: Env) -> None:
    known = laptop.root / "known_hosts"
    known.write_text("")
    sshd.laptop_config(Path(laptop.vars["XDG_CONFIG_HOME"]) / "kindslurm" / "config.yaml", known_hosts=str(known))
    res = laptop.ks("ls")
    assert res.returncode == 77, res.stdout + res.stderr
    line = res.stderr.strip()
    assert "\n" not in line and "is not in" in line and f"ssh-keyscan -p {sshd.port} 127.0.0.1" in line \
        and "--accept-new-host-key" in line
    assert known.read_text() == ""
    res = laptop.ks("--accept-new-host-key", "ls")
    assert res.returncode == 0, res.stderr
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519 " in known.read_text()
    assert laptop.ks("ls").returncode == 0


def test_a_changed_host_key_is_refused_with_the_fix(sshd: SSHServer, laptop: Env, tmp_path: Path) -> None:
    other = keygen(tmp_path / "other_host_key")
    known = laptop.root / "known_hosts"
    kind, key = Path(f"{other}.pub").read_text().split()[:2]
    known.write_text(f"[127.0.0.1]:{sshd.port} {kind} {key}\n")
    sshd.laptop_config(Path(laptop.vars["XDG_CONFIG_HOME"]) / "kindslurm" / "config.yaml", known_hosts=str(known))
    for extra in ([], ["--accept-new-host-key"]):
        res = laptop.ks(*extra, "ls")
        assert res.returncode == 77 and "CHANGED" in res.stderr, res.stderr
        assert f"ssh-keygen -f {known} -R '[127.0.0.1]:{sshd.port}'" in res.stderr


def test_a_wrong_key_is_a_clear_error(sshd: SSHServer, laptop: Env, tmp_path: Path) -> None:
    wrong = keygen(tmp_path / "wrong")
    res = laptop.ks("--ssh-key", str(wrong), "ls")
    assert res.returncode == 77, res.stdout + res.stderr
    assert f"root@127.0.0.1:{sshd.port} refused our keys ({wrong})" in res.stderr and "--ssh-key" in res.stderr
    res = laptop.ks("--ssh-key", str(tmp_path / "missing"), "ls")
    assert res.returncode == 64 and "does not exist: fix --ssh-key" in res.stderr


def test_a_proxyjump_chain(sshd: SSHServer) -> None:
    """root on the login node through kstest on a jump host (the same sshd plays both)."""
    log = sshd.dir / "sshd.log"
    before = log.read_text()
    t = connect(sshd, "root", jump=f"kstest@127.0.0.1:{sshd.port}")
    try:
        assert [h.user for h in t.hops] == ["kstest", "root"]
        assert t.run(["id", "-un"]).stdout.strip() == "root"
    finally:
        t.close()
    new = log.read_text()[len(before):]
    assert "Accepted publickey for kstest" in new and "Accepted publickey for root" in new
    assert "direct-tcpip" in new or "Connection from 127.0.0.1" in new


def test_follow_survives_dropped_connections_with_every_line_once(sshd: SSHServer, tmp_path: Path) -> None:
    t = connect(sshd)
    path = tmp_path / "growing.log"
    path.write_text("")
    finished = threading.Event()
    drops: list[int] = []

    def writer() -> None:
        for i in range(60):
            with open(path, "a") as f:
                f.write(f"line {i}\n")
            if i in (20, 40):
                drops.append(sshd.drop())
            time.sleep(0.05)
        finished.set()

    threading.Thread(target=writer, daemon=True).start()
    try:
        got = "".join(t.follow(str(path), done=finished.is_set, interval=0.05))
    finally:
        t.close()
    assert got == "".join(f"line {i}\n" for i in range(60))
    assert all(drops) and t.reconnects >= 2


def test_a_port_forward_through_sshd(sshd: SSHServer) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def echo() -> None:
        conn, _ = srv.accept()
        conn.sendall(conn.recv(100)[::-1])
        conn.close()

    threading.Thread(target=echo, daemon=True).start()
    t = connect(sshd, "kstest")
    try:
        host, port = t.forward_port("127.0.0.1", srv.getsockname()[1])
        with socket.create_connection((host, port), timeout=10) as c:
            c.sendall(b"abc")
            assert c.recv(100) == b"cba"
    finally:
        t.close()
        srv.close()


@pytest.mark.parametrize("how", ["local", "ssh-kstest"])
def test_slurm_over_each_transport(sshd: SSHServer, tmp_path: Path, how: str) -> None:
    """The scheduler against the real Slurm: locally as root, over SSH as kstest."""
    t = LocalTransport() if how == "local" else connect(sshd, "kstest")
    user = "root" if how == "local" else "kstest"
    workdir = str(tmp_path) if how == "local" else f"/home/kstest/ks-slurm-{secrets.token_hex(4)}"
    slurm = Slurm(t)
    job = None
    try:
        assert "debug" in slurm.partitions()
        t.make_dirs(workdir, 0o700)
        script = f"{workdir}/job.sh"
        t.write_text(script, "#!/bin/sh\nsleep 300\n", 0o700)
        tag = f"kindslurm-run:test-{secrets.token_hex(4)}"
        job = slurm.submit(script, extra=["--output=/dev/null", f"--comment={tag}", "--time=5"])
        assert job.isdigit()
        js = slurm.state(job)
        assert js is not None and js.active
        assert slurm.find_by_comment(user, tag) == job
        slurm.cancel(job)
        deadline = time.monotonic() + 60
        while (js := slurm.state(job)) is not None and js.active and time.monotonic() < deadline:
            time.sleep(0.5)
        assert js is not None and js.state == "cancelled", js
        job = None
    finally:
        if job:
            slurm.cancel(job)
        if how != "local":
            t.run(["rm", "-rf", "--", workdir], check=False)
        t.close()
