"""The relay: :class:`TurnServer` composes the listeners (turn.udp, turn.stream), the relay sockets (turn.relay)
and the message handlers (turn.handlers), and owns what they share: allocations, routes, budgets and limits.

It decides what happens to each STUN message (:meth:`TurnServer.on_stun`): dropped when its budget is spent,
decoded, handed to its handler, and the reply signed and sent within the reflection limits.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Coroutine, Iterable
from functools import partial
from typing import Any

from aioice.stun import Class, Method

from turn import stun
from turn.allocation import Allocation, AllocationTable
from turn.auth import Authenticator
from turn.budget import InputBudget, TokenBuckets
from turn.config import RelayConfig
from turn.counters import Counters
from turn.gate import ConnectionGate
from turn.handlers import Client, Handlers, Reply
from turn.indications import parse_send_indication
from turn.listen import listening_sockets
from turn.netinfo import host_interfaces
from turn.policy import MIN_PEER_PORT, IPNetwork, PeerAuthorizer, PeerPolicy, parse_networks
from turn.relay import CapacityError, PeerSocket, RelayPorts, set_dont_fragment
from turn.routes import Route, route_key
from turn.stream import StreamConnection
from turn.udp import UdpListener

logger = logging.getLogger("turn")

AMPLIFICATION = 3  # an unauthenticated UDP reply is at most this many times the size of its request
SWEEP_INTERVAL = 1.0  # seconds between expiry sweeps; lifetimes are honoured to within this
LISTENER_BUFFER = 4 << 20

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


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
        # Unauthenticated UDP replies per client IP, so that spoofed requests cannot make a reflector of it.
        self.reply_budget = TokenBuckets(config.unauthenticated_rate, config.unauthenticated_burst, clock)
        self.budget = InputBudget(config.unauthenticated_input_rate, config.unauthenticated_input_burst, clock)
        self.counters.input_budget_rate = config.unauthenticated_input_rate
        self.counters.input_budget_burst = config.unauthenticated_input_burst
        self.handlers: Handlers | None = None
        self._udp: list[UdpListener] = []  # one per listening address; replies leave by the same
        self._stream_servers: list[asyncio.Server] = []
        self.connections: set[StreamConnection] = set()  # open TCP/TLS clients
        self.gate = ConnectionGate(config.max_connections, config.max_connections_per_ip)
        self.routes: dict[Any, Route] = {}  # by client address (UDP) or 5-tuple (TCP, TLS)
        self._own_ports = frozenset(port for port in (config.port, config.tls_port) if port is not None)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the relay is started and its UDP listeners are open."""
        return self.handlers is not None and bool(self._udp) and not any(udp.closed for udp in self._udp)

    @property
    def listening(self) -> list[str]:
        """The addresses the UDP listeners are bound to, e.g. ``["0.0.0.0", "::"]``; empty when stopped."""
        return [udp.local[0] for udp in self._udp]

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
                sock.setblocking(False)
                self._udp.append(UdpListener(self, sock))
                pending.remove(sock)
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
        for connection in list(self.connections):
            connection.transport.abort()
        for server in self._stream_servers:
            await server.wait_closed()
        self._stream_servers.clear()
        for allocation in self.table:
            self.table.remove(allocation)
            self.release(allocation)
        for ports in self.ports.values():
            ports.close()
        for udp in self._udp:
            udp.close()  # at once: the port is free when this returns
        self._udp.clear()
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
            relay = PeerSocket(sock, allocation, client.sendto, client.reply_to, self.counters,
                               max_links=self.config.max_allocations)
        except BaseException:
            sock.close()
            raise
        allocation.relay = relay
        allocation.relayed = sock.getsockname()[:2]
        self.routes[self._route_key(allocation)] = Route(allocation, relay)

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
        return route_key(allocation.five_tuple)

    def set_dont_fragment(self, allocation: Allocation) -> None:
        """Set DF on ``allocation``'s relay socket for the rest of its life."""
        if allocation.relay is not None:
            allocation.relay.set_dont_fragment()
            allocation.dont_fragment = True

    # Requests and indications.

    def relay_send_indication(self, route: Route, data: bytes | memoryview) -> bool:
        """The Send indication fast path (RFC 8656 §11.2): True when ``data`` was relayed or rightly dropped,
        False when it needs the full decoder and handler."""
        parsed = parse_send_indication(data)
        if parsed is None:
            return False
        peer, payload = parsed
        if peer[0] not in route.permissions:
            return True  # no permission: silently dropped
        if peer[1] in self._own_ports or peer[1] < MIN_PEER_PORT:
            return False  # a low port, or maybe one of our own listening sockets: the handler applies the policy
        try:
            route.link(peer)(payload)
        except OSError:
            return True  # refused by the kernel (buffer full, firewall): UDP may drop it
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
        route = self.routes.get(route_key(client.five_tuple))
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
                self.spawn(self._allocate(handlers, request, client, len(data)))
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
        if not self.reply_budget.allow(client.address[0]):
            self.counters.rate_limited += 1
            return
        data = stun.encode(message, None, request.fingerprinted)
        if len(data) > AMPLIFICATION * size:
            message.attributes.pop("SOFTWARE", None)
            data = stun.encode(message, None, fingerprint=False)
            if len(data) > AMPLIFICATION * size:
                self.counters.amplification_drops += 1
                return
        client.sendto(data, client.reply_to)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task of the relay: cancelled by :meth:`stop` if still running."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_connection_lost(self, connection: StreamConnection) -> None:
        """A TCP/TLS client went away: so does its allocation (RFC 8656 §3.1)."""
        self.connections.discard(connection)
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
        for allocation in self.table:
            if allocation.relay is not None:
                allocation.relay.prune()
        for ports in self.ports.values():
            ports.expire()
        self.reply_budget.prune()
        self.budget.prune()
