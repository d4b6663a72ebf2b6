"""STUN and TURN over UDP on the listening port: the client side of the relay's hot path.

The listening socket is read by the relay itself (``loop.add_reader``), not by an asyncio transport, so that one
wake-up takes in a whole batch with one ``recvmmsg`` and everything sent to clients in one turn of the loop
leaves with one ``sendmmsg`` (turn.batchio; why: docs/benchmarks.md, "Where the relay's time goes").

:meth:`UdpListener._readable` relays a client's ChannelData with a dict lookup for the client, a dict lookup for
the channel and one ``send`` on the peer's connected socket (turn.relay.PeerLink), straight from the receive
buffer; the rest goes to :meth:`UdpListener.datagram_received` and from there to :meth:`TurnServer.on_stun`.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from turn.batchio import Receiver, Sender, address
from turn.handlers import Client
from turn.host import RelayHost
from turn.listen import client_address

BATCHES_PER_CALLBACK = 4  # recvmmsg calls per wake-up (32 datagrams each), so HTTPS gets its turn in between
ADDRESS_CACHE = 4096  # client sockaddrs whose address tuples are kept, so a packet's source costs a dict lookup


class UdpListener:
    """STUN and TURN over UDP on one listening socket, with the ChannelData fast path."""

    def __init__(self, server: RelayHost, sock: socket.socket) -> None:
        self.server = server
        self.routes = server.routes
        self.counters = server.counters
        self.sock = sock
        self.family = sock.family
        self.local: Any = sock.getsockname()
        self._loop = asyncio.get_running_loop()
        self._fd = sock.fileno()
        self._receiver = Receiver(sock.family)
        self.outbox = Sender(self._fd, sock.family, self._loop.call_soon)
        self.sendto = self.outbox.add  # to a client: queued, it leaves with this turn of the loop's batch
        self._addresses: dict[bytes, Any] = {}
        self._loop.add_reader(self._fd, self._readable)

    @property
    def closed(self) -> bool:
        return self.sock.fileno() == -1

    def close(self) -> None:
        """Stop reading, send what is queued and close the socket."""
        if not self.closed:
            self._loop.remove_reader(self._fd)
            self.outbox.close()
            self.sock.close()

    def _readable(self) -> None:
        """Relay a batch of ChannelData, hand the rest to :meth:`datagram_received`, send what that queued.

        The ChannelData fast path of :meth:`datagram_received` is repeated here, inline: on this path a method
        call or a counter update per datagram costs as much as the lookups themselves (docs/benchmarks.md).
        """
        receiver = self._receiver
        data, slot, name_size = receiver.data, receiver.slot, receiver.name_size
        routes, addresses = self.routes, self._addresses
        packets = octets = 0
        for _ in range(BATCHES_PER_CALLBACK):
            lengths, sources = receiver.receive(self._fd)
            start = name = 0
            for length in lengths:
                source = sources[name : name + name_size]
                first = data[start]
                route = routes.get(addresses.get(source)) if 0x40 <= first < 0x80 and length >= 4 else None
                if route is not None:  # ChannelData (RFC 8656 §12.4) from a client with an allocation
                    peer = route.to_peer.get(first << 8 | data[start + 1])
                    size = data[start + 2] << 8 | data[start + 3]
                    if peer is not None and size + 4 <= length:  # else discarded (RFC 8656 §12.6)
                        send = route.links.get(peer)
                        try:
                            if send is None:
                                send = route.connect(peer)
                            send(data[start + 4 : start + 4 + size])
                            packets += 1
                            octets += size
                        except OSError:
                            pass  # refused by the kernel (buffer full, firewall): UDP may drop it
                else:
                    self.datagram_received(data[start : start + length], source)
                start += slot
                name += name_size
            if len(lengths) < receiver.count:
                break
        self.counters.packets_to_peers += packets
        self.counters.bytes_to_peers += octets
        self.outbox.flush()

    def datagram_received(self, data: memoryview | bytes, source: bytes) -> None:
        """One datagram from the client at ``source`` (a sockaddr); ``data`` is only valid during the call."""
        addr = self._addresses.get(source)
        if addr is None:
            addr = self._learn(source)
        if len(data) >= 4:
            first = data[0]
            if 0x40 <= first < 0x80:  # ChannelData (RFC 8656 §12.4)
                route = self.routes.get(addr)
                if route is not None:
                    peer = route.to_peer.get(first << 8 | data[1])
                    size = data[2] << 8 | data[3]
                    if peer is not None and size + 4 <= len(data):  # else discarded (RFC 8656 §12.6)
                        try:
                            route.link(peer)(data[4 : 4 + size])
                        except OSError:
                            return  # refused by the kernel (buffer full, firewall): UDP may drop it
                        counters = self.counters
                        counters.packets_to_peers += 1
                        counters.bytes_to_peers += size
                return
            if first == 0 and data[1] == 0x16:  # a Send indication
                route = self.routes.get(addr)
                if route is not None and self.server.relay_send_indication(route, data):
                    return
        client = Client(("udp", self.local, addr), client_address(addr), self.sendto, source, spoofable=True)
        self.server.on_stun(bytes(data), client)

    def _learn(self, source: bytes) -> Any:
        if len(self._addresses) >= ADDRESS_CACHE:
            self._addresses.clear()
        addr = self._addresses[source] = address(self.family, source)
        return addr
