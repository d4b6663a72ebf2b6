"""The relay's sockets: UDP, TCP and TLS listeners and the relay sockets, around :class:`Handlers`.

The client-side half of the hot path is :meth:`UdpListener.datagram_received`: a ChannelData datagram from a
client is a dict lookup for the client, a dict lookup for the channel and one ``sendto`` to the peer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, cast

from aioice.stun import Class, Method

from turn import stun
from turn.allocation import Address, Allocation, AllocationTable
from turn.auth import Authenticator
from turn.config import RelayConfig
from turn.counters import Counters
from turn.framing import PADDING, StreamFramer
from turn.handlers import Client, Handlers, Reply
from turn.listen import listening_sockets
from turn.netinfo import host_interfaces
from turn.policy import IPNetwork, PeerPolicy, RateLimiter, parse_networks
from turn.relay import CapacityError, RelayPorts, RelayProtocol, RelayProtocol6, set_dont_fragment

logger = logging.getLogger("turn")

AMPLIFICATION = 3  # an unauthenticated UDP reply is at most this many times the size of its request
SWEEP_INTERVAL = 1.0  # seconds between expiry sweeps; lifetimes are honoured to within this
LISTENER_BUFFER = 4 << 20
STREAM_WRITE_LIMIT = 1 << 20  # bytes queued to a slow TCP/TLS client beyond which relayed data is dropped

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def client_address(addr: Any) -> Address:
    """(host, port) of a socket address; an IPv4 client of a dual-stack socket as plain IPv4."""
    host, port = addr[0], addr[1]
    return (host[7:], port) if host.startswith("::ffff:") and "." in host else (host, port)


class Route:
    """What the hot paths need of one allocation: its live channels, permissions and relay socket."""

    __slots__ = ("permissions", "sendto", "to_peer")

    def __init__(self, allocation: Allocation, sendto: Callable[[bytes, Address], None]) -> None:
        self.to_peer = allocation.to_peer  # the allocation's own dicts, kept current by it
        self.permissions = allocation.permissions
        self.sendto = sendto


def build_peer_policy(config: RelayConfig, interfaces: Iterable[Interface]) -> PeerPolicy:
    """The peer policy of ``config``; ``interfaces`` are this host's, for ``auto`` and wildcard listens."""
    interfaces = list(interfaces)
    allowed = parse_networks(cidr for cidr in config.allowed_peers if cidr != "auto")
    automatic: list[IPNetwork] = []
    if "auto" in config.allowed_peers:
        automatic = [iface.network for iface in interfaces]
        automatic += [ipaddress.ip_network(address) for address in config.relay_addresses.values()]
    listen = ipaddress.ip_address(config.listen)
    own: list[IPNetwork] = parse_networks(["0.0.0.0/8", "::/128"])  # both mean "this host" as destinations
    if listen.is_unspecified:
        own += parse_networks(["127.0.0.0/8", "::1/128"])
        own += [ipaddress.ip_network(iface.ip) for iface in interfaces]
    else:
        own.append(ipaddress.ip_network(listen))
    ports = [port for port in (config.port, config.tls_port) if port is not None]
    return PeerPolicy(
        allowed=allowed,
        automatic=automatic,
        denied=parse_networks(config.denied_peers),
        own_endpoints=[(net, port) for net in own for port in ports],
    )


