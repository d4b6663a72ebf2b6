"""Limits of the HTTPS server: Sanic's timeouts and size caps from ``server``, and a connection cap.

Sanic has timeouts (REQUEST_TIMEOUT for a slow request, KEEP_ALIVE_TIMEOUT for an idle connection,
RESPONSE_TIMEOUT) and size caps, all set here explicitly, but no cap on connections: its protocol serves
every socket asyncio accepts. :func:`capped_protocol` is the smallest wrapper that adds one: a subclass of the
protocol class Sanic would use, which asks a :class:`turn.gate.ConnectionGate` in ``connection_made`` and
answers 503 to a connection over the cap, then closes it. Subclassing the protocol (Sanic's documented
``protocol=`` argument) rather than wrapping the listening socket's accept keeps Sanic's own connection
tracking, graceful shutdown and WebSocket upgrade untouched.

Over HTTPS the listening sockets are plain TCP servers and the protocol does the TLS handshake itself
(turn.tlsaccept, with ``server.tls_handshake_timeout``), as the relay's TLS listener does: a connection is
counted from accept on, so connections that never finish a handshake fill the cap instead of the memory, and a
refused one is closed at once, before any handshake is spent on it (no 503 can be sent without one; over plain
HTTP the refusal is a 503).
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Callable, Iterable
from typing import Any, cast

from sanic import Sanic
from sanic.server.protocols.http_protocol import HttpProtocol
from sanic.server.protocols.websocket_protocol import WebSocketProtocol

from opencall.config import ServerConfig
from turn.gate import ConnectionGate
from turn.listen import client_address
from turn.tlsaccept import secure

REQUEST_MAX_HEADER_SIZE = 8192  # Sanic's default, set explicitly: a request's line and headers
_BODY = b'{"error": "Too many connections, try again later"}'
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
           b"Connection: close\r\nContent-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY)


def configure(app: Sanic, server: ServerConfig) -> None:
    """Set Sanic's timeouts and size caps from ``server``."""
    app.config.REQUEST_TIMEOUT = server.request_timeout
    app.config.KEEP_ALIVE_TIMEOUT = server.keep_alive_timeout
    app.config.RESPONSE_TIMEOUT = server.response_timeout
    app.config.REQUEST_MAX_SIZE = server.max_request_size
    app.config.REQUEST_MAX_HEADER_SIZE = REQUEST_MAX_HEADER_SIZE


def make_gate(server: ServerConfig) -> ConnectionGate:
    """The HTTPS connection gate of ``server``: operators get ``operator_connections`` beyond the cap."""
    return ConnectionGate(server.max_connections, server.max_connections_per_ip, server.operator_connections)


def operator_check(networks: Iterable[str]) -> Callable[[str], bool]:
    """Whether an address is the operator's: in one of ``networks`` (the config's ``metrics.allow``)."""
    parsed = [ipaddress.ip_network(cidr) for cidr in networks]

    def is_operator(ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in parsed)

    return is_operator


def capped_protocol(app: Sanic, gate: ConnectionGate, is_operator: Callable[[str], bool],
                    tls: ssl.SSLContext | None = None, handshake_timeout: float = 10.0) -> type[HttpProtocol]:
    """The protocol class Sanic would use for ``app`` (WebSocket-capable when a WebSocket route exists, as
    Socket.IO adds one), admitting each connection through ``gate`` when it is accepted, then doing the TLS
    handshake with ``tls`` (when given) before Sanic's protocol starts."""
    base: type[HttpProtocol] = WebSocketProtocol if app.websocket_enabled else HttpProtocol

    class CappedProtocol(base):  # type: ignore[valid-type,misc]  # a class chosen at run time
        __slots__ = ("_early", "_gate_ip", "_handshake", "_raw")  # Sanic's protocols have slots

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._gate_ip: str | None = None
            self._raw: bytearray | None = None  # TLS records read before the handshake started
            self._early: bytearray | None = None  # decrypted before Sanic's protocol started
            peer: Any = transport.get_extra_info("peername")
            ip = client_address(peer)[0] if peer else ""
            raw = cast(asyncio.Transport, transport)
            if gate.admit(ip, privileged=is_operator(ip)) is not None:
                if tls is None:
                    raw.write(REFUSAL)
                    raw.close()
                else:
                    raw.abort()
                return
            self._gate_ip = ip
            if tls is None:
                super().connection_made(transport)
                return
            self._raw, self._early = bytearray(), bytearray()
            self._handshake = asyncio.get_running_loop().create_task(self._secure(raw, tls))

        async def _secure(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
            early, self._raw = bytes(self._raw or b""), None
            try:
                transport = await secure(raw, self, context, handshake_timeout, early)
            except (OSError, asyncio.CancelledError):  # timed out, a bad handshake, the client left, shutdown
                raw.abort()
                self._release()
                return
            super().connection_made(transport)
            decrypted, self._early = self._early, None
            if decrypted:
                super().data_received(bytes(decrypted))

        def data_received(self, data: bytes) -> None:
            if self._raw is not None:
                self._raw += data
            elif self._early is not None:
                self._early += data
            else:
                super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            started = self._early is None and self._raw is None  # Sanic's protocol runs
            if self._release() and started:
                super().connection_lost(exc)

        def _release(self) -> bool:
            """Give back this connection's place in the gate, once; whether it had one."""
            if self._gate_ip is None:
                return False  # refused, or released already
            gate.release(self._gate_ip)
            self._gate_ip = None
            return True

    return CappedProtocol
