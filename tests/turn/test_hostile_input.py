"""Hostile input to the relay (issue 12): bounded work per message, a per-source budget spent before decoding,
and no input that raises. Every case goes to a live relay on 127.0.0.1, over UDP and TCP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest
from aioice.stun import COOKIE, Class, Message, Method
from aioice.turn import make_integrity_key

from tests.turn.fuzzing import join
from tests.turn.support import REALM, StunClient, credentials, error_code, is_success, sign, start_relay
from turn import TurnServer, indications, stun
from turn.batchio import sockaddr
from turn.framing import MAX_FRAME, channel_data

FLOOD_ATTRIBUTES = 16_000


def attribute_flood(count: int = FLOOD_ATTRIBUTES) -> bytes:
    """The Binding request of the issue: ~64 KB of zero-length attributes of distinct unknown
    comprehension-required types."""
    return join(0x0001, bytes(12), [(0x4000 + i % 0x3FFF, b"") for i in range(count)])


def worst_shapes() -> dict[str, bytes]:
    """The costliest messages per byte we know of, each near the size limit of one datagram."""
    peer = indications.xor_peer_address(("2001:db8::1", 5000), bytes(12))[4:]
    peer4 = indications.xor_peer_address(("127.0.0.1", 5000), bytes(12))[4:]
    return {
        "attribute flood": attribute_flood(),
        "63 IPv6 peers": join(0x0008, bytes(12), [(0x0012, peer)] * 63),
        "64 KB of DATA": join(0x0016, bytes(12), [(0x0013, b"x" * 64_000)]),
        "64 KB USERNAME": join(0x0003, bytes(12), [(0x0006, "é".encode() * 31_000)]),
        "63 unknown 1 KB attributes": join(0x0001, bytes(12), [(0x4000 + i, bytes(1000)) for i in range(63)]),
        # Found by bench/fuzz_turn.py: the Send indication fast path walked every attribute (~5 ms).
        "Send indication with 16,000 optional attributes": join(
            0x0016, bytes(12), [(0x0013, b"data"), (0x0012, peer4)] + [(0xC000, b"")] * FLOOD_ATTRIBUTES),
    }


def cpu_seconds(call: Callable[[], object], repeat: int = 20) -> float:
    """The least CPU time of ``repeat`` calls: what the input costs, without the machine's noise."""
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        call()
        best = min(best, time.thread_time() - start)
    return best


@pytest.mark.parametrize("name", list(worst_shapes()))
def test_decoding_a_64k_message_costs_under_a_millisecond(name: str) -> None:
    data = worst_shapes()[name]
    assert len(data) > 1500 if name == "63 IPv6 peers" else len(data) > 60_000

    def refuse() -> None:
        indications.parse_send_indication(data)  # the fast path of Send indications from allocations
        with contextlib.suppress(ValueError):
            stun.decode(data)

    assert cpu_seconds(refuse) < 0.001


async def test_attribute_flood_is_refused_by_the_relay_in_under_a_millisecond(relay: TurnServer) -> None:
    listener = relay._udp[0]
    data = attribute_flood()
    assert cpu_seconds(lambda: listener.datagram_received(data, sockaddr(socket.AF_INET, ("127.0.0.1", 9)))) < 0.001
    assert relay.counters.malformed_drops >= 1


async def test_many_unknown_attributes_get_a_bounded_420() -> None:
    relay = await start_relay()
    client = await StunClient.connect((relay.config.listen, relay.config.port))
    try:
        request = join(0x0001, b"unknown-attr", [(0x4000 + i, b"") for i in range(40)])
        response = await ask(client, request)
        assert error_code(response) == 420
        assert response.attributes["UNKNOWN-ATTRIBUTES"] == [0x4000 + i for i in range(stun.MAX_UNKNOWN)]
        assert relay.counters.unknown_attributes == 1
    finally:
        client.close()
        await relay.stop()


class LagMonitor:
    """Records the largest overshoot of a 1 ms sleep in the running loop: how long the loop was stalled."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - start - 0.001)

    def __enter__(self) -> LagMonitor:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def blast(port: int, packets: list[bytes]) -> None:
    """Send ``packets`` to 127.0.0.1:``port`` as fast as a plain socket can, from another thread."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for data in packets:
            sock.sendto(data, ("127.0.0.1", port))