class TurnServer:
    """The STUN/TURN relay of a :class:`RelayConfig`; run it in any asyncio loop with start() and stop().

    ``counters`` is live from construction on. ``clock`` (monotonic seconds, for lifetimes) and ``wall_clock``
    (Unix time, for credential and nonce expiry) can be replaced in tests.
    """

    def __init__(
        self,
        config: RelayConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.counters = Counters()
        self.clock = clock
        self.table = AllocationTable(self.counters, config.max_allocations, config.max_allocations_per_user)
        self.auth = Authenticator(config.secret, config.realm, config.nonce_lifetime, wall_clock)
        self.ports = {
            family: RelayPorts(address, config.relay_ports, clock)
            for family, address in config.relay_addresses.items()
        }
        self.limiter = RateLimiter(config.unauthenticated_rate, config.unauthenticated_burst, clock)
        self.handlers: Handlers | None = None
        self._udp: list[asyncio.DatagramTransport] = []  # one per listening address; replies leave by the same
        self._stream_servers: list[asyncio.Server] = []
        self._connections: set[StreamConnection] = set()
        self.routes: dict[Any, Route] = {}  # by client address (UDP) or 5-tuple (TCP, TLS)
        self._own_ports = frozenset(port for port in (config.port, config.tls_port) if port is not None)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the relay is started and its UDP listeners are open."""
        return self.handlers is not None and bool(self._udp) and not any(udp.is_closing() for udp in self._udp)

    @property
    def listening(self) -> list[str]:
        """The addresses the UDP listeners are bound to, e.g. ``["0.0.0.0", "::"]``; empty when stopped."""
        return [udp.get_extra_info("sockname")[0] for udp in self._udp]

    async def start(self) -> None:
        """Open the listeners (UDP and TCP on ``port``, TLS on ``tls_port``); raises OSError if a port is taken.

        A wildcard ``listen`` (0.0.0.0 or ::) opens each listener on 0.0.0.0 and on :: (IPv6-only), or on
        0.0.0.0 alone on a host without IPv6 (turn.listen.listening_sockets).
        """
        if self.handlers is not None:
            raise RuntimeError("TurnServer already started")
        config = self.config
        loop = asyncio.get_running_loop()
        policy = build_peer_policy(config, host_interfaces())
        self.handlers = Handlers(config, self.table, self.auth, policy, self, self.counters, self.clock)
        pending: list[socket.socket] = []  # bound, not yet owned by a transport: closed if start() fails
        try:
            udp = listening_sockets(config.listen, config.port, socket.SOCK_DGRAM)
            pending += udp
            tcp = listening_sockets(config.listen, config.port, socket.SOCK_STREAM)
            pending += tcp
            tls = config.tls_context()
            tls_sockets = []
            if tls is not None and config.tls_port is not None:
                tls_sockets = listening_sockets(config.listen, config.tls_port, socket.SOCK_STREAM)
                pending += tls_sockets
            for sock in udp:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, LISTENER_BUFFER)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, LISTENER_BUFFER)
                transport, _ = await loop.create_datagram_endpoint(lambda: UdpListener(self), sock=sock)
                pending.remove(sock)
                self._udp.append(transport)
            for kind, sockets, context in (("tcp", tcp, None), ("tls", tls_sockets, tls)):
                for sock in sockets:
                    factory = partial(StreamConnection, self, kind)
                    self._stream_servers.append(await loop.create_server(factory, sock=sock, ssl=context))
                    pending.remove(sock)
        except BaseException:
            for sock in pending:
                sock.close()
            await self.stop()
            raise
        self._sweeper = loop.create_task(self._sweep_forever())
        logger.info(
            "TURN relay on %s port %d (udp, tcp)%s; relaying from %s ports %d-%d",
            " and ".join(self.listening), config.port, f", tls port {config.tls_port}" if config.tls_port else "",
            " and ".join(config.relay_addresses.values()), *config.relay_ports,
        )

    async def stop(self) -> None:
        """Close every listener, connection, allocation and reservation. Safe to call more than once."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for task in list(self._tasks):
            task.cancel()
        for server in self._stream_servers:
            server.close()
        for connection in list(self._connections):
            connection.transport.abort()
        for server in self._stream_servers:
            await server.wait_closed()
        self._stream_servers.clear()
        for allocation in self.table:
            self.table.remove(allocation)
            self.release(allocation)
        for ports in self.ports.values():
            ports.close()
        listeners = [cast(UdpListener, udp.get_protocol()) for udp in self._udp]
        for udp in self._udp:
            udp.close()
        self._udp.clear()
        for listener in listeners:
            await listener.closed  # transports close on a later loop iteration: the ports are free after it
        self.handlers = None

    # The RelaySockets side of the handlers.

    async def open(self, allocation: Allocation, client: Client, even_port: bool | None,
                   token: bytes | None) -> None:
        """Bind ``allocation``'s relay socket and start relaying from it (see Handlers.RelaySockets)."""
        if token is not None:
            allocation.family, sock = self._take_reservation(token)
        else:
            ports = self.ports[allocation.family]
            sock, allocation.reservation_token = ports.bind(even_port is not None, bool(even_port))
        try:
            if allocation.dont_fragment:
                set_dont_fragment(sock)
            protocol = RelayProtocol6 if sock.family == socket.AF_INET6 else RelayProtocol
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: protocol(allocation, client.sendto, client.reply_to, self.counters), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        allocation.relay = transport
        allocation.relayed = sock.getsockname()[:2]
        self.routes[self._route_key(allocation)] = Route(allocation, transport.sendto)

    def _take_reservation(self, token: bytes) -> tuple[int, socket.socket]:
        for family, ports in self.ports.items():
            if ports.holds(token):
                return family, ports.take(token)
        raise CapacityError("unknown or expired reservation token")

    def release(self, allocation: Allocation) -> None:
        """Close ``allocation``'s relay socket and stop routing its ChannelData."""
        if allocation.relay is not None:
            allocation.relay.close()
        key = self._route_key(allocation)
        route = self.routes.get(key)
        if route is not None and route.to_peer is allocation.to_peer:
            del self.routes[key]

    @staticmethod
    def _route_key(allocation: Allocation) -> Any:
        five_tuple = allocation.five_tuple
        return five_tuple[2] if five_tuple[0] == "udp" else five_tuple

    def set_dont_fragment(self, allocation: Allocation) -> None:
        """Set DF on ``allocation``'s relay socket for the rest of its life."""
        if allocation.relay is not None:
            sock = allocation.relay.get_extra_info("socket")
            set_dont_fragment(sock)
            allocation.dont_fragment = True

    # Requests and indications.

    def relay_send_indication(self, route: Route, data: bytes) -> bool:
        """The Send indication fast path (RFC 8656 §11.2): True when ``data`` was relayed or rightly dropped,
        False when it needs the full decoder and handler."""
        parsed = stun.parse_send_indication(data)
        if parsed is None:
            return False
        peer, payload = parsed
        if peer[0] not in route.permissions:
            return True  # no permission: silently dropped
        if peer[1] in self._own_ports:
            return False  # maybe one of our own listening sockets: the handler applies the whole policy
        route.sendto(payload, peer)
        counters = self.counters
        counters.packets_to_peers += 1
        counters.bytes_to_peers += len(payload)
        return True

    def on_stun(self, data: bytes, client: Client) -> None:
        """Handle one STUN message from ``client``; malformed ones are dropped (RFC 8489 §6.3)."""
        handlers = self.handlers
        if handlers is None:
            return
        try:
            request = stun.decode(data)
        except ValueError:
            return
        message = request.message
        if message.message_class == Class.REQUEST:
            method = message.message_method
            if method == Method.ALLOCATE:
                task = asyncio.get_running_loop().create_task(self._allocate(handlers, request, client, len(data)))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return
            handler = handlers.requests.get(method)
            if handler is None:
                reply = Reply(stun.error(message, 400, SOFTWARE=self.config.software))
            else:
                reply = handler(request, client)
            self._send_reply(reply, request, client, len(data))
        elif message.message_class == Class.INDICATION and message.message_method == Method.SEND:
            handlers.send(request, client)
        # Binding indications (keepalives) and stray responses need nothing (RFC 8489 §6.3.2, §6.3.3).

    async def _allocate(self, handlers: Handlers, request: stun.Decoded, client: Client, size: int) -> None:
        try:
            reply = await handlers.allocate(request, client)
        except OSError as exc:
            logger.warning("allocation for %s failed: %s", client.address, exc)
            return
        if reply is not None:
            self._send_reply(reply, request, client, size)

    def _send_reply(self, reply: Reply, request: stun.Decoded, client: Client, size: int) -> None:
        """Sign and send ``reply``. Over UDP an unauthenticated reply is rate-limited per source IP and kept
        within AMPLIFICATION times the request, so spoofed requests cannot turn the relay into a reflector."""
        message = reply.message
        if reply.key is not None or not client.spoofable:
            client.sendto(stun.encode(message, reply.key), client.reply_to)
            return
        if not self.limiter.allow(client.address[0]):
            self.counters.rate_limited += 1
            return
        data = stun.encode(message, None, request.fingerprinted)
        if len(data) > AMPLIFICATION * size:
            message.attributes.pop("FINGERPRINT", None)
            message.attributes.pop("SOFTWARE", None)
            data = stun.encode(message, None, fingerprint=False)
            if len(data) > AMPLIFICATION * size:
                self.counters.amplification_drops += 1
                return
        client.sendto(data, client.reply_to)

    def on_connection_lost(self, connection: StreamConnection) -> None:
        """A TCP/TLS client went away: so does its allocation (RFC 8656 §3.1)."""
        self._connections.discard(connection)
        allocation = self.table.get(connection.client.five_tuple)
        if allocation is not None and self.handlers is not None:
            self.handlers.delete(allocation)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.sweep()

    def sweep(self) -> None:
        """Expire allocations, permissions, channels and reservations; forget refilled rate-limit buckets."""
        for allocation in self.table.expire(self.clock()):
            logger.info("allocation %s expired", allocation.five_tuple)
            self.release(allocation)
        for ports in self.ports.values():
            ports.expire()
        self.limiter.prune()


class UdpListener(asyncio.DatagramProtocol):
    """STUN and TURN over UDP on the listening port, with the ChannelData fast path."""

    def __init__(self, server: TurnServer) -> None:
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


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS client: framing in (RFC 8656 §12.5), padding out, allocation gone with the connection."""

    def __init__(self, server: TurnServer, kind: str) -> None:
        self.server = server
        self.kind = kind
        self.framer = StreamFramer()
        self.transport: asyncio.Transport
        self.client: Client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        five_tuple = (self.kind, transport.get_extra_info("sockname"), peer)
        self.client = Client(five_tuple, client_address(peer), self.send, None, spoofable=False)
        self.server._connections.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.framer.feed(data)
        except ValueError:
            self.transport.abort()
            return
        server = self.server
        for frame in frames:
            route = server.routes.get(self.client.five_tuple)
            if frame[0] >= 0x40:  # ChannelData, padded (RFC 8656 §12.5)
                peer = route.to_peer.get(frame[0] << 8 | frame[1]) if route is not None else None
                if route is not None and peer is not None:
                    size = frame[2] << 8 | frame[3]
                    route.sendto(frame[4 : 4 + size], peer)
                    counters = server.counters
                    counters.packets_to_peers += 1
                    counters.bytes_to_peers += size
            elif not (route is not None and frame[1] == 0x16 and frame[0] == 0
                      and server.relay_send_indication(route, frame)):
                server.on_stun(frame, self.client)

    def send(self, data: bytes, _addr: Any = None) -> None:
        """Write a message to the client, padded to a multiple of 4 bytes; dropped when the client lags."""
        if self.transport.is_closing() or self.transport.get_write_buffer_size() > STREAM_WRITE_LIMIT:
            return
        self.transport.write(data + PADDING[len(data) % 4])

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.on_connection_lost(self)
