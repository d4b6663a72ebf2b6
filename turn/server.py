"""The relay's sockets: UDP, TCP and TLS listeners and the relay sockets, around :class:`Handlers`.

The client-side half of the hot path is :meth:`UdpListener.datagram_received`: a ChannelData datagram from a
client is a dict lookup for the client, a dict lookup for the channel and one ``sendto`` to the peer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, cast

from aioice.stun import Class, Method

from turn import stun
from turn.allocation import Address, Allocation, AllocationTable, FiveTuple
from turn.auth import Authenticator
from turn.budget import InputBudget
from turn.config import RelayConfig
from turn.counters import Counters
from turn.framing import PADDING, FrameTooLarge, StreamFramer
from turn.gate import GLOBAL_LIMIT, ConnectionGate
from turn.handlers import Client, Handlers, Reply
from turn.listen import listening_sockets
from turn.netinfo import host_interfaces
from turn.policy import MIN_PEER_PORT, IPNetwork, PeerAuthorizer, PeerPolicy, RateLimiter, parse_networks
from turn.relay import CapacityError, RelayPorts, RelayProtocol, RelayProtocol6, set_dont_fragment
from turn.tlsaccept import secure

logger = logging.getLogger("turn")

AMPLIFICATION = 3  # an unauthenticated UDP reply is at most this many times the size of its request
SWEEP_INTERVAL = 1.0  # seconds between expiry sweeps; lifetimes are honoured to within this
LISTENER_BUFFER = 4 << 20
# Frames of one TCP/TLS connection handled per callback of the event loop: 64 Binding requests are ~3 ms
# (40-60 µs each). The loop hands over up to 256 KB per read, 12,800 pipelined Bindings, half a second
# during which HTTPS would not be served (issue 12); the rest waits for the loop's next turns.
FRAMES_PER_CALLBACK = 64

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def client_address(addr: Any) -> Address:
    """(host, port) of a socket address; an IPv4 client of a dual-stack socket as plain IPv4."""
    host, port = addr[0], addr[1]
    return (host[7:], port) if host.startswith("::ffff:") and "." in host else (host, port)


def _route_key(five_tuple: FiveTuple) -> Any:
    """The key of ``routes``: the client address for UDP, the whole 5-tuple for TCP and TLS."""
    return five_tuple[2] if five_tuple[0] == "udp" else five_tuple


class Route:
    """What the hot paths need of one allocation: its live channels, permissions and relay socket; and the
    token bucket of its messages that miss them (``allocation_input_rate`` and ``_burst``)."""

    __slots__ = ("permissions", "sendto", "spent_at", "to_peer", "tokens")

    def __init__(self, allocation: Allocation, sendto: Callable[[bytes, Address], None]) -> None:
        self.to_peer = allocation.to_peer  # the allocation's own dicts, kept current by it
        self.permissions = allocation.permissions
        self.sendto = sendto
        self.tokens = 0.0
        self.spent_at = float("-inf")  # never spent: the bucket refills to its burst on the first spend

    def available(self, now: float, rate: int, burst: int) -> float:
        """The tokens of this allocation's input budget at ``now``."""
        return min(burst, self.tokens + (now - self.spent_at) * rate)

    def spend(self, now: float, rate: int, burst: int) -> bool:
        """Take one token of this allocation's input budget; False when none is left."""
        tokens = self.available(now, rate, burst)
        self.spent_at = now
        if tokens < 1:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1
        return True


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
    (Unix time, for credential and nonce expiry) can be replaced in tests. ``may_relay``, when given, decides
    which peers each user may relay to instead of ``allowed_peers`` (see turn.policy).
    """

    def __init__(
        self,
        config: RelayConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        may_relay: PeerAuthorizer | None = None,
    ) -> None:
        self.config = config
        self.counters = Counters()
        self.clock = clock
        self.may_relay = may_relay  # replaces the allowed_peers rule when given (turn.policy)
        self.table = AllocationTable(self.counters, config.max_allocations, config.max_allocations_per_user,
                                     config.max_allocations_per_ip)
        self.auth = Authenticator(config.secret, config.realm, config.nonce_lifetime, wall_clock)
        self.ports = {
            family: RelayPorts(address, config.relay_ports, clock)
            for family, address in config.relay_addresses.items()
        }
        self.limiter = RateLimiter(config.unauthenticated_rate, config.unauthenticated_burst, clock)
        self.budget = InputBudget(config.unauthenticated_input_rate, config.unauthenticated_input_burst, clock)
        self.counters.input_budget_rate = config.unauthenticated_input_rate
        self.counters.input_budget_burst = config.unauthenticated_input_burst
        self.handlers: Handlers | None = None
        self._udp: list[asyncio.DatagramTransport] = []  # one per listening address; replies leave by the same
        self._stream_servers: list[asyncio.Server] = []
        self._connections: set[StreamConnection] = set()
        self.gate = ConnectionGate(config.max_connections, config.max_connections_per_ip)
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
        self.handlers = Handlers(config, self.table, self.auth, policy, self, self.counters, self.clock,
                                 may_relay=self.may_relay)
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
                    # Plain TCP servers: StreamConnection does the TLS handshake itself (turn.tlsaccept), so a
                    # connection counts against the caps from accept on, not only once its handshake is done.
                    factory = partial(StreamConnection, self, kind, context)
                    self._stream_servers.append(await loop.create_server(factory, sock=sock))
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
        return _route_key(allocation.five_tuple)

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
        if peer[1] in self._own_ports or peer[1] < MIN_PEER_PORT:
            return False  # a low port, or maybe one of our own listening sockets: the handler applies the policy
        route.sendto(payload, peer)
        counters = self.counters
        counters.packets_to_peers += 1
        counters.bytes_to_peers += len(payload)
        return True

    def on_stun(self, data: bytes, client: Client) -> None:
        """Handle one STUN message from ``client``; malformed ones are dropped (RFC 8489 §6.3).

        Every message is dropped unread when its budget is spent: a client without an allocation spends its
        source's (``unauthenticated_input_*``), one with an allocation spends the allocation's own
        (``allocation_input_*``), so that other sources do not starve it. ChannelData and the Send indications
        of the fast path never come here, so they spend neither.
        """
        handlers = self.handlers
        if handlers is None:
            return
        route = self.routes.get(_route_key(client.five_tuple))
        if route is None:
            if not self.budget.allow(client.address[0]):
                self.counters.budget_drops += 1
                return
        elif not route.spend(self.clock(), self.config.allocation_input_rate, self.config.allocation_input_burst):
            self.counters.allocation_budget_drops += 1
            return
        try:
            request = stun.decode(data)
        except ValueError:
            self.counters.malformed_drops += 1
            return
        message = request.message
        if message.message_class == Class.REQUEST:
            method = message.message_method
            if method == Method.ALLOCATE:
                task = asyncio.get_running_loop().create_task(self._allocate(handlers, request, client, len(data)))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return
            reply = handlers.requests.get(method, handlers.unsupported)(request, client)
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
        if connection.client is None:
            return  # refused, or closed before its TLS handshake was done: it cannot have allocated
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
        self.budget.prune()


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
    """One TCP or TLS client: framing in (RFC 8656 §12.5), padding out, allocation gone with the connection.

    Limits, so that no client holds more than its share of descriptors and memory:

    - admitted by the server's :class:`ConnectionGate` (``max_connections``, ``max_connections_per_ip``) when
      the TCP connection is accepted, before any TLS handshake, and closed at once when refused;
    - TLS (RFC 8656 §5: TURN over TLS on ``tls_port``) is started here (turn.tlsaccept) with its
      ``tls_handshake_timeout``;
    - closed when it has held no allocation for ``connection_idle_timeout`` seconds: over TCP and TLS an
      allocation lives on its connection (RFC 8656 §3.1), so a connection without one serves nothing;
    - at most one partial message of ``max_stream_frame`` bytes is buffered (:class:`StreamFramer`);
    - back-pressure: once ``stream_write_buffer`` bytes wait for a client that does not read, reading from it
      stops (``pause_writing``) until they drain to a quarter, and messages to it meanwhile are dropped; the
      socket's kernel send buffer (SO_SNDBUF) is set to the same size;
    - at most ``FRAMES_PER_CALLBACK`` frames are handled per callback: while more wait, reading is paused and
      the rest is handled, in order, from ``loop.call_soon``; not while writing is paused.
    """

    def __init__(self, server: TurnServer, kind: str, tls: ssl.SSLContext | None = None) -> None:
        self.server = server
        self.kind = kind
        self.tls = tls
        self.framer = StreamFramer(server.config.max_stream_frame)
        self.write_limit = server.config.stream_write_buffer
        self.transport: asyncio.Transport  # the TCP transport, then the TLS one once the handshake is done
        self.client: Client | None = None  # set once the connection carries STUN/TURN
        self.ip = ""
        self._admitted = False
        self._idle: asyncio.TimerHandle | None = None
        self._backlog = False  # the framer holds whole frames not handled yet; reading is paused meanwhile
        self._writing_paused = False
        self._throttle: asyncio.TimerHandle | None = None  # its allocation's input budget is spent: not read
        self._next: asyncio.Handle | None = None  # the callback that handles the backlog's next frames
        self._raw: bytearray | None = None  # TLS records read before the handshake started (turn.tlsaccept)
        # What the TLS layer decrypts in the step that completes the handshake, before the transport is ours.
        self._early = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw = cast(asyncio.Transport, transport)
        server = self.server
        self.ip = client_address(raw.get_extra_info("peername"))[0]
        refusal = server.gate.admit(self.ip)
        if refusal is not None:
            if refusal == GLOBAL_LIMIT:
                server.counters.connections_refused_global += 1
            else:
                server.counters.connections_refused_per_ip += 1
            raw.abort()
            return
        self._admitted = True
        server.counters.connections = server.gate.open
        sock = raw.get_extra_info("socket")
        if sock is not None:  # the kernel's queue to the client too, which it would otherwise grow to megabytes
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.write_limit)
        self.transport = raw
        server._connections.add(self)
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(server.config.connection_idle_timeout, self._check_idle)
        if self.tls is None:
            self._serve(raw)
            return
        self._raw = bytearray()
        task = loop.create_task(self._handshake(raw, self.tls))
        server._tasks.add(task)
        task.add_done_callback(server._tasks.discard)

    async def _handshake(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        early, self._raw = bytes(self._raw or b""), None
        try:
            transport = await secure(raw, self, context, self.server.config.tls_handshake_timeout, early)
        except OSError:  # timed out (ConnectionAbortedError), a bad handshake (SSLError), or the client left
            if self._idle is not None:  # else the idle check closed it, and counted it
                self.server.counters.connections_closed_handshake += 1
            raw.abort()
            self._release()
            return
        except BaseException:
            raw.abort()
            self._release()
            raise
        # Bytes the TLS layer reads ahead while reading is paused; its transport has the method, the typeshed's
        # Transport does not declare it.
        cast(Any, transport).set_read_buffer_limits(high=self.framer.max_frame)
        self._serve(transport)

    def _serve(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=self.write_limit, low=self.write_limit // 4)
        peer = transport.get_extra_info("peername")
        five_tuple = (self.kind, transport.get_extra_info("sockname"), peer)
        self.client = Client(five_tuple, client_address(peer), self.send, None, spoofable=False)
        if self._early:
            early = bytes(self._early)
            self._early.clear()
            self.data_received(early)

    def _check_idle(self) -> None:
        """Close the connection if it holds no allocation; else look again one timeout later."""
        server = self.server
        if self.client is not None and server.table.get(self.client.five_tuple) is not None:
            self._idle = asyncio.get_running_loop().call_later(server.config.connection_idle_timeout,
                                                               self._check_idle)
            return
        self._idle = None
        server.counters.connections_closed_idle += 1
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._raw is not None:
            self._raw += data
            return
        client = self.client
        if client is None:
            self._early += data
        elif self._backlog or self._writing_paused or self._throttle:  # read ahead of a pause: waits its turn
            self.framer.feed(data, 0)
            self._backlog = True
        else:
            self._handle(data, client)

    def _handle_backlog(self) -> None:
        self._next = None
        if self.client is not None and not self.transport.is_closing():
            self._handle(b"", self.client)

    def _handle(self, data: bytes, client: Client) -> None:
        """Handle at most ``FRAMES_PER_CALLBACK`` frames; schedule the rest, or resume reading once none waits."""
        try:
            frames = self.framer.feed(data, FRAMES_PER_CALLBACK)
        except FrameTooLarge:
            self.server.counters.connections_closed_oversized += 1
            self.transport.abort()
            return
        except ValueError:
            self.server.counters.connections_closed_malformed += 1
            self.transport.abort()
            return
        server = self.server
        for frame in frames:
            route = server.routes.get(client.five_tuple)
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
                server.on_stun(frame, client)
        config = server.config
        route = server.routes.get(client.five_tuple)
        tokens = config.allocation_input_burst if route is None else route.available(
            server.clock(), config.allocation_input_rate, config.allocation_input_burst)
        if tokens < 1 and not self.transport.is_closing():
            # Its allocation's input budget is spent (on_stun drops what it sends): read nothing more from it
            # until a token is back, so that a pipelining client costs the budget's CPU, not its write rate's.
            self._hold()
            self._throttle = asyncio.get_running_loop().call_later((1 - tokens) / config.allocation_input_rate,
                                                                   self._unthrottle)
            if len(frames) == FRAMES_PER_CALLBACK:
                self._backlog = True
            return
        if len(frames) == FRAMES_PER_CALLBACK:  # more may wait
            if not self._backlog:
                self._backlog = True
                self.transport.pause_reading()
            if not self._writing_paused and not self.transport.is_closing():
                self._next = asyncio.get_running_loop().call_soon(self._handle_backlog)
        elif self._backlog:
            self._backlog = False
            if not self._writing_paused:
                self.transport.resume_reading()

    def _hold(self) -> None:
        """Stop reading (unless already stopped for a backlog or a client that does not read)."""
        if not (self._backlog or self._writing_paused or self._throttle):
            self.transport.pause_reading()

    def _unthrottle(self) -> None:
        self._throttle = None
        if not self._writing_paused:
            self._go_on()

    def _go_on(self) -> None:
        """Reading may go on: the backlog first, then the socket."""
        if self.transport.is_closing():
            return
        if self._backlog:
            if self._next is None:
                self._next = asyncio.get_running_loop().call_soon(self._handle_backlog)
        else:
            self.transport.resume_reading()

    def send(self, data: bytes, _addr: Any = None) -> None:
        """Write a message to the client, padded to a multiple of 4 bytes; dropped while its queue is full."""
        transport = self.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() >= self.write_limit:
            self.server.counters.stream_drops += 1
            return
        transport.write(data + PADDING[len(data) % 4])

    def pause_writing(self) -> None:
        """The client does not read: stop reading and handling its requests until it catches up."""
        self.server.counters.connections_paused += 1
        self._hold()
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if not self._throttle:
            self._go_on()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()

    def _release(self) -> None:
        """Give back this connection's place in the caps and its allocation; once, however it ended."""
        if not self._admitted:
            return
        self._admitted = False
        if self._idle is not None:
            self._idle.cancel()
        if self._next is not None:
            self._next.cancel()
        if self._throttle is not None:
            self._throttle.cancel()
        server = self.server
        server.gate.release(self.ip)
        server.counters.connections = server.gate.open
        server.on_connection_lost(self)
