"""Fuzzing with hypothesis: the parsers only ever raise ValueError, and a live relay fed malformed datagrams
(random, structured, and correctly signed with random contents) raises nothing and keeps answering Binding."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aioice.stun import COOKIE, Class, Message, Method, message_fingerprint
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.turn import fuzzing
from tests.turn.support import StunClient, credentials, is_success, sign, start_relay
from turn import TurnServer, indications, stun
from turn.framing import StreamFramer

FUZZ = settings(deadline=None, database=None)  # no example database left in the work tree
MESSAGE_TYPES = sorted(int(m) | int(c) for m in Method for c in Class)
ATTRIBUTE_TYPES = sorted(stun.UNDERSTOOD | {0x0001, 0x0003, 0x0024, 0x001C, 0x001E, 0x7FFF, 0xFFFF})


def encode_raw(message_type: int, attributes: list[tuple[int, bytes]], transaction_id: bytes,
               fingerprint: bool) -> bytes:
    body = b"".join(struct.pack("!HH", kind, len(value)) + value + b"\x00" * (-len(value) % 4)
                    for kind, value in attributes)
    data = struct.pack("!HHI12s", message_type, len(body), COOKIE, transaction_id) + body
    if fingerprint:
        crc = message_fingerprint(data)
        data = data[:2] + struct.pack("!H", len(body) + 8) + data[4:] + struct.pack("!HHI", 0x8028, 4, crc)
    return data


attribute_value = st.one_of(
    st.binary(max_size=24),
    st.sampled_from([b"", b"\x00", b"\x11\x00\x00\x00", b"\x80", b"\x00\x01\x12\x34\x7f\x00\x00\x01",
                     b"\x00\x02\x12\x34" + bytes(16), b"\x00\x00\x00\x00", b"\xff" * 8, b"\x40\x00\x00\x00"]),
)
attributes = st.lists(
    st.tuples(st.one_of(st.sampled_from(ATTRIBUTE_TYPES), st.integers(0, 0xFFFF)), attribute_value),
    max_size=8,
)
structured = st.builds(
    encode_raw,
    st.one_of(st.sampled_from(MESSAGE_TYPES), st.integers(0, 0x3FFF)),
    attributes,
    st.binary(min_size=12, max_size=12),
    st.booleans(),
)


def mutate(data: bytes, flips: list[tuple[int, int]], cut: int) -> bytes:
    buffer = bytearray(data[: max(cut, 0) or None])
    for position, value in flips:
        if buffer:
            buffer[position % len(buffer)] = value
    return bytes(buffer)


mutated = st.builds(mutate, structured, st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)),
                                                 max_size=4), st.integers(-1, 60))
channel_data = st.builds(lambda channel, length, payload: struct.pack("!HH", channel, length) + payload,
                         st.integers(0x4000, 0x7FFF), st.integers(0, 0xFFFF), st.binary(max_size=40))
datagram = st.one_of(st.binary(max_size=200), structured, mutated, channel_data)


@settings(FUZZ, max_examples=600)
@given(st.one_of(st.binary(max_size=300), structured, mutated))
def test_decode_raises_only_value_error(data: bytes) -> None:
    try:
        decoded = stun.decode(data)
    except ValueError:
        return
    assert decoded.message.transaction_id == data[8:20]
    stun.encode(decoded.message)  # what decodes encodes again


send_like = st.builds(
    encode_raw,
    st.just(0x0016),
    st.lists(st.tuples(st.sampled_from([0x0012, 0x0013, 0x8022, 0x001A, 0x0024]), attribute_value), max_size=5),
    st.binary(min_size=12, max_size=12),
    st.booleans(),
)


@settings(FUZZ, max_examples=600)
@given(st.one_of(send_like, st.builds(mutate, send_like, st.lists(st.tuples(st.integers(0, 80),
                                                                          st.integers(0, 255)), max_size=3),
                                      st.integers(-1, 60))))
def test_send_indication_fast_path_never_disagrees_with_decode(data: bytes) -> None:
    fast = indications.parse_send_indication(data)
    if fast is None:
        return
    decoded = stun.decode(data)
    assert decoded.message.message_method == Method.SEND
    assert decoded.message.message_class == Class.INDICATION
    assert not decoded.unknown and 0x0012 not in decoded.invalid
    assert fast == (decoded.peers[0], decoded.attributes["DATA"])


@settings(FUZZ, max_examples=300)
@given(st.lists(datagram, max_size=10), st.integers(1, 64))
def test_stream_framer_raises_only_value_error(frames: list[bytes], chunk: int) -> None:
    stream = b"".join(frames)
    framer = StreamFramer()
    try:
        out = [frame for i in range(0, len(stream), chunk) for frame in framer.feed(stream[i : i + chunk])]
    except ValueError:
        return
    assert sum(map(len, out)) <= len(stream)


@dataclass
class Live:
    """A relay in its own event loop, a client holding an allocation on it, and any loop errors seen."""

    loop: asyncio.AbstractEventLoop
    relay: TurnServer
    client: StunClient
    errors: list[dict[str, Any]] = field(default_factory=list)

    def signed(self, message_type: int, attributes: list[tuple[int, bytes]], transaction_id: bytes) -> bytes:
        """A message with random attributes that passes authentication, so the handlers get to read it."""
        assert self.client.username is not None and self.client.key is not None and self.client.nonce
        auth = [(0x0006, self.client.username.encode()), (0x0014, b"opencall"), (0x0015, self.client.nonce)]
        return sign(encode_raw(message_type, attributes + auth, transaction_id, False), self.client.key)

    async def still_answers(self) -> None:
        response = await self.client.request(Message(Method.BINDING, Class.REQUEST), timeout=5)
        assert is_success(response)


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    loop = asyncio.new_event_loop()
    relay = loop.run_until_complete(start_relay(
        unauthenticated_rate=1e6, unauthenticated_burst=1_000_000, unauthenticated_input_rate=1_000_000,
        unauthenticated_input_burst=1_000_000, allocation_input_rate=1_000_000, allocation_input_burst=1_000_000))
    client = loop.run_until_complete(StunClient.connect((relay.config.listen, relay.config.port)))
    client.login(*credentials())
    assert is_success(loop.run_until_complete(client.allocate()))
    state = Live(loop, relay, client)
    loop.set_exception_handler(lambda _, context: state.errors.append(context))
    yield state
    client.close()
    loop.run_until_complete(relay.stop())
    loop.close()


@settings(FUZZ, max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(datagram, min_size=1, max_size=20),
    st.lists(st.tuples(st.sampled_from(MESSAGE_TYPES), attributes, st.binary(min_size=12, max_size=12)),
             max_size=6),
)
def test_live_relay_survives_malformed_traffic(live: Live, datagrams: list[bytes],
                                               signed: list[tuple[int, list[tuple[int, bytes]], bytes]]) -> None:
    async def run() -> None:
        for data in datagrams + [live.signed(*fields) for fields in signed]:
            live.client.send_raw(data)
        _, writer = await asyncio.open_connection(live.relay.config.listen, live.relay.config.port)
        writer.write(b"".join(datagrams))
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.close()
        await live.still_answers()

    live.loop.run_until_complete(run())
    assert live.errors == []


# The relay's whole request path, in-process, from real seeds (tests/turn/fuzzing.py; bench/fuzz_turn.py runs
# the same for a million inputs). Each input goes through the UDP listener and, as a TCP client's frame,
# through on_stun; each must raise nothing and cost under STALL of CPU.
STALL = 0.005
FUZZ_INPUTS = 20_000
operations = st.tuples(st.sampled_from(fuzzing.STRUCTURE_OPS), st.integers(0, 2**32 - 1))
damage = st.tuples(st.sampled_from(fuzzing.BYTE_OPS), st.integers(0, 2**32 - 1))
plans = st.builds(  # signed and fingerprinted or not: each plan makes four inputs (fuzzing.variants)
    fuzzing.Plan,
    st.integers(0, len(fuzzing.SEEDS) - 1),
    st.lists(operations, max_size=4).map(tuple),
    damage=st.lists(damage, max_size=2).map(tuple),
)


def test_fuzz_relay_request_path_from_real_seeds() -> None:
    harness = fuzzing.Harness()
    stats = fuzzing.Stats()

    @settings(FUZZ, max_examples=FUZZ_INPUTS // 40 + 1, phases=[Phase.generate],  # findings are recorded below
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(plans, min_size=10, max_size=10))
    def run(batch: list[fuzzing.Plan]) -> None:
        harness.feed([fuzzing.build(variant, harness.identity) for plan in batch
                      for variant in fuzzing.variants(plan)], stats)

    try:
        run()
        assert harness.relay.counters.allocations_created >= 1  # the handlers met a live allocation
        # An input over STALL once is timed again: a stall is one that stays over it in each of 20 runs.
        stalls = {data.hex(): cost for data in stats.stalls if (cost := harness.retime(data, 20)) >= STALL}
    finally:
        harness.close()
    assert stats.exceptions == [], stats.exceptions[0]
    assert harness.loop_errors == []
    assert stats.inputs >= FUZZ_INPUTS
    assert stalls == {}