@pytest.mark.parametrize("budget", ["default", "unlimited"])
async def test_a_burst_of_worst_packets_never_stalls_the_loop_50ms(budget: str) -> None:
    limits = {} if budget == "default" else {"unauthenticated_input_rate": 10**9,
                                             "unauthenticated_input_burst": 10**9}
    relay = await start_relay(**limits)
    client = await StunClient.connect((relay.config.listen, relay.config.port))
    try:
        client.login(*credentials())
        assert is_success(await client.allocate())  # before the flood: an allocation's 5-tuple is exempt
        small = join(0x0001, bytes(12), [(0x4000 + i, b"") for i in range(63)])  # many fit in the socket buffer
        packets = (list(worst_shapes().values()) + [small] * 5) * 60
        with LagMonitor() as lag:
            sender = threading.Thread(target=blast, args=(relay.config.port, packets))
            sender.start()
            while sender.is_alive():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # what the socket buffer still holds
        assert lag.worst < 0.050, f"the loop stalled {lag.worst * 1000:.0f} ms"
        counters = relay.counters
        assert counters.malformed_drops + counters.budget_drops > 0
        if budget == "default":
            assert counters.budget_drops > 0
        assert is_success(await client.request(Message(Method.BINDING, Class.REQUEST)))
        assert is_success(await client.refresh())
    finally:
        client.close()
        await relay.stop()


async def test_the_budget_is_spent_before_decoding_and_spares_allocations() -> None:
    relay = await start_relay(unauthenticated_input_rate=1, unauthenticated_input_burst=20)
    server = (relay.config.listen, relay.config.port)
    holder = await StunClient.connect(server)
    stranger = await StunClient.connect(server)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2)
    try:
        holder.login(*credentials())
        assert is_success(await holder.allocate())
        assert is_success(await holder.channel_bind(0x4000, peer.getsockname()))
        spent = relay.counters.budget_drops
        for _ in range(60):
            stranger.send_raw(stun.encode(Message(Method.BINDING, Class.REQUEST)))
        await asyncio.sleep(0.3)
        assert relay.counters.budget_drops - spent >= 30
        assert relay.counters.malformed_drops == 0  # dropped unread, not decoded
        # 127.0.0.1 has spent its budget; the allocation's 5-tuple is exempt, for requests and relayed data.
        assert is_success(await holder.refresh())
        holder.send_raw(channel_data(0x4000, b"still relayed"))
        assert await asyncio.get_running_loop().run_in_executor(None, peer.recv, 100) == b"still relayed"
    finally:
        peer.close()
        holder.close()
        stranger.close()
        await relay.stop()


# No input raises: each malformed request gets the RFC's error, a counter, no logged traceback, and the relay
# keeps answering. (what, method, attributes, expected code, counter)
Case = tuple[str, int, list[tuple[int, bytes]], int, str]
CASES: list[Case] = [
    ("unknown comprehension-required attribute", 0x0003, [(0x0019, b"\x11\x00\x00\x00"), (0x0030, b"")], 420,
     "unknown_attributes"),
    ("LIFETIME of 3 bytes", 0x0004, [(0x000D, b"\x00\x00\x01")], 400, "bad_requests"),
    ("XOR-PEER-ADDRESS of family 7", 0x0008, [(0x0012, b"\x00\x07\x00\x00\x00\x00\x00\x00")], 400,
     "bad_requests"),
    ("CHANNEL-NUMBER of 2 bytes", 0x0009, [(0x000C, b"\x40\x00"), (0x0012, b"peer")], 400, "bad_requests"),
    ("REQUESTED-TRANSPORT of 1 byte", 0x0003, [(0x0019, b"\x11")], 400, "bad_requests"),
    ("EVEN-PORT of 2 bytes", 0x0003, [(0x0019, b"\x11\x00\x00\x00"), (0x0018, b"\x80\x00")], 400,
     "bad_requests"),
    ("RESERVATION-TOKEN of 3 bytes", 0x0003, [(0x0019, b"\x11\x00\x00\x00"), (0x0022, b"abc")], 400,
     "bad_requests"),
    ("REQUESTED-ADDRESS-FAMILY of 1 byte", 0x0004, [(0x0017, b"\x01")], 400, "bad_requests"),
    ("USERNAME that is not UTF-8", 0x0004, [(0x0006, b"\xff\xfe:x")], 400, "bad_requests"),
    ("username with a superscript digit", 0x0004, [(0x0006, "²:x".encode())], 401, "auth_failures"),
    ("username with an Arabic-Indic digit", 0x0004, [(0x0006, "٣:x".encode())], 401, "auth_failures"),
    ("username with a 5,000-digit expiry", 0x0004, [(0x0006, b"9" * 5000 + b":x")], 401, "auth_failures"),
    ("username without a colon", 0x0004, [(0x0006, b"12345")], 401, "auth_failures"),
    ("another user's allocation", 0x0004, [("bob",)], 441, "wrong_credentials"),  # type: ignore[list-item]
    ("no allocation", 0x0008, [(0x0012, b"peer")], 437, "allocation_mismatches"),
    ("a method this server does not serve", 0x0002, [], 400, "bad_requests"),
]


