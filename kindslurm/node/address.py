"""This host's address as another host reaches it: where the bridge dials a
run's inner API server, and what the bridge advertises as its own node address."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import struct

_SIOCGIFADDR = 0x8915


def _non_loopback(ip: str) -> bool:
    try:
        return not ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _interface_addresses() -> list[str]:
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                raw = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
                found.append(socket.inet_ntoa(raw[20:24]))
            except OSError:
                continue
    return found


def node_address() -> str:
    """This node's address as another host reaches it: KINDSLURM_NODE_ADDRESS if the admin set it,
    else the host name's address unless that is loopback (Debian maps it to 127.0.1.1), else the
    source address of the default route, else any non-loopback interface address."""
    if os.environ.get("KINDSLURM_NODE_ADDRESS"):
        return os.environ["KINDSLURM_NODE_ADDRESS"]
    try:
        for *_, sockaddr in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            if _non_loopback(str(sockaddr[0])):
                return str(sockaddr[0])
    except OSError:
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # a route lookup only: UDP connect sends nothing
            ip = str(s.getsockname()[0])
            if _non_loopback(ip):
                return ip
    except OSError:
        pass
    return next((ip for ip in _interface_addresses() if _non_loopback(ip)), "127.0.0.1")
