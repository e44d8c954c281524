"""Opening one verified SSH connection, through its ProxyJump hops.

Host keys are checked as OpenSSH's StrictHostKeyChecking does: an unknown host
is refused unless the user said --accept-new-host-key (then its key is saved,
as `accept-new` does), and a changed key is always refused. Authentication
tries the given key files, the agent and the default keys, as `ssh` does. Each
failure becomes one line that names the fix; only an unreachable host is worth
retrying. Imported only in remote mode: paramiko takes a while to import.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import paramiko

from kindslurm.errors import HostKeyError, RemoteError, SSHAuthError, Unreachable
from kindslurm.transport.sshtarget import Hop

CONNECT_TIMEOUT = 20.0
KEEPALIVE = 10  # seconds: a dead connection is noticed while a command waits


def _fingerprint(key: Any) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def _known_hosts_line(name: str, key: Any) -> str:
    return f"{name} {key.get_name()} {key.get_base64()}\n"


def _save_key(path: str, name: str, key: Any) -> None:
    """Append to known_hosts as `ssh -o StrictHostKeyChecking=accept-new` does (0600, directory 0700)."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(_known_hosts_line(name, key))


def _policy(hop: Hop, accept_new: bool) -> Any:
    class Policy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            if accept_new:
                _save_key(hop.known_hosts, hostname, key)
                client.get_host_keys().add(hostname, key.get_name(), key)
                return
            port = "" if hop.port == 22 else f"-p {hop.port} "
            raise HostKeyError(
                f"the host key of {hostname} ({_fingerprint(key)}) is not in {hop.known_hosts}: once you have checked "
                f"it (ask your admins), add it with `ssh-keyscan {port}{hop.host} >> {hop.known_hosts}` "
                f"or connect once with --accept-new-host-key")

    return Policy()


def _changed(hop: Hop, e: Any) -> HostKeyError:
    return HostKeyError(
        f"the host key of {hop.key_name} has CHANGED (it now offers {_fingerprint(e.key)}, {hop.known_hosts} "
        f"holds another): someone may be intercepting the connection; if your admins replaced the key, remove "
        f"the old one with `ssh-keygen -f {hop.known_hosts} -R '{hop.key_name}'` and check the new one")


def _auth_failed(hop: Hop, e: Exception) -> SSHAuthError:
    if isinstance(e, paramiko.PasswordRequiredException):
        return SSHAuthError(f"the SSH key for {hop.shown} is encrypted and no agent holds it: "
                            f"`ssh-add {hop.keys[0] if hop.keys else 'KEY'}`, then try again")
    tried = ", ".join(hop.keys) or "the agent and ~/.ssh/id_*"
    return SSHAuthError(f"{hop.shown} refused our keys ({tried}): pass the right one with --ssh-key "
                        f"(remote.key in the config), or add its public key to ~/.ssh/authorized_keys there")


@dataclass
class Chain:
    """The connected clients of one chain; the last is the login node."""

    clients: list[Any]

    @property
    def transport(self) -> Any:
        return self.clients[-1].get_transport()

    def active(self) -> bool:
        t = self.transport
        return t is not None and t.is_active()

    def close(self) -> None:
        for c in reversed(self.clients):
            try:
                c.close()
            except Exception:
                pass


def _connect_hop(hop: Hop, accept_new: bool, sock: Any, timeout: float) -> Any:
    client = paramiko.SSHClient()
    for path in hop.system_known_hosts:
        try:
            client.load_system_host_keys(path)
        except (OSError, paramiko.SSHException):
            pass
    if os.path.isfile(hop.known_hosts):
        try:
            client.load_host_keys(hop.known_hosts)
        except (OSError, paramiko.SSHException) as e:
            raise RemoteError(f"{hop.known_hosts} cannot be read ({e}): fix or move it") from None
    client.set_missing_host_key_policy(_policy(hop, accept_new))
    try:
        client.connect(hop.host, hop.port, username=hop.user, key_filename=list(hop.keys) or None, sock=sock,
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout,
                       allow_agent=True, look_for_keys=not hop.keys)
    except HostKeyError:
        client.close()
        raise
    except paramiko.BadHostKeyException as e:
        client.close()
        raise _changed(hop, e) from None
    except paramiko.AuthenticationException as e:
        client.close()
        raise _auth_failed(hop, e) from None
    except socket.gaierror as e:
        client.close()
        raise RemoteError(f"cannot resolve host {hop.host} ({e.strerror}): check --host or remote.host") from None
    except (OSError, EOFError, paramiko.SSHException) as e:
        t = client.get_transport()
        refused = t is not None and t.is_active() and not t.is_authenticated()
        client.close()
        if refused:  # paramiko may report a key file it could not parse rather than the refusal itself
            raise _auth_failed(hop, e) from None
        detail = "connection refused" if isinstance(e, paramiko.ssh_exception.NoValidConnectionsError) else \
            (str(e) or type(e).__name__)
        raise Unreachable(f"cannot connect to {hop.shown} ({detail}): is the host up and "
                          f"sshd listening on port {hop.port}?") from None
    client.get_transport().set_keepalive(KEEPALIVE)
    return client


def connect(hops: list[Hop], accept_new: bool = False, timeout: float = CONNECT_TIMEOUT) -> Chain:
    """Connect hop by hop, each through a direct-tcpip channel of the one before (ProxyJump)."""
    clients: list[Any] = []
    try:
        for hop in hops:
            sock = None
            if clients:
                try:
                    sock = clients[-1].get_transport().open_channel(
                        "direct-tcpip", (hop.host, hop.port), ("127.0.0.1", 0), timeout=timeout)
                except Exception as e:
                    raise Unreachable(f"jump host {hops[len(clients) - 1].shown} cannot reach {hop.host}:{hop.port} "
                                      f"({e or type(e).__name__}): check the ProxyJump chain") from None
            clients.append(_connect_hop(hop, accept_new, sock, timeout))
    except BaseException:
        Chain(clients).close()
        raise
    return Chain(clients)
