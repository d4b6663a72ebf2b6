"""The one-way delay a TURN relay adds: a probe client and its peer in one process, timestamps in the payload.

:func:`through_relay` allocates on the relay over UDP with the TURN REST API's time-limited credentials (401
first, then the request again with USERNAME, REALM, NONCE and MESSAGE-INTEGRITY: RFC 8489 §9.2), binds a
channel to a UDP peer socket of its own (RFC 8656 §12), then sends ``rate`` packets a second each way:
ChannelData from the client to the peer, and plain UDP from the peer to the relayed address, which the relay
hands to the client as ChannelData (RFC 8656 §12.7). Each payload holds its sequence number and
``time.monotonic_ns()`` when it left; a packet's delay is its arrival time minus that, on the one clock of this
machine. :func:`direct` runs the same probe with no relay between client and peer: the floor the relay adds to
(the probe's own sending and receiving).
"""

from __future__ import annotations

import asyncio
import math
import socket
import struct
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aioice.stun import Class, Message, Method
from aioice.turn import UDP_TRANSPORT, make_integrity_key

from turn import stun
from turn.credentials import make_credentials
from turn.framing import channel_data, parse_channel_data

Address = tuple[str, int]
STAMP = struct.Struct("!IQ")  # a probe payload starts with its sequence number and its send time (monotonic ns)
CHANNEL = 0x4000  # the first channel number a client may bind (RFC 8656 §12)
LATE = 0.5  # seconds to wait for the last packets after the last one is sent


@dataclass
class Direction:
    """Packets sent one way, and the delay (µs) of each one that arrived."""

    sent: int
    delays: list[float]

    @property
    def loss_percent(self) -> float:
        return 100 * (self.sent - len(self.delays)) / self.sent if self.sent else 0.0

    def percentile(self, fraction: float) -> float:
        """The delay below which ``fraction`` of the arrived packets fall (nearest rank)."""
        if not self.delays:
            return math.nan
        ordered = sorted(self.delays)
        return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


@dataclass
class Probe:
    """One probe run: client -> peer and peer -> client."""

    to_peer: Direction
    to_client: Direction

    @property
    def loss_percent(self) -> float:
        sent = self.to_peer.sent + self.to_client.sent
        arrived = len(self.to_peer.delays) + len(self.to_client.delays)
        return 100 * (sent - arrived) / sent if sent else 0.0


def transact(sock: socket.socket, server: Address, message: Message, key: bytes | None = None) -> stun.Decoded:
    """Send a request and return its response; resent up to three times, a second apart (RFC 8489 §6.2.1)."""
    data = stun.encode(message, key)
    for _ in range(3):
        sock.sendto(data, server)
        deadline = time.monotonic() + 1
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                reply = sock.recv(2048)
            except TimeoutError:
                break
            if stun.is_stun(reply) and reply[8:20] == message.transaction_id:
                return stun.decode(reply)
    raise RuntimeError(f"no answer from {server} to {message.message_method.name}")


def expect_success(response: stun.Decoded, what: str) -> stun.Decoded:
    if response.message.message_class != Class.RESPONSE:
        raise RuntimeError(f"{what} failed: {response.attributes.get('ERROR-CODE')}")
    return response


def open_channel(sock: socket.socket, server: Address, peer: Address, secret: str) -> Address:
    """Allocate on ``server`` and bind :data:`CHANNEL` to ``peer``; return the relayed address."""
    username, password, _ = make_credentials(secret, "latency-probe", 3600)
    request = {"REQUESTED-TRANSPORT": UDP_TRANSPORT}
    challenge = transact(sock, server, Message(Method.ALLOCATE, Class.REQUEST, attributes=request))
    if challenge.message.error_code != 401:
        raise RuntimeError(f"expected a 401 challenge, got {challenge.attributes.get('ERROR-CODE')}")
    realm, nonce = challenge.attributes["REALM"], challenge.attributes["NONCE"]
    key = make_integrity_key(username, realm, password)
    auth = {"USERNAME": username, "REALM": realm, "NONCE": nonce}
    allocation = expect_success(transact(
        sock, server, Message(Method.ALLOCATE, Class.REQUEST, attributes={**request, **auth}), key), "Allocate")
    # A ChannelBind also installs the permission for the peer's address (RFC 8656 §12.2).
    bind = {"CHANNEL-NUMBER": CHANNEL, "XOR-PEER-ADDRESS": peer, **auth}
    expect_success(transact(sock, server, Message(Method.CHANNEL_BIND, Class.REQUEST, attributes=bind), key),
                   "ChannelBind")
    relayed: Address = allocation.attributes["XOR-RELAYED-ADDRESS"]
    return relayed


