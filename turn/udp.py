"""STUN and TURN over UDP on the listening port: the client side of the relay's hot path.

:meth:`UdpListener.datagram_received` relays a client's ChannelData with a dict lookup for the client, a dict
lookup for the channel and one ``sendto`` to the peer; the rest goes to :meth:`TurnServer.on_stun`.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from turn.handlers import Client
from turn.host import RelayHost
from turn.listen import client_address


class UdpListener(asyncio.DatagramProtocol):
    """STUN and TURN over UDP on the listening port, with the ChannelData fast path."""

    def __init__(self, server: RelayHost) -> None:
        self.server = server
        self.routes = server.routes
        self.counters = server.counters
        self.transport: asyncio.DatagramTransport | None = None
        self.local: Any = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # asyncio's own is no subclass of it
        self.local = self.transport.get_extra_info("sockname")

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) >= 4:
            first = data[0]
            if 0x40 <= first < 0x80:  # ChannelData (RFC 8656 §12.4)
                route = self.routes.get(addr)
                if route is not None:
                    peer = route.to_peer.get(first << 8 | data[1])
                    size = data[2] << 8 | data[3]
                    if peer is not None and size + 4 <= len(data):  # else discarded (RFC 8656 §12.6)
                        route.sendto(data[4 : 4 + size], peer)
                        counters = self.counters
                        counters.packets_to_peers += 1
                        counters.bytes_to_peers += size
                return
            if first == 0 and data[1] == 0x16:  # a Send indication
                route = self.routes.get(addr)
                if route is not None and self.server.relay_send_indication(route, data):
                    return
        assert self.transport is not None
        client = Client(("udp", self.local, addr), client_address(addr), self.transport.sendto, addr,
                        spoofable=True)
        self.server.on_stun(data, client)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors for replies to clients that went away
