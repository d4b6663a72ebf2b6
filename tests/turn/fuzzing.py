"""Structure-aware fuzzing of the relay's input, shared by tests/turn/test_fuzz.py and bench/fuzz_turn.py.

An input is a *plan*: a seed (a real packet from tests/turn/seeds/), mutations of its structure (attributes
dropped, duplicated, retyped, refilled with hostile values, flooded; the message type changed; hostile
usernames, peers, lifetimes and channel numbers), how it is finished (signed with valid credentials so that
the handlers read it, fingerprinted or not) and byte-level damage (flips, truncation, a wrong length field).
Hypothesis draws plans in the tests, so failures shrink to few mutations; the bench draws them with
``random.Random``, which is fast enough for millions. Each mutation takes one integer that picks its details.

:class:`Harness` runs a relay in its own loop and feeds inputs to its real request path in-process: the UDP
listener's ``datagram_received`` (ChannelData and Send fast paths, budget, decoder, handlers, replies) and
``on_stun`` as a TCP client, timing each in CPU seconds of the loop's thread.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import random
import socket
import struct
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aioice.stun import COOKIE, Class, Message, Method, message_fingerprint
from aioice.turn import make_integrity_key

from tests.turn.support import REALM, credentials, sign, start_relay
from turn import TurnServer, indications, stun
from turn.batchio import sockaddr
from turn.handlers import Client

SEEDS_DIR = Path(__file__).parent / "seeds"
MESSAGE_TYPES = sorted(int(m) | int(c) for m in Method for c in Class)
UNKNOWN_REQUIRED = (0x0003, 0x001C, 0x001E, 0x0024, 0x0025, 0x0030, 0x7FFF)  # comprehension-required, not ours
OPTIONAL = (0x8022, 0x8029, 0x802A, 0x802B, 0xC001, 0xFFFF)
ATTRIBUTE_TYPES = sorted(stun.UNDERSTOOD | set(UNKNOWN_REQUIRED) | set(OPTIONAL))
USERNAMES = ("²:x", "9" * 5000 + ":x", "", ":", "x", "1:", ":x", "٣٣:x", "1e5:x", "-1:x", "0:x", " 1:x",
             "99999999999999999999:x", "\u0000:\u0000", "é" * 300, "1:" + "x" * 60000)
ODD_VALUES = (b"", b"\x00", b"\x00\x00", b"\x00" * 3, b"\xff" * 4, b"\x00" * 5, b"\x80", b"\x7f\xff\xff\xff",
              b"\xc3\x28", b"\xed\xa0\x80", b"\x00\x01\x00\x00\x7f\x00\x00\x01", b"\x00\x03" + b"\x00" * 6,
              b"\x00\x02\x12\x34" + bytes(16), b"\x40\x00\x00\x00", b"\x4f\xff\x00\x00", b"\xff" * 20,
              bytes(20), bytes(64), b"\xff" * 1000)
STRUCTURE_OPS = ("drop", "duplicate", "retype", "refill", "insert", "flood", "method", "username", "peers",
                 "lifetime", "channel", "swap")
BYTE_OPS = ("flip", "truncate", "length", "append", "cookie")
Attributes = list[tuple[int, bytes]]


def load_seeds() -> list[bytes]:
    """Every committed seed packet (tests/turn/seeds/*.hex, one hex message a line)."""
    seeds = [bytes.fromhex(line) for path in sorted(SEEDS_DIR.glob("*.hex"))
             for line in path.read_text().split() if line]
    if not seeds:
        raise RuntimeError(f"no seeds in {SEEDS_DIR}: run python -m tests.turn.seeds.capture")
    return seeds


SEEDS = load_seeds()


@dataclass(frozen=True)
class Plan:
    """How to make one input from a seed."""

    seed: int
    structure: tuple[tuple[str, int], ...] = ()
    signed: bool = False  # re-signed with valid credentials (MESSAGE-INTEGRITY and FINGERPRINT)
    fingerprint: bool = True
    damage: tuple[tuple[str, int], ...] = ()


def random_plan(rng: random.Random) -> Plan:
    """A plan drawn from ``rng`` (the bench); the tests draw the same shape with hypothesis."""
    return Plan(
        rng.randrange(len(SEEDS)),
        tuple((rng.choice(STRUCTURE_OPS), rng.getrandbits(32)) for _ in range(rng.choice((0, 1, 1, 2, 3, 5)))),
        rng.random() < 0.5,
        rng.random() < 0.7,
        tuple((rng.choice(BYTE_OPS), rng.getrandbits(32)) for _ in range(rng.choice((0, 0, 0, 1, 2)))),
    )


def variants(plan: Plan) -> list[Plan]:
    """``plan`` signed and not, fingerprinted and not: four inputs for one drawn plan."""
    return [replace(plan, signed=signed, fingerprint=fingerprint)
            for signed in (False, True) for fingerprint in (False, True)]


def split(data: bytes) -> tuple[int, bytes, Attributes]:
    """(type, transaction ID, attributes) of a STUN-shaped message, leniently; ChannelData as type -1."""
    if len(data) < 20 or data[0] >= 0x40:
        return -1, b"", [(int.from_bytes(data[:2], "big"), data[4:])]
    attributes = []
    pos = 20
    while pos + 4 <= len(data):
        kind, size = struct.unpack_from("!HH", data, pos)
        attributes.append((kind, data[pos + 4 : pos + 4 + size]))
        pos += 4 + size + (-size % 4)
    return int.from_bytes(data[:2], "big"), data[8:20], attributes


RAW = -1  # an "attribute" that is already encoded attributes: a flood, built once
MAX_BODY = 65_000  # what still fits in one datagram with MESSAGE-INTEGRITY and FINGERPRINT added


def join(message_type: int, transaction_id: bytes, attributes: Attributes) -> bytes:
    """Encode a STUN message from raw attributes, padding each value (RFC 8489 §14); attributes that would
    not fit in one datagram are left out."""
    parts = []
    size = 0
    for kind, value in attributes:
        part = value if kind == RAW else struct.pack("!HH", kind, len(value)) + value + b"\x00" * (-len(value) % 4)
        if size + len(part) > MAX_BODY:
            break
        parts.append(part)
        size += len(part)
    return struct.pack("!HHI12s", message_type, size, COOKIE, transaction_id) + b"".join(parts)


def _mutate(op: str, rng: random.Random, message_type: int, attributes: Attributes) -> int:
    """Apply one structure mutation to ``attributes`` in place; return the (maybe new) message type."""
    index = rng.randrange(len(attributes)) if attributes else 0
    if op == "drop" and attributes:
        del attributes[index]
    elif op == "duplicate" and attributes:
        attributes[index:index] = [attributes[index]] * rng.choice((1, 2, 30, 70))
    elif op == "retype" and attributes:
        attributes[index] = (rng.choice([*ATTRIBUTE_TYPES, rng.getrandbits(16)]), attributes[index][1])
    elif op == "refill" and attributes:
        attributes[index] = (attributes[index][0], _value(rng))
    elif op == "insert":
        attributes.insert(index, (rng.choice(ATTRIBUTE_TYPES), _value(rng)))
    elif op == "flood":
        attributes.append((RAW, _flood(rng.choice((17, 63, 64, 65, 200, 2000, 16_000)),
                                       rng.choice((0x4000, 0x0100, 0xC000)), rng.random() < 0.3)))
    elif op == "method":
        message_type = rng.choice([*MESSAGE_TYPES, rng.getrandbits(14)])
    elif op == "username":
        attributes.insert(0, (0x0006, rng.choice(USERNAMES).encode()))
    elif op == "peers":
        transaction_id = bytes(12)  # XOR with the seed's ID does not matter: any address is a test
        for _ in range(rng.choice((1, 2, 16, 63, 100))):
            host = rng.choice(("127.0.0.1", "10.0.0.1", "0.0.0.0", "255.255.255.255", "::1", "::ffff:127.0.0.1",
                               "fe80::1", "2001:db8::1", "64:ff9b::7f00:1", "224.0.0.251"))
            value = indications.xor_peer_address((host, rng.choice((0, 1, 53, 1023, 3478, 50000, 65535))),
                                          transaction_id)[4:]
            attributes.insert(index, (0x0012, value))
    elif op == "lifetime":
        attributes.insert(index, (0x000D, struct.pack("!I", rng.choice((0, 1, 599, 3600, 2**31, 2**32 - 1)))))
    elif op == "channel":
        number = rng.choice((0, 0x3FFF, 0x4000, 0x4FFF, 0x7FFF, 0x8000, 0xFFFF))
        attributes.insert(index, (0x000C, struct.pack("!HH", number, rng.choice((0, 1)))))
    elif op == "swap" and len(attributes) > 1:
        other = rng.randrange(len(attributes))
        attributes[index], attributes[other] = attributes[other], attributes[index]
    return message_type


@functools.cache
def _flood(count: int, base: int, same: bool) -> bytes:
    """``count`` zero-length attributes, encoded: of type ``base``, or of distinct types from ``base`` on."""
    return b"".join(struct.pack("!HH", base if same else (base + i) & 0xFFFF, 0) for i in range(count))


def _value(rng: random.Random) -> bytes:
    choice = rng.random()
    if choice < 0.5:
        return rng.choice(ODD_VALUES)
    if choice < 0.9:
        return rng.randbytes(rng.randrange(40))
    return rng.randbytes(rng.choice((509, 513, 764, 4096, 30_000)))


def _damage(op: str, rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    if op == "flip":
        buffer = bytearray(data)
        for _ in range(rng.choice((1, 2, 8))):
            buffer[rng.randrange(len(buffer))] = rng.getrandbits(8)
        return bytes(buffer)
    if op == "truncate":
        return data[: rng.randrange(len(data))]
    if op == "length" and len(data) >= 4:
        return data[:2] + struct.pack("!H", rng.choice((0, 1, 4, len(data), 0xFFFC, 0xFFFF))) + data[4:]
    if op == "append":
        return data + rng.randbytes(rng.choice((1, 3, 4, 64)))
    if op == "cookie" and len(data) >= 8:
        return data[:4] + rng.randbytes(4) + data[8:]
    return data


@dataclass(frozen=True)
class Identity:
    """Valid long-term credentials and a nonce the relay issued, to sign inputs with."""

    username: str
    key: bytes
    nonce: bytes


def build(plan: Plan, identity: Identity | None) -> bytes:
    """The input of ``plan``; signed with ``identity`` when the plan says so and one is given."""
    seed = SEEDS[plan.seed % len(SEEDS)]
    message_type, transaction_id, attributes = split(seed)
    if message_type < 0:
        channel, payload = attributes[0]
        data = seed
        for op, param in plan.structure:
            rng = random.Random(param)
            if op in ("retype", "method"):
                channel = rng.choice((0x4000, 0x4001, 0x7FFF, 0x8000, channel))
            elif op in ("refill", "insert", "flood"):
                payload = rng.randbytes(rng.choice((0, 1, 100, 1500, 65_000)))
            data = struct.pack("!HH", channel, len(payload)) + payload
    else:
        transaction_id = transaction_id.ljust(12, b"\x00")
        # The seed's own credentials are another relay's: signed inputs get this one's (username ops aside).
        stripped = (0x0008, 0x8028, 0x0006, 0x0014, 0x0015) if plan.signed else (0x0008, 0x8028)
        attributes = [(kind, value) for kind, value in attributes if kind not in stripped]
        for op, param in plan.structure:
            message_type = _mutate(op, random.Random(param), message_type, attributes)
        data = join(message_type, transaction_id, attributes)
        if plan.signed and identity is not None:
            present = {kind for kind, _ in attributes}
            extra = [(kind, value) for kind, value in ((0x0006, identity.username.encode()),
                                                      (0x0014, REALM.encode()), (0x0015, identity.nonce))
                     if kind not in present]
            data = sign(join(message_type, transaction_id, attributes + extra), identity.key)
        elif plan.fingerprint:
            with_length = data[:2] + struct.pack("!H", len(data) - 12) + data[4:]
            data = with_length + struct.pack("!HHI", 0x8028, 4, message_fingerprint(with_length))
    for op, param in plan.damage:
        data = _damage(op, random.Random(param), data)
    return data


@dataclass
class Stats:
    """What a fuzzing run saw."""

    inputs: int = 0
    exceptions: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # CPU seconds per input and path (UDP, TCP)
    slowest: tuple[float, bytes] = (0.0, b"")
    stall: float = 0.005  # inputs that took longer are kept in ``stalls``, to be timed again
    stalls: list[bytes] = field(default_factory=list)

    def record(self, seconds: float, data: bytes) -> None:
        self.times.append(seconds)
        if seconds > self.slowest[0]:
            self.slowest = (seconds, data)
        if seconds > self.stall:
            self.stalls.append(data)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


class Harness:
    """A relay in its own event loop, fed in-process; one UDP client holds an allocation on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop_errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _, context: self.loop_errors.append(context))
        unlimited = 1_000_000_000  # the fuzzer measures the decoder and handlers, not the budget
        self.relay: TurnServer = self.loop.run_until_complete(start_relay(
            tls_port=None, unauthenticated_rate=unlimited, unauthenticated_burst=unlimited,
            unauthenticated_input_rate=unlimited, unauthenticated_input_burst=unlimited,
            allocation_input_rate=unlimited, allocation_input_burst=unlimited,
            max_allocations_per_user=10_000,
        ))
        self.client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # replies land here, and are drained
        self.client.bind(("127.0.0.1", 0))
        self.client.setblocking(False)
        self.address = self.client.getsockname()
        self.source = sockaddr(socket.AF_INET, self.address)  # as the listener's recvmmsg gives it
        self.listener = self.relay._udp[0]
        username, password = credentials("fuzz")
        self.identity = Identity(username, make_integrity_key(username, REALM, password),
                                 self.relay.auth.nonce(self.address[0]).encode())
        self.stream = Client(("tcp", ("127.0.0.1", self.relay.config.port), ("127.0.0.1", 1)),
                             ("127.0.0.1", 1), lambda data, _: None, None, spoofable=False)

    def close(self) -> None:
        self.client.close()
        self.loop.run_until_complete(self.relay.stop())
        self.loop.close()

    async def ensure_allocation(self) -> None:
        """Allocate for the UDP client (again, when a fuzzed Refresh deleted it), with a channel and a
        permission, so that requests and fast paths meet a live allocation."""
        if self.relay.table.get(("udp", self.listener.local, self.address)) is not None:
            return
        for method, attributes in ((Method.ALLOCATE, {"REQUESTED-TRANSPORT": 0x11000000}),
                                   (Method.CHANNEL_BIND, {"CHANNEL-NUMBER": 0x4000,
                                                          "XOR-PEER-ADDRESS": ("127.0.0.1", 9999)})):
            message = Message(method, Class.REQUEST, attributes={
                **attributes, "USERNAME": self.identity.username, "REALM": REALM, "NONCE": self.identity.nonce})
            self.listener.datagram_received(stun.encode(message, self.identity.key), self.source)
            await asyncio.sleep(0.01)

    def feed(self, inputs: list[bytes], stats: Stats) -> None:
        """Feed each input to the UDP path and the TCP request path; time them, catch what they raise."""
        self.loop.run_until_complete(self._feed(inputs, stats))
        self._drain()

    async def _feed(self, inputs: list[bytes], stats: Stats) -> None:
        await self.ensure_allocation()
        gc_was_enabled = gc.isenabled()
        gc.disable()  # a collection lands on whichever input allocates last: not that input's cost
        try:
            for data in inputs:
                stats.inputs += 1
                for entry in (self._udp, self._stream):
                    start = time.thread_time()
                    try:
                        entry(data)
                    except Exception:  # the finding itself
                        stats.exceptions.append(f"{data.hex()}\n{traceback.format_exc()}")
                    stats.record(time.thread_time() - start, data)
        finally:
            if gc_was_enabled:
                gc.enable()
        await asyncio.sleep(0)  # Allocate tasks, ICMP errors

    def retime(self, data: bytes, times: int) -> float:
        """The least CPU time of ``times`` runs of ``data`` through both paths: what the input itself costs, once
        the machine's own delays (another process, a page fault, a timer tick) are taken out."""
        stats = Stats(stall=float("inf"))
        for _ in range(times):
            self.feed([data], stats)
        return min(stats.times[0::2]) + min(stats.times[1::2])

    def _udp(self, data: bytes) -> None:
        self.listener.datagram_received(data, self.source)

    def _stream(self, data: bytes) -> None:
        if data[:1] and data[0] < 0x40:
            self.relay.on_stun(data, self.stream)

    def _drain(self) -> None:
        while True:
            try:
                self.client.recv(65536)
            except BlockingIOError:
                return


def batches(rng: random.Random, size: int) -> Iterator[list[Plan]]:
    """Plans for the bench, ``size`` at a time, forever."""
    while True:
        yield [random_plan(rng) for _ in range(size)]
