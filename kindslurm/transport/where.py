"""Which host this invocation works against: this one, or a login node over
SSH when --host (or the config's remote.host) says so. api.get_transport()
is the face of this choice; everything else asks it.

One transport per invocation, made on first use: in remote mode that is one
SSH connection, reused by every command, file and port forward.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from typing import Any

from kindslurm import records
from kindslurm.errors import KindslurmError
from kindslurm.transport.base import Transport
from kindslurm.transport.local import LocalTransport
from kindslurm.transport.sshtarget import Target, from_config

_HOST: dict[str, Any] = {}  # what the command line said (use_host)
_TRANSPORT: list[Transport] = []
_INFO: list["RemoteInfo"] = []


def use_host(host: str | None = None, *, key: str | None = None, accept_new: bool = False,
             here: bool = False) -> None:
    """The command line's --host/--ssh-key/--accept-new-host-key (`here`:
    ignore the config's remote.host, as the login node's kindslurm does when a
    laptop drives it). Takes effect at the next transport()."""
    _HOST.clear()
    _HOST.update(host=host, key=key, accept_new=accept_new, here=here)
    for t in _TRANSPORT:
        t.close()
    _TRANSPORT.clear()
    _INFO.clear()


def target() -> Target | None:
    """The login node this invocation works against, or None to work here.
    --host overrides remote.host; the config's other remote settings still apply."""
    from kindslurm import config

    if _HOST.get("here"):
        return None
    return from_config(asdict(config.load().remote), _HOST.get("host"), _HOST.get("key"), bool(_HOST.get("accept_new")))


def transport() -> Transport:
    if not _TRANSPORT:
        chosen = target()
        if chosen is None:
            _TRANSPORT.append(LocalTransport())
        else:
            from kindslurm.transport.ssh import SSHTransport

            _TRANSPORT.append(SSHTransport(chosen))
    return _TRANSPORT[0]


def is_remote() -> bool:
    return not isinstance(transport(), LocalTransport)


def host_args() -> list[str]:
    """The command line's --host/--ssh-key, for a kindslurm this one starts (a background tunnel)."""
    args = ["--host", _HOST["host"]] if _HOST.get("host") else []
    return args + (["--ssh-key", _HOST["key"]] if _HOST.get("key") else [])


def remote_command(*args: str) -> list[str]:
    """The login node's kindslurm (remote.command, default `kindslurm`) with `args`, working right there."""
    chosen = target()
    words = shlex.split(chosen.command) if chosen is not None and chosen.command else ["kindslurm"]
    return [*words, "--no-remote", *args]


@dataclass(frozen=True)
class RemoteInfo:
    """What the login node's kindslurm says of its user (`kindslurm remote-info`)."""

    user: str
    host: str
    records_dir: str
    job_root: str


def remote_info(via: Transport | None = None) -> RemoteInfo:
    if not _INFO:
        import json

        argv = remote_command("remote-info")
        res = (via or transport()).run(argv, timeout=60, retry=True)
        try:
            data = json.loads(res.stdout)
            _INFO.append(RemoteInfo(data["user"], data["host"], data["records_dir"], data["job_root"]))
        except (ValueError, KeyError, TypeError):
            raise KindslurmError(f"`{shlex.join(argv)}` on the login node printed {res.stdout.strip()[:200]!r}, "
                                 f"not its settings: is this kindslurm installed there (remote.command)?") from None
    return _INFO[0]


def get_records() -> records.Source:
    """Where runs' records are read: this host's, or the login node's in remote mode."""
    if not is_remote():
        return records.LocalSource()
    from kindslurm.transport.remote_records import TransportRecords

    return TransportRecords(transport(), remote_info().records_dir)
