"""TLS started by a protocol once it has admitted a connection, so that connections count against a cap from
accept on, before their handshake (the relay's TLS port; OpenCall's HTTPS uses it too).

``loop.start_tls`` takes over a transport from the first step of a task, which may run after the loop has
already read from the socket: under uvloop about one connection in eight delivers its ClientHello to the
accepting protocol's ``data_received`` first (asyncio's own loop does not). Those bytes are raw TLS records.
:func:`secure` hands them to the TLS protocol right after start_tls has installed it, so no handshake is lost.
The protocol keeps what it receives before calling :func:`secure` (raw) apart from what arrives after
(decrypted, possibly before start_tls returns).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any


def hand_over(protocol: Any, data: bytes) -> None:
    """Give ``data`` to ``protocol`` as if the transport had read it (a buffered protocol, as uvloop's and
    asyncio's TLS protocols are, or a plain one)."""
    if not hasattr(protocol, "buffer_updated"):
        protocol.data_received(data)
        return
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(len(view))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)
        view = view[size:]


async def secure(raw: asyncio.Transport, protocol: asyncio.BaseProtocol, context: ssl.SSLContext,
                 handshake_timeout: float, early: bytes) -> asyncio.Transport:
    """The server side of a TLS handshake on ``raw`` for ``protocol``; ``early`` is what ``raw`` delivered
    before this call. Raises OSError when the handshake fails or times out."""
    loop = asyncio.get_running_loop()
    if early:
        # start_tls installs its protocol now, then queues that protocol's connection_made: the bytes follow
        # one callback later.
        loop.call_soon(lambda: loop.call_soon(hand_over, raw.get_protocol(), early))
    transport = await loop.start_tls(raw, protocol, context, server_side=True,
                                     ssl_handshake_timeout=handshake_timeout)
    if transport is None:  # the typeshed's Optional: start_tls returns the TLS transport or raises
        raise ConnectionError("start_tls returned no transport")
    return transport
