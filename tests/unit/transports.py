"""The transports scheduler tests run over: this host, and SSH to an SSH server
in the test process (tests/unit/sshserver.py) whose commands run through
kindslurm.proc.run, so the tests' fake tools answer over both."""

from __future__ import annotations

from pathlib import Path

import pytest

from kindslurm.transport.base import Transport
from kindslurm.transport.local import LocalTransport


def ssh_transport(request: pytest.FixtureRequest, tmp: Path) -> Transport:
    from kindslurm.transport.ssh import SSHTransport
    from kindslurm.transport.sshtarget import Target
    from tests.unit.sshserver import SSHServer

    server = SSHServer(tmp)
    request.addfinalizer(server.close)
    t = SSHTransport(Target("127.0.0.1", user=server.user, port=server.port, key=server.key_file,
                            known_hosts=server.known_hosts), reconnect_for=10)
    request.addfinalizer(t.close)
    return t


@pytest.fixture(params=["local", "ssh"])
def transport(request: pytest.FixtureRequest, tmp_path: Path) -> Transport:
    if request.param == "local":
        return LocalTransport()
    return ssh_transport(request, tmp_path)
