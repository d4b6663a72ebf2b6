"""What a listener (udp.py, stream.py) uses of the server that owns it: a protocol, so that the listeners do not
import the server that imports them. :class:`~turn.server.TurnServer` is the one implementation."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from turn.allocation import AllocationTable
from turn.config import RelayConfig
from turn.counters import Counters
from turn.gate import ConnectionGate
from turn.handlers import Client
from turn.routes import Route


class RelayHost(Protocol):
    """The server's state and entry points as its listeners see them."""

    config: RelayConfig
    counters: Counters
    gate: ConnectionGate
    table: AllocationTable
    routes: dict[Any, Route]
    connections: set[Any]  # the open TCP/TLS connections (stream.StreamConnection)
    clock: Callable[[], float]

    def spawn(self, work: Coroutine[Any, Any, None]) -> None: ...

    def on_stun(self, data: bytes, client: Client) -> None: ...

    def relay_send_indication(self, route: Route, data: bytes | memoryview) -> bool: ...

    def on_connection_lost(self, connection: Any) -> None: ...
