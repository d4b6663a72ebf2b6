"""Relay sockets: binding them within relay_ports (with EVEN-PORT reservations) and the peer-side protocol.

:class:`PeerSocket` is half of the hot path: a datagram from a peer that has a channel becomes one ChannelData
frame queued for the client, after a single dict lookup (RFC 8656 §12.7).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import struct
import time
from collections.abc import Callable
from typing import Any, Protocol

from turn.allocation import Address, Allocation
from turn.batchio import MAX_DATAGRAM
from turn.counters import Counters
from turn.indications import data_indication_head, padded

MAX_LINKS = 8  # connected sockets per allocation, one per peer it sends to (PeerSocket)
DRAIN = 16  # datagrams read from a peer-side socket per wake-up (PeerSocket)
RESERVATION_LIFETIME = 30.0  # seconds a port reserved by EVEN-PORT's R bit is kept (RFC 8656 §7.2)
SOCKET_BUFFER = 256 << 10  # per relay socket: one client's peers, a few hundred packets a second
# Linux values from <linux/in.h>; Python's socket module does not export them.
IP_MTU_DISCOVER = 10
IP_PMTUDISC_DO = 2
_CHANNEL_HEADER = struct.Struct("!HH").pack


class CapacityError(Exception):
    """No relay port could be bound, or a reservation token is unknown: 508 (RFC 8656 §7.2)."""


def set_dont_fragment(sock: socket.socket) -> None:
    """Send every datagram of ``sock`` with the DF bit set (DONT-FRAGMENT, RFC 8656 §18.9)."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)


