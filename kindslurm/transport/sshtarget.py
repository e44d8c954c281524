"""Where remote mode connects to: `--host [USER@]HOST[:PORT]`, the config's
`remote:` mapping and ~/.ssh/config, resolved into the hops of one connection.

OpenSSH's precedence holds: the command line over kindslurm's config over
~/.ssh/config over defaults. A ProxyJump chain becomes hops connected in
order, each looked up in ~/.ssh/config as OpenSSH would. Everything here is
checked before any connection is made: a bad host is bad input (exit 64).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kindslurm.errors import SpecError

_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
DEFAULT_PORT = 22


@dataclass(frozen=True)
class Target:
    """What the user asked for; `resolve` turns it into hops."""

    host: str
    user: str | None = None
    port: int | None = None
    key: str | None = None
    jump: str | None = None
    known_hosts: str | None = None
    accept_new: bool = False
    command: str | None = None  # the login node's kindslurm (default: `kindslurm` on its PATH)


@dataclass(frozen=True)
class Hop:
    """One SSH connection of a chain, as ~/.ssh/config completes it."""

    alias: str  # what the user wrote: messages and ~/.ssh/config lookups
    host: str  # what is connected to (HostName)
    port: int
    user: str
    keys: tuple[str, ...] = ()
    known_hosts: str = ""
    system_known_hosts: tuple[str, ...] = field(default_factory=tuple)

    @property
    def key_name(self) -> str:
        """How known_hosts names this host, as OpenSSH writes it."""
        return self.host if self.port == DEFAULT_PORT else f"[{self.host}]:{self.port}"

    @property
    def shown(self) -> str:
        return f"{self.user}@{self.host}" + ("" if self.port == DEFAULT_PORT else f":{self.port}")


def parse_host(text: str, what: str = "--host") -> tuple[str | None, str, int | None]:
    """`[USER@]HOST[:PORT]` (an IPv6 address in brackets); SpecError naming the fix otherwise."""
    value = text.strip()
    fix = f"give {what} as [USER@]HOST[:PORT], e.g. me@login.hpc.example.org or login:2222"
    if not value or value != text or any(c.isspace() for c in value):
        raise SpecError(f"{what} {text!r} is not a host name: {fix}")
    user, sep, rest = value.rpartition("@")
    if not sep:
        user, rest = "", value
    if sep and not _USER.match(user):
        raise SpecError(f"{what} {text!r}: user {user!r} is not a user name: {fix}")
    port: int | None = None
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or not host or (tail and not tail.startswith(":")):
            raise SpecError(f"{what} {text!r} is not a host name: {fix}")
        port_text = tail[1:] if tail else ""
    else:
        host, _, port_text = rest.partition(":")
        if not _HOSTNAME.match(host):
            raise SpecError(f"{what} {text!r}: {host!r} is not a host name: {fix}")
    if port_text or rest.endswith(":"):
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SpecError(f"{what} {text!r}: port {port_text!r} is not a port number (1-65535): {fix}")
        port = int(port_text)
    return user or None, host, port


def from_config(remote: dict[str, Any] | None, host: str | None, key: str | None, accept_new: bool) -> Target | None:
    """The target of this invocation: --host over `remote.host`; None means local."""
    remote = remote or {}
    chosen = host if host is not None else remote.get("host")
    if not chosen:
        return None
    user, name, port = parse_host(str(chosen), "--host" if host is not None else "remote.host")
    if user is None and remote.get("user"):
        user = str(remote["user"])
        if not _USER.match(user):
            raise SpecError(f"remote.user {user!r} is not a user name: fix it in the config")
    if port is None and remote.get("port") is not None:
        port = int(remote["port"])
    jump = remote.get("jump")
    for hop in str(jump).split(",") if jump else []:
        parse_host(hop.strip(), "remote.jump")
    ssh_key = key or remote.get("key")
    if ssh_key and not Path(os.path.expanduser(str(ssh_key))).is_file():
        raise SpecError(f"SSH key {ssh_key} does not exist: fix {'--ssh-key' if key else 'remote.key'}")
    return Target(host=name, user=user, port=port, key=os.path.expanduser(str(ssh_key)) if ssh_key else None,
                  jump=str(jump) if jump else None, known_hosts=remote.get("known_hosts"), accept_new=accept_new,
                  command=remote.get("command"))


def _ssh_config() -> Any:
    import paramiko

    path = Path(os.path.expanduser("~/.ssh/config"))
    try:
        return paramiko.SSHConfig.from_path(str(path)) if path.is_file() else paramiko.SSHConfig()
    except (OSError, ValueError, paramiko.SSHException) as e:
        raise SpecError(f"~/.ssh/config cannot be read ({e}): fix it") from None


def _hop(alias: str, user: str | None, port: int | None, keys: tuple[str, ...], known_hosts: str | None,
         cfg: Any) -> Hop:
    import getpass

    entry = cfg.lookup(alias)
    files = tuple(os.path.expanduser(k) for k in entry.get("identityfile", []) if os.path.isfile(os.path.expanduser(k)))
    known = known_hosts or (entry.get("userknownhostsfile") or "~/.ssh/known_hosts").split()[0]
    return Hop(alias=alias, host=entry.get("hostname", alias), port=int(port or entry.get("port") or DEFAULT_PORT),
               user=user or entry.get("user") or getpass.getuser(), keys=tuple(dict.fromkeys(keys + files)),
               known_hosts=os.path.expanduser(known),
               system_known_hosts=tuple(p for p in ("/etc/ssh/ssh_known_hosts",) if os.path.isfile(p)))


def resolve(target: Target) -> list[Hop]:
    """The hops, first jump host first and the login node last."""
    cfg = _ssh_config()
    keys = (target.key,) if target.key else ()
    jump = target.jump or cfg.lookup(target.host).get("proxyjump")
    hops: list[Hop] = []
    if jump and jump.lower() != "none":
        for part in jump.split(","):
            user, host, port = parse_host(part.strip(), "ProxyJump")
            hops.append(_hop(host, user, port, keys, target.known_hosts, cfg))
    hops.append(_hop(target.host, target.user, target.port, keys, target.known_hosts, cfg))
    return hops
