"""`kindslurm node-relay PORT`: the node end of a tunnel to an interactive
cluster. A tunnel on the login node runs it with `srun --jobid --overlap`
inside the cluster's own job, once per connection, and relays bytes between
its stdin/stdout and the API server on the node's 127.0.0.1:PORT. So the API
server stays bound to the node's loopback and no SSH to compute nodes is
needed: Slurm's own I/O forwarding carries the (still TLS) stream."""

from __future__ import annotations

import os
import socket
import sys
import threading

BUFFER = 1 << 16


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def relay(port: int, stdin: int = 0, stdout: int = 1) -> int:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError as e:
        print(f"kindslurm node-relay: cannot reach 127.0.0.1:{port} on this node ({e.strerror or e})", file=sys.stderr)
        return 1
    sock.settimeout(None)

    def upstream() -> None:
        try:
            while data := os.read(stdin, BUFFER):
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()

    threading.Thread(target=upstream, daemon=True).start()
    try:
        while data := sock.recv(BUFFER):
            _write_all(stdout, data)
    except OSError:
        pass
    finally:
        sock.close()
    return 0