def to_channel(payload: bytes) -> bytes:
    return channel_data(CHANNEL, payload)


def from_channel(data: bytes) -> bytes | None:
    """The payload of a ChannelData message on :data:`CHANNEL`, or None for anything else."""
    try:
        number, payload = parse_channel_data(data)
    except ValueError:
        return None
    return payload if number == CHANNEL else None


def as_is(data: bytes) -> bytes | None:
    return data


class Recorder(asyncio.DatagramProtocol):
    """Receives probe packets and records each one's delay (µs), stamped on arrival."""

    def __init__(self, unwrap: Callable[[bytes], bytes | None]) -> None:
        self.unwrap = unwrap
        self.delays: dict[int, float] = {}

    def datagram_received(self, data: bytes, addr: Address) -> None:
        now = time.monotonic_ns()
        payload = self.unwrap(data)
        if payload is not None and len(payload) >= STAMP.size:
            sequence, sent = STAMP.unpack_from(payload)
            self.delays[sequence] = (now - sent) / 1000


async def exchange(client: socket.socket, peer: socket.socket, to_peer: Address, to_client: Address, *,
                   relayed: bool, seconds: float, rate: float, length: int) -> Probe:
    """Send ``rate`` packets a second each way for ``seconds``: the client's to ``to_peer`` (as ChannelData when
    ``relayed``), the peer's to ``to_client``; then wait :data:`LATE` seconds for the last ones."""
    loop = asyncio.get_running_loop()
    client_side, client_in = await loop.create_datagram_endpoint(
        lambda: Recorder(from_channel if relayed else as_is), sock=client)
    peer_side, peer_in = await loop.create_datagram_endpoint(lambda: Recorder(as_is), sock=peer)
    wrap = to_channel if relayed else bytes
    padding = bytes(max(0, length - STAMP.size))
    count = int(seconds * rate)
    start = loop.time()
    try:
        for sequence in range(count):
            # The two ways take turns half a period apart, so that neither packet waits for the other's handling.
            await asyncio.sleep(max(0.0, start + sequence / rate - loop.time()))
            client_side.sendto(wrap(STAMP.pack(sequence, time.monotonic_ns()) + padding), to_peer)
            await asyncio.sleep(max(0.0, start + (sequence + 0.5) / rate - loop.time()))
            peer_side.sendto(STAMP.pack(sequence, time.monotonic_ns()) + padding, to_client)
        await asyncio.sleep(LATE)
    finally:
        client_side.close()
        peer_side.close()
    return Probe(Direction(count, list(peer_in.delays.values())), Direction(count, list(client_in.delays.values())))


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def through_relay(server: Address, secret: str, seconds: float, rate: float = 200, length: int = 160) -> Probe:
    """The probe through the TURN relay at ``server`` (UDP), with a fresh allocation."""
    client, peer = udp_socket(), udp_socket()
    relayed = open_channel(client, server, peer.getsockname(), secret)
    client.setblocking(False)
    peer.setblocking(False)
    return run(exchange(client, peer, server, relayed, relayed=True, seconds=seconds, rate=rate, length=length))


def direct(seconds: float, rate: float = 200, length: int = 160) -> Probe:
    """The probe with no relay: client and peer send to each other."""
    client, peer = udp_socket(), udp_socket()
    client.setblocking(False)
    peer.setblocking(False)
    return run(exchange(client, peer, peer.getsockname(), client.getsockname(), relayed=False, seconds=seconds,
                        rate=rate, length=length))


def run(probe: Coroutine[Any, Any, Probe]) -> Probe:
    """Run the probe on uvloop, as our relay runs, when it is installed (less of the probe's own delay)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(probe)
    return uvloop.run(probe)
