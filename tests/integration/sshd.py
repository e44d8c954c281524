"""Debian's OpenSSH server for tests: started on a loopback port the test
picks, with its own sshd_config, host key, a test client key and
known_hosts, all in a private temporary directory, and stopped by the
fixture's finalizer. It plays the login node in front of the real local
Slurm: the sessions of root (the user that can boot real clusters on these
cgroup v1 machines) get `login_env`, so jobs submitted through it keep their
records and job directories where the test says; kstest is the non-root user
for what needs no cluster. PAM stays on: kstest's password is locked, and
sshd without PAM refuses a locked account even for key authentication.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, kind: str = "ed25519") -> Path:
    res = subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "kindslurm-test", "-f", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return path


def _sshd_descendants(root: int) -> list[int]:
    """The per-connection sshd processes below our server (not the commands they run)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child, parent in parents.items():
            if parent == pid:
                try:
                    comm = Path(f"/proc/{child}/comm").read_text().strip()
                except OSError:
                    continue
                if comm.startswith("sshd"):
                    found.append(child)
                    todo.append(child)
    return found


class SSHServer:
    def __init__(self, login_env: dict[str, str] | None = None, users: tuple[str, ...] = ("root", "kstest")) -> None:
        if not os.path.exists(SSHD):
            pytest.fail("sshd missing: apt-get install openssh-server (bash setup/install.sh --tests)")
        self.dir = Path(tempfile.mkdtemp(prefix="ks-sshd-"))
        os.chmod(self.dir, 0o755)  # kstest's sshd reads its authorized keys from here
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self.host_key = keygen(self.dir / "host_key")
        self.client_key = keygen(self.dir / "client_key")
        keys = self.dir / "authorized"
        keys.mkdir(mode=0o755)
        for user in users:
            shutil.copy(f"{self.client_key}.pub", keys / user)
            os.chmod(keys / user, 0o644)
        self.port = free_port()
        self.known_hosts = self.dir / "known_hosts"
        pub = Path(f"{self.host_key}.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n")
        env = {"PYTHONPATH": str(REPO), **(login_env or {})}
        config = [
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}", f"AuthorizedKeysFile {keys}/%u", "PermitRootLogin prohibit-password",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM yes", "StrictModes no",
            f"AllowUsers {' '.join(users)}", "Subsystem sftp internal-sftp", "AllowTcpForwarding yes",
            "MaxStartups 50", "MaxSessions 50", "LogLevel VERBOSE", "PrintMotd no",
            "SetEnv " + " ".join(f"{k}={v}" for k, v in env.items()),
        ]
        (self.dir / "sshd_config").write_text("\n".join(config) + "\n")
        self.log = open(self.dir / "sshd.log", "w")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"sshd did not start: {(self.dir / 'sshd.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        pytest.fail("sshd did not listen within 20 s")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def laptop_config(self, path: Path, user: str = "root", **extra: str) -> Path:
        """A laptop's kindslurm config for this login node."""
        import yaml

        remote = {"host": f"{user}@{self.host}", "key": str(self.client_key), "known_hosts": str(self.known_hosts),
                  "command": f"{sys.executable} -m kindslurm", **extra}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"remote": remote}))
        return path

    def drop(self) -> int:
        """Kill every open connection's sshd process, as a network failure would end them; returns how many."""
        kids = _sshd_descendants(self.proc.pid)
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(kids)

    def stop(self) -> None:
        self.drop()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
