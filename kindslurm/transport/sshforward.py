"""An SSH local port forward (`ssh -L`): a listener on 127.0.0.1 whose every
connection is relayed through a new direct-tcpip channel of the connection.

The channel is opened through the transport at accept time, so a connection
accepted after a drop uses the reconnected session. Only this host's loopback
listens: another user on the laptop could reach it, but what it leads to is an
API server that still wants the kubeconfig's credentials.
"""

from __future__ import annotations

import select
import socket
import threading
from typing import Any, Callable

BUFFER = 1 << 16


def pump(a: Any, b: Any) -> None:
    """Copy both ways between two socket-likes (a socket, a paramiko Channel) until either side ends."""
    pair = {a: b, b: a}
    try:
        while True:
            ready, _, _ = select.select(list(pair), [], [], 1.0)
            for src in ready:
                data = src.recv(BUFFER)
                if not data:
                    return
                pair[src].sendall(data)
    except OSError:
        return
    finally:
        for s in (a, b):
            try:
                s.close()
            except Exception:
                pass


class Forward:
    def __init__(self, open_channel: Callable[[], Any], bind: str = "127.0.0.1", port: int = 0) -> None:
        self.open_channel = open_channel
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((bind, port))
        self.sock.listen(64)
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self.failures = 0
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name=f"forward-{self.address[1]}").start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            chan = self.open_channel()
        except Exception:
            self.failures += 1
            conn.close()
            return
        pump(conn, chan)

    def close(self) -> None:
        self._closed.set()
        try:
            self.sock.close()
        except OSError:
            pass
