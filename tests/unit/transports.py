"""The transports scheduler tests run over: LocalTransport today; the SSH one joins the list when it exists."""

from __future__ import annotations

import pytest

from kindslurm.transport.base import Transport
from kindslurm.transport.local import LocalTransport

TRANSPORTS = [pytest.param(LocalTransport, id="local")]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> Transport:
    return request.param()