class RelayPorts:
    """Binds UDP relay sockets on one address within a port range, and holds EVEN-PORT reservations."""

    def __init__(
        self, ip: str, ports: tuple[int, int], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ip = ip
        self.low, self.high = ports
        self.family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        self.clock = clock
        self._reserved: dict[bytes, tuple[socket.socket, float]] = {}  # token -> (socket, expiry)

    def bind(self, even: bool = False, reserve_next: bool = False) -> tuple[socket.socket, bytes | None]:
        """A socket on a free port (even when asked); with ``reserve_next``, port+1 is kept under a token."""
        span = self.high - self.low + 1
        start = secrets.randbelow(span)
        for offset in range(span):
            port = self.low + (start + offset) % span
            if even and (port % 2 or (reserve_next and port + 1 > self.high)):
                continue
            sock = self._try_bind(port)
            if sock is None:
                continue
            if not reserve_next:
                return sock, None
            following = self._try_bind(port + 1)
            if following is None:
                sock.close()
                continue
            token = os.urandom(8)
            self._reserved[token] = (following, self.clock() + RESERVATION_LIFETIME)
            return sock, token
        raise CapacityError("no free relay port")

    def holds(self, token: bytes) -> bool:
        """Whether a port is reserved under ``token``."""
        return token in self._reserved

    def take(self, token: bytes) -> socket.socket:
        """The socket reserved under ``token`` (RFC 8656 §7.2), which it no longer holds."""
        reserved = self._reserved.pop(token, None)
        if reserved is None:
            raise CapacityError("unknown or expired reservation token")
        return reserved[0]

    def expire(self) -> None:
        """Release the reservations nobody claimed in time."""
        now = self.clock()
        for token in [t for t, (_, expiry) in self._reserved.items() if expiry <= now]:
            self._reserved.pop(token)[0].close()

    def close(self) -> None:
        """Release every reservation."""
        for sock, _ in self._reserved.values():
            sock.close()
        self._reserved.clear()

    def _try_bind(self, port: int) -> socket.socket | None:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            if self.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            sock.bind((self.ip, port))
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        return sock


class ClientSend(Protocol):
    """How a message reaches a client: ``prefix + data`` to ``reply_to`` (a ChannelData header is a prefix, so
    that the relayed payload is not copied into a new frame first)."""

    def __call__(self, data: bytes | memoryview, reply_to: Any, prefix: bytes = b"", /) -> None: ...


class PeerSocket:
    """One allocation's relay socket, its relayed transport address: what peers send goes to the client.

    A peer the client sends to gets a socket of its own, a :class:`PeerLink` (up to ``MAX_LINKS`` per
    allocation, and ``max_links`` over all allocations, so that the relay's descriptors stay within what its
    owner sized for it: one link per allocation on average, a call's one peer): bound to the same address
    and port with SO_REUSEPORT and connected to the peer, as coturn does. The kernel then hands that peer's
    datagrams to the link, and a connected socket sends without an address to parse or a route to look up per
    packet (docs/benchmarks.md: 8% less CPU per relayed packet). What other peers send still arrives here.

    Sockets are read by the relay itself (``loop.add_reader``), up to ``DRAIN`` datagrams per wake-up: reading
    one costs one system call less per wake-up (the one that finds the socket empty), but under load each turn
    of the loop reads up to 128 datagrams from clients on the listening socket, and one per peer fell behind
    until the peers' sockets overflowed (2-3.5% lost at 40 clients with 1,200-byte payloads, docs/benchmarks.md).

    ``to_client(data, client_addr, prefix)`` sends to the client: queued for the listener's next ``sendmmsg``
    over UDP (turn.udp), written with its padding over TCP. A peer with a channel gets ChannelData (RFC 8656
    §12.7); one with only a permission gets a Data indication (§11.3); anything else is dropped (§9).
    """

    def __init__(
        self,
        sock: socket.socket,
        allocation: Allocation,
        to_client: ClientSend,
        client_addr: Any,
        counters: Counters,
        max_links: int,
    ) -> None:
        self.sock = sock
        self.channels = allocation.to_client  # the same dicts the allocation keeps up to date
        self.permissions = allocation.permissions
        self.to_client = to_client
        self.client_addr = client_addr
        self.counters = counters
        self.max_links = max_links
        self.local = sock.getsockname()
        self.links: dict[Address, Callable[[bytes | memoryview], object]] = {}  # peer -> how to send to it
        self._link_sockets: dict[Address, PeerLink] = {}
        self.dont_fragment = False
        # Set after bind, so that the bind itself failed on a port in use (RelayPorts), and before any link binds.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self._recvfrom = sock.recvfrom
        self._ipv6 = sock.family == socket.AF_INET6
        self._fd = sock.fileno()
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self._fd, self._readable)

    def sendto(self, data: bytes | memoryview, addr: Address) -> None:
        """Send ``data`` to the peer ``addr``; a datagram the kernel refuses is dropped, as UDP may."""
        with contextlib.suppress(OSError):
            self.link(addr)(data)

    def link(self, peer: Address) -> Callable[[bytes | memoryview], object]:
        """How to send to ``peer``: its :class:`PeerLink`'s ``send``, made now if need be, or when the
        allocation has ``MAX_LINKS`` of them already, the relay ``max_links`` (or the kernel refuses one), a
        ``sendto`` from here. Calls raise OSError when the kernel refuses a datagram."""
        send = self.links.get(peer)
        if send is None:
            link = None
            if len(self._link_sockets) < MAX_LINKS and self.counters.peer_links < self.max_links:
                with contextlib.suppress(OSError):
                    link = PeerLink(self, peer)
            if link is not None:
                self._link_sockets[peer] = link
                self.counters.peer_links += 1
                send = link.sock.send
            else:
                send = _sendto(self.sock, peer)
            self.links[peer] = send
        return send

    def prune(self) -> None:
        """Close the links to peers that hold no permission any more (RFC 8656 §9: nothing may pass)."""
        for peer in [peer for peer in self.links if peer[0] not in self.permissions]:
            del self.links[peer]
            link = self._link_sockets.pop(peer, None)
            if link is not None:
                link.close()

    def set_dont_fragment(self) -> None:
        """Send with the DF bit from now on, from this socket and every link (RFC 8656 §18.9)."""
        self.dont_fragment = True
        set_dont_fragment(self.sock)
        for link in self._link_sockets.values():
            set_dont_fragment(link.sock)

    def close(self) -> None:
        """Stop reading, close the links and release the port."""
        if self.sock.fileno() != -1:
            for link in self._link_sockets.values():
                link.close()
            self._link_sockets.clear()
            self.links.clear()
            self.loop.remove_reader(self._fd)
            self.sock.close()

    def _readable(self) -> None:
        recvfrom, from_peer = self._recvfrom, self.from_peer
        for _ in range(DRAIN):
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except OSError:
                return  # empty now, or an ICMP error about an earlier datagram
            from_peer(data, addr[:2] if self._ipv6 else addr)  # IPv6: (host, port, flowinfo, scope_id)

    def from_peer(self, data: bytes, peer: Address) -> None:
        """Relay ``data`` from ``peer`` to the client, if the client may hear from it."""
        channel = self.channels.get(peer)
        if channel is not None:
            self.to_client(data, self.client_addr, _CHANNEL_HEADER(channel, len(data)))
        elif peer[0] in self.permissions:
            self.to_client(padded(data), self.client_addr, data_indication_head(peer, len(data)))
        else:
            return
        counters = self.counters
        counters.packets_to_clients += 1
        counters.bytes_to_clients += len(data)


class PeerLink:
    """A socket of one allocation for one peer: bound to the relayed address and port, connected to the peer."""

    def __init__(self, relay: PeerSocket, peer: Address) -> None:
        self.relay = relay
        self.peer = peer
        sock = socket.socket(relay.sock.family, socket.SOCK_DGRAM)
        try:
            if sock.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            if relay.dont_fragment:
                set_dont_fragment(sock)
            sock.bind(relay.local)
            sock.connect(peer)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._recv = sock.recv
        self._fd = sock.fileno()
        relay.loop.add_reader(self._fd, self._readable)

    def close(self) -> None:
        relay = self.relay
        relay.loop.remove_reader(self._fd)
        self.sock.close()
        relay.counters.peer_links -= 1

    def _readable(self) -> None:
        recv, from_peer, peer = self._recv, self.relay.from_peer, self.peer
        for _ in range(DRAIN):
            try:
                data = recv(MAX_DATAGRAM)
            except OSError:
                return  # empty now, or an ICMP error (the peer's port is closed)
            from_peer(data, peer)


def _sendto(sock: socket.socket, peer: Address) -> Callable[[bytes | memoryview], object]:
    sendto = sock.sendto
    return lambda data: sendto(data, peer)
