"""Relay sockets: binding them within relay_ports (with EVEN-PORT reservations) and the peer-side protocol.

:class:`RelayProtocol` is half of the hot path: a datagram from a peer that has a channel becomes one
ChannelData ``sendto`` to the client, after a single dict lookup (RFC 8656 §12.7).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import struct
import time
from collections.abc import Callable
from typing import Any, cast

from turn.allocation import Address, Allocation
from turn.counters import Counters
from turn.indications import data_indication

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


class RelayProtocol(asyncio.DatagramProtocol):
    """One allocation's relayed transport address: what peers send is forwarded to the client.

    ``to_client(frame, client_addr)`` sends to the client (over TCP it adds the padding). A peer with a channel
    gets ChannelData (RFC 8656 §12.7); one with only a permission gets a Data indication (§11.3); anything
    else is dropped (§9).
    """

    def __init__(
        self,
        allocation: Allocation,
        to_client: Callable[[bytes, Any], None],
        client_addr: Any,
        counters: Counters,
    ) -> None:
        self.channels = allocation.to_client  # the same dicts the allocation keeps up to date
        self.permissions = allocation.permissions
        self.to_client = to_client
        self.client_addr = client_addr
        self.counters = counters
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # asyncio's own is no subclass of it

    def datagram_received(self, data: bytes, addr: Address) -> None:
        channel = self.channels.get(addr)
        if channel is not None:
            self.to_client(_CHANNEL_HEADER(channel, len(data)) + data, self.client_addr)
        elif addr[0] in self.permissions:
            self.to_client(data_indication(addr, data), self.client_addr)
        else:
            return
        counters = self.counters
        counters.packets_to_clients += 1
        counters.bytes_to_clients += len(data)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors from peers (RFC 8656 §11.5 would relay them; we drop them, as is allowed)


class RelayProtocol6(RelayProtocol):
    """For IPv6 relay sockets, whose peer addresses come as (host, port, flowinfo, scope_id)."""

    def datagram_received(self, data: bytes, addr: Any) -> None:
        super().datagram_received(data, addr[:2])
