"""K8S_PORT: a host port in the NodePort range, mapped 1:1 to the control-plane
node, leased so that parallel runs on a node never get the same one.

The lease is an abstract-namespace Unix socket named after the port: binding
it is atomic across every user of the host's network namespace, leaves no
file in a shared place, and the kernel frees it when the holder dies, even by
SIGKILL. A TCP bind probe on the mapped address skips ports other programs
hold (a cluster whose run was killed keeps its port through podman).
"""

from __future__ import annotations

import ipaddress
import random
import socket
from dataclasses import dataclass, field
from typing import Mapping

from kindslurm.errors import NodeFullError, SpecError

LOW, HIGH = 30000, 32767  # Kubernetes' default NodePort range: a NodePort service can take the same number
DEFAULT_ADDRESS = "0.0.0.0"  # as KSI: other hosts reach the service through the compute node
_NAME = "kindslurm-k8s-port-{port}"


def parse(value: object, where: str) -> int:
    """A port from a command line, the environment or a config file; SpecError names `where`."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit():
        raise SpecError(f"{where} {value!r} is not a port number: give a number in {LOW}-{HIGH}, or leave it unset "
                        f"for a free one")
    port = int(text)
    if not LOW <= port <= HIGH:
        raise SpecError(f"{where} {port} is outside {LOW}-{HIGH}, the NodePort range a service can use: pick a port "
                        f"in that range, or leave it unset for a free one")
    return port


def from_environment(environ: Mapping[str, str]) -> int | None:
    """KSI's `: ${K8S_PORT:=...}`: a port set where the run is submitted (or
    launched, for `sbatch --wrap`) wins over the config files, not the command line."""
    value = environ.get("K8S_PORT", "").strip()
    return parse(value, "K8S_PORT in your environment") if value else None


def check_address(value: str, where: str = "k8s_port_address") -> str:
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise SpecError(f"{where} {value!r} is not an IP address: use 0.0.0.0 (every interface, as KSI) or "
                        f"127.0.0.1 (this node only)") from None


def _tcp_free(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as podman binds: TIME_WAIT is no owner
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


@dataclass
class Lease:
    """A held port; `release` (or the holder's death) gives it back."""

    port: int
    address: str
    _sock: socket.socket | None = field(default=None, repr=False)

    def release(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    @property
    def held(self) -> bool:
        return self._sock is not None


def _claim(port: int) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind("\0" + _NAME.format(port=port))
    except OSError:
        s.close()
        return None
    return s


def held_by_a_run(port: int) -> bool:
    """Whether some run on this host holds the port's lease (for tests and doctor-like checks)."""
    s = _claim(port)
    if s is None:
        return True
    s.close()
    return False


def lease(address: str, wanted: int | None = None, rng: random.Random | None = None,
          low: int = LOW, high: int = HIGH) -> Lease:
    """The wanted port, or the first free one from a random start (so parallel
    runs rarely even try the same one). NodeFullError (retryable) when the
    wanted port or the whole range is taken."""
    candidates: list[int]
    if wanted is not None:
        candidates = [wanted]
    else:
        start = (rng or random.SystemRandom()).randint(low, high)
        candidates = [*range(start, high + 1), *range(low, start)]
    for port in candidates:
        sock = _claim(port)
        if sock is None:
            continue
        if not _tcp_free(address, port):
            sock.close()
            continue
        return Lease(port, address, sock)
    if wanted is not None:
        raise NodeFullError(f"K8S_PORT {wanted} is taken on this node (by another run or program): pick another "
                            f"port, or leave K8S_PORT unset for a free one")
    raise NodeFullError(f"no free K8S_PORT in {low}-{high} on this node: every port is leased or in use; "
                        f"retry when other runs have ended")
