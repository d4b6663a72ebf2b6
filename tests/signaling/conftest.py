"""Fixtures for the signaling tests: transports, real Socket.IO clients, a server with short timers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.signaling.clients import TRANSPORTS, PyPeer, ensure_node_modules
from tests.support import Server, serve

SHORT_RING = 5  # the shortest ring_timeout the config allows
# A call whose party disconnected waits this long for a resume (signaling.resume_grace, 15 s by default): short,
# so that the tests of a disconnect mid-call see call-ended within their usual wait.
RESUME_GRACE = 2


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """Each test that uses it runs once over WebSocket and once over HTTP long-polling."""
    return str(request.param)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The signaling tests' shared server: like the root one, with a resume grace of RESUME_GRACE seconds."""
    yield from serve(tmp_path_factory, "signaling", {"signaling": {"resume_grace": RESUME_GRACE}})


@pytest.fixture(scope="session")
def short_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A dedicated server with the shortest ring timeout."""
    yield from serve(tmp_path_factory, "signaling-short",
                     {"ring_timeout": SHORT_RING, "signaling": {"resume_grace": RESUME_GRACE}})


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of the test module's own: only its sockets are on it, so :func:`until_sockets` can count them."""
    yield from serve(tmp_path_factory, "signaling-own", {"signaling": {"resume_grace": RESUME_GRACE}})


class Connector:
    """Opens python-socketio clients on the test's transport and closes them all at teardown."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.opened: list[PyPeer] = []

    def peer(self, label: str, transport: str | None = None) -> PyPeer:
        """An unconnected client (for tests that expect the connection to be refused)."""
        transport = transport or self.transport
        peer = PyPeer(f"{label}[{transport}]", transport)
        self.opened.append(peer)
        return peer

    async def __call__(self, server: Server, label: str = "peer", *, auth: Any = None,
                       headers: dict[str, str] | None = None, transport: str | None = None) -> PyPeer:
        return await self.peer(label, transport).connect(server.base_url, auth=auth, headers=headers)

    async def close(self) -> None:
        await asyncio.gather(*(peer.close() for peer in self.opened), return_exceptions=True)


@pytest.fixture
async def connect(transport: str) -> AsyncIterator[Connector]:
    """``await connect(server, "alice", auth=…, headers=…)`` → a connected :class:`PyPeer` on the test's
    transport (so the test runs on both)."""
    connector = Connector(transport)
    yield connector
    await connector.close()


@pytest.fixture
async def connect_ws() -> AsyncIterator[Connector]:
    """Like ``connect`` for tests that pick each client's transport themselves (``transport=``)."""
    connector = Connector("websocket")
    yield connector
    await connector.close()


@pytest.fixture(scope="session")
def node_modules() -> None:
    """socket.io-client from npm, installed with ``npm ci`` from the committed lock file when missing."""
    ensure_node_modules()