async def ask(client: StunClient, data: bytes, timeout: float = 2.0) -> stun.Decoded:
    """Send raw ``data`` and wait for the response with its transaction ID."""
    future: asyncio.Future[stun.Decoded] = asyncio.get_running_loop().create_future()
    client.pending[data[8:20]] = future
    client.send_raw(data)
    return await asyncio.wait_for(future, timeout)


def signed_request(client: StunClient, method_type: int, attributes: list[tuple[int, bytes]],
                   transaction_id: bytes) -> bytes:
    """A request signed with ``client``'s credentials, unless the case brings its own USERNAME or user."""
    assert client.username is not None and client.key is not None and client.nonce is not None
    username, key = client.username, client.key
    if attributes and attributes[0] == ("bob",):  # type: ignore[comparison-overlap]
        username, password = credentials("bob")
        key = make_integrity_key(username, REALM, password)
        attributes = []
    attributes = [(kind, peer_for(transaction_id) if value == b"peer" else value) for kind, value in attributes]
    auth = [(0x0014, REALM.encode()), (0x0015, client.nonce)]
    if 0x0006 not in {kind for kind, _ in attributes}:
        auth.insert(0, (0x0006, username.encode()))
    return sign(join(method_type, transaction_id, attributes + auth), key)


def peer_for(transaction_id: bytes) -> bytes:
    """XOR-PEER-ADDRESS 127.0.0.1:9999 for a request with ``transaction_id``."""
    return indications.xor_peer_address(("127.0.0.1", 9999), transaction_id)[4:]


@pytest.fixture
async def relay_and_log(caplog: pytest.LogCaptureFixture) -> AsyncIterator[TurnServer]:
    caplog.set_level(logging.INFO)
    relay = await start_relay(max_stream_frame=MAX_FRAME)  # the 5,000-digit username is a 5 KB TCP frame
    errors: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: errors.append(context))
    yield relay
    await relay.stop()
    loop.set_exception_handler(previous)
    assert errors == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize(("what", "method_type", "attributes", "code", "counter"), CASES,
                         ids=[case[0] for case in CASES])
async def test_malformed_request_gets_its_rfc_error(relay_and_log: TurnServer, transport: str, what: str,
                                                    method_type: int, attributes: list[tuple[int, bytes]],
                                                    code: int, counter: str) -> None:
    relay = relay_and_log
    server = (relay.config.listen, relay.config.port)
    client = await StunClient.connect(server, transport)
    try:
        client.login(*credentials())
        if code == 437:
            assert error_code(await client.refresh()) == 437  # fetches a nonce; this client allocates nothing
        else:
            assert is_success(await client.allocate())
        before = getattr(relay.counters, counter)
        transaction_id = struct.pack("!12s", what.encode()[:12])
        if method_type == 0x0002:
            data = join(method_type, transaction_id, [])
        else:
            data = signed_request(client, method_type, attributes, transaction_id)
        response = await ask(client, data)
        assert error_code(response) == code, response.attributes
        if code == 420:
            assert response.attributes["UNKNOWN-ATTRIBUTES"] == [0x0030]
        assert getattr(relay.counters, counter) == before + 1
        assert is_success(await client.request(Message(Method.BINDING, Class.REQUEST)))
    finally:
        client.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_undecodable_messages_are_dropped_and_counted(relay_and_log: TurnServer, transport: str) -> None:
    relay = relay_and_log
    client = await StunClient.connect((relay.config.listen, relay.config.port), transport)
    try:
        header = struct.pack("!HHI12s", 0x0001, 8, COOKIE, bytes(12))
        for data in (header + b"\x00\x01\x00\x08abcd",  # attribute overruns the message
                     attribute_flood(100),  # more than MAX_ATTRIBUTES
                     struct.pack("!HHI12s", 0x0FFF, 0, COOKIE, bytes(12))):  # unknown method
            await client.send_and_expect_nothing(data, wait=0.05)
        assert relay.counters.malformed_drops == 3
        assert is_success(await client.request(Message(Method.BINDING, Class.REQUEST)))
    finally:
        client.close()
