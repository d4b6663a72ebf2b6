"""STUN and TURN over TCP and TLS: one :class:`StreamConnection` per client, with its caps, throttle and
back-pressure."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, cast

from turn.framing import PADDING, FrameTooLarge, StreamFramer
from turn.gate import GLOBAL_LIMIT
from turn.handlers import Client
from turn.host import RelayHost
from turn.listen import client_address
from turn.tlsaccept import secure

# Frames of one TCP/TLS connection handled per callback of the event loop: 64 Binding requests are ~3 ms
# (40-60 µs each). The loop hands over up to 256 KB per read, 12,800 pipelined Bindings, half a second
# during which HTTPS would not be served (issue 12); the rest waits for the loop's next turns.
FRAMES_PER_CALLBACK = 64


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

    def __init__(self, server: RelayHost, kind: str, tls: ssl.SSLContext | None = None) -> None:
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
        server.connections.add(self)
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(server.config.connection_idle_timeout, self._check_idle)
        if self.tls is None:
            self._serve(raw)
            return
        self._raw = bytearray()
        server.spawn(self._handshake(raw, self.tls))

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
                    try:
                        route.link(peer)(frame[4 : 4 + size])
                    except OSError:
                        continue  # refused by the kernel (buffer full, firewall): UDP may drop it
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

    def send(self, data: bytes | memoryview, _addr: Any = None, prefix: bytes = b"") -> None:
        """Write ``prefix + data`` to the client, padded to a multiple of 4 bytes; dropped while its queue is
        full."""
        transport = self.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() >= self.write_limit:
            self.server.counters.stream_drops += 1
            return
        transport.write(b"".join((prefix, data, PADDING[(len(prefix) + len(data)) % 4])))

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
