"""A real registry for tests: Debian's docker-registry on a port of this host
that kind's nodes can reach (127.0.0.1 inside a node is the node itself, so
it listens on the address of the host's default-route interface)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from .conftest import sh

BINARY = "/usr/bin/docker-registry"


def host_address() -> str:
    """The IPv4 address of the interface the default route uses: an address of
    this host that containers on podman's bridges reach."""
    routes = json.loads(sh(["ip", "-j", "route", "show", "default"]).stdout or "[]")
    for route in routes:
        addrs = json.loads(sh(["ip", "-j", "-4", "addr", "show", "dev", route["dev"]]).stdout or "[]")
        for link in addrs:
            for a in link.get("addr_info") or []:
                if a.get("family") == "inet" and not a["local"].startswith("127."):
                    return str(a["local"])
    raise AssertionError("no non-loopback IPv4 address on the default route: the nodes could not reach a registry here")


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


class Registry:
    """Started on a free port under `root`; `stop` ends it and removes its storage."""

    def __init__(self, root: Path) -> None:
        if not Path(BINARY).exists():
            raise AssertionError("docker-registry missing: apt-get install docker-registry (setup/install.sh --tests)")
        self.root = root
        self.address = host_address()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "registry.log"
        for _ in range(5):  # a port picked by binding can be taken before the registry binds it
            self.port = free_port(self.address)
            cfg = root / "config.yml"
            cfg.write_text(f"version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
                           f"http:\n  addr: {self.address}:{self.port}\n")
            self.proc = subprocess.Popen([BINARY, "serve", str(cfg)], stdout=self.log.open("ab"),
                                         stderr=subprocess.STDOUT)
            if self._wait_up():
                return
            self.stop(keep_root=True)
        raise AssertionError(f"docker-registry did not start: {self.log.read_text()[-2000:]}")

    @property
    def host(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _wait_up(self, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=2) as r:
                    if r.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def push(self, local: str, upstream: str) -> None:
        """`local` (a podman image) into the registry as `upstream` (e.g. library/alpine:latest)."""
        res = sh(["podman", "push", "-q", "--tls-verify=false", local, f"docker://{self.host}/{upstream}"])
        assert res.returncode == 0, res.stderr

    def served(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, keep_root: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if not keep_root:
            shutil.rmtree(self.root / "data", ignore_errors=True)
