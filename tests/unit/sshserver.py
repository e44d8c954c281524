"""A small SSH server inside the test process (paramiko's server side) for unit
tests of the SSH transport: real SSH and SFTP on a loopback port, a host key
and a client key of its own, commands run through kindslurm.proc.run (so the
fake tools of the scheduler tests answer over SSH as they do locally), and
`drop()` to cut every connection as a network failure would. Integration tests
use Debian's OpenSSH instead (tests/integration/sshd.py)."""

from __future__ import annotations

import os
import shlex
import socket
import threading
from pathlib import Path
from typing import Any

import paramiko
from paramiko import SFTPAttributes, SFTPHandle, SFTPServer, SFTPServerInterface

from kindslurm import proc
from kindslurm.errors import KindslurmError
from kindslurm.transport.sshforward import pump


class _Handle(SFTPHandle):
    def stat(self) -> Any:
        return SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))

    def chattr(self, attr: Any) -> int:
        SFTPServer.set_file_attr(self.filename, attr)
        return paramiko.SFTP_OK


class _Files(SFTPServerInterface):
    """The local filesystem, as OpenSSH's sftp-server serves it."""

    def _err(self, e: OSError) -> int:
        return SFTPServer.convert_errno(e.errno)

    def list_folder(self, path: str) -> Any:
        try:
            out = []
            for name in os.listdir(path):
                attr = SFTPAttributes.from_stat(os.lstat(os.path.join(path, name)))
                attr.filename = name
                out.append(attr)
            return out
        except OSError as e:
            return self._err(e)

    def stat(self, path: str) -> Any:
        try:
            return SFTPAttributes.from_stat(os.stat(path))
        except OSError as e:
            return self._err(e)

    def lstat(self, path: str) -> Any:
        try:
            return SFTPAttributes.from_stat(os.lstat(path))
        except OSError as e:
            return self._err(e)

    def open(self, path: str, flags: int, attr: Any) -> Any:
        try:
            mode = getattr(attr, "st_mode", None)
            fd = os.open(path, flags, mode if mode is not None else 0o666)
        except OSError as e:
            return self._err(e)
        if flags & os.O_WRONLY:
            fstr = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            fstr = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            fstr = "rb"
        handle = _Handle(flags)
        handle.filename = path
        handle.readfile = handle.writefile = os.fdopen(fd, fstr)
        return handle

    def remove(self, path: str) -> int:
        try:
            os.remove(path)
        except OSError as e:
            return self._err(e)
        return paramiko.SFTP_OK

    def posix_rename(self, old: str, new: str) -> int:
        try:
            os.replace(old, new)
        except OSError as e:
            return self._err(e)
        return paramiko.SFTP_OK

    rename = posix_rename

    def mkdir(self, path: str, attr: Any) -> int:
        try:
            os.mkdir(path, getattr(attr, "st_mode", None) or 0o777)
        except OSError as e:
            return self._err(e)
        return paramiko.SFTP_OK

    def chattr(self, path: str, attr: Any) -> int:
        try:
            SFTPServer.set_file_attr(path, attr)
        except OSError as e:
            return self._err(e)
        return paramiko.SFTP_OK


class _Server(paramiko.ServerInterface):
    def __init__(self, owner: "SSHServer") -> None:
        self.owner = owner

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: Any) -> int:
        ok = username == self.owner.user and key.get_base64() == self.owner.client_key.get_base64()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_direct_tcpip_request(self, chanid: int, origin: Any, destination: Any) -> int:
        try:
            sock = socket.create_connection(destination, timeout=5)
        except OSError:
            return paramiko.OPEN_FAILED_CONNECT_FAILED
        self.owner.pending_tcp[chanid] = sock
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: Any, command: bytes) -> bool:
        self.owner.commands.append(command.decode())
        threading.Thread(target=self.owner.execute, args=(channel, command.decode()), daemon=True).start()
        return True


class SSHServer:
    """Listening on 127.0.0.1:`port` for `user` with `client_key`; `known_hosts` holds its host key."""

    def __init__(self, tmp: Path, user: str = "tester") -> None:
        self.user = user
        self.host_key = paramiko.ECDSAKey.generate()
        self.client_key = paramiko.ECDSAKey.generate()
        self.key_file = str(tmp / "id_test")
        self.client_key.write_private_key_file(self.key_file)
        self.commands: list[str] = []
        self.pending_tcp: dict[int, socket.socket] = {}
        self.transports: list[paramiko.Transport] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.known_hosts = str(tmp / "known_hosts")
        Path(self.known_hosts).write_text(
            f"[127.0.0.1]:{self.port} {self.host_key.get_name()} {self.host_key.get_base64()}\n")
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            t = paramiko.Transport(conn)
            t.add_server_key(self.host_key)
            t.set_subsystem_handler("sftp", SFTPServer, _Files)
            self.transports.append(t)
            try:
                t.start_server(server=_Server(self))
            except Exception:
                continue
            threading.Thread(target=self._channels, args=(t,), daemon=True).start()

    def _channels(self, t: paramiko.Transport) -> None:
        while t.is_active():
            chan = t.accept(1)
            if chan is not None and chan.get_id() in self.pending_tcp:
                sock = self.pending_tcp.pop(chan.get_id())
                threading.Thread(target=pump, args=(chan, sock), daemon=True).start()

    def execute(self, channel: Any, command: str) -> None:
        data = b""
        while chunk := channel.recv(1 << 16):
            data += chunk
        argv = shlex.split(command)
        try:
            res = proc.run(argv, check=False, input=data.decode() if data else None)
            out, err, code = res.stdout, res.stderr, res.returncode
        except KindslurmError as e:
            out, err, code = "", f"sh: 1: {argv[0]}: not found\n" if "not found" in str(e) else f"{e}\n", 127
        try:
            channel.sendall(out.encode())
            channel.sendall_stderr(err.encode())
            channel.send_exit_status(code)
            channel.close()
        except OSError:
            pass

    def drop(self) -> None:
        """Every connection cut, as when the network or the server goes away; new ones are still accepted."""
        for t in self.transports:
            t.close()
        self.transports = []

    def close(self) -> None:
        self.drop()
        self.sock.close()
