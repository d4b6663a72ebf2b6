"""The relay's owner decides who may relay where (``may_relay``), under refusals no callback lifts, and the
allocation quotas per user and per client address, EVEN-PORT reservations included."""

from __future__ import annotations

import asyncio

from aioice.stun import Class, Message, Method

from tests.turn.support import StunClient, credentials, error_code, is_success, start_relay
from turn import TurnServer, stun
from turn.allocation import Allocation, AllocationTable
from turn.counters import Counters
from turn.policy import PeerPolicy, parse_networks


class Authorizer:
    """Allows what ``allowed`` maps each principal to, and records every question."""

    def __init__(self, allowed: dict[str, set[str]]) -> None:
        self.allowed = allowed
        self.asked: list[tuple[str, tuple[str, int]]] = []

    def __call__(self, principal: str, peer: tuple[str, int]) -> bool:
        self.asked.append((principal, peer))
        return peer[0] in self.allowed.get(principal, set())


async def _client(relay: TurnServer, user: str) -> StunClient:
    client = await StunClient.connect((relay.config.listen, relay.config.port))
    client.login(*credentials(user))
    return client


def test_fixed_refusals() -> None:
    policy = PeerPolicy(parse_networks(["0.0.0.0/0"]), denied=parse_networks(["10.9.0.0/16"]),
                        own_endpoints=[(net, 3478) for net in parse_networks(["10.0.0.1/32"])])
    assert policy.refuses("10.9.1.1") and policy.refuses("::ffff:10.9.1.1") and policy.refuses("not-an-ip")
    assert not policy.refuses("10.0.0.1") and policy.refuses("10.0.0.1", 3478)
    assert policy.refuses("10.0.0.2", 1023) and not policy.refuses("10.0.0.2", 1024)
    assert not policy.allows(("10.0.0.2", 53)) and policy.allows(("10.0.0.2", 5353))
    assert policy.allows_ip("10.0.0.2")  # a permission carries no port (RFC 8656 §9)


def test_table_counts_per_address_and_reservations() -> None:
    counters = Counters()
    table = AllocationTable(counters, max_allocations=3, max_per_user=2, max_per_ip=2)
    five_tuple = ("udp", ("127.0.0.1", 3478), ("10.0.0.5", 5000))
    table.add(Allocation(five_tuple, "1:a", "a", b"t" * 12, 1, 600.0, counters, "10.0.0.5"))
    table.reserve(b"token", "b", "10.0.0.5", until=30.0)
    assert not table.has_room_for("c", "10.0.0.5")  # one allocation and one reservation from this address
    assert table.has_room_for("b", "10.0.0.6")  # user b holds one of two
    assert table.has_room_for("c", "10.0.0.6")
    table.reserve(b"other", "b", "10.0.0.6", until=30.0)
    assert not table.has_room_for("b", "10.0.0.7")  # user b: two reservations
    assert not table.has_room_for("d", "10.0.0.8")  # three in all
    table.unreserve(b"token")
    table.unreserve(b"token")  # twice is harmless
    assert table.has_room_for("c", "10.0.0.5")
    table.expire(now=30.0)
    assert table.has_room_for("b", "10.0.0.6")


async def test_permissions_and_channels_ask_the_owner() -> None:
    authorizer = Authorizer({"alice": {"127.0.0.2"}})
    relay = await start_relay(may_relay=authorizer)
    alice, mallory = await _client(relay, "alice"), await _client(relay, "mallory")
    try:
        assert is_success(await alice.allocate()) and is_success(await mallory.allocate())
        assert is_success(await alice.create_permission(("127.0.0.2", 1)))
        assert ("alice", ("127.0.0.2", 1)) in authorizer.asked
        # allowed_peers (127.0.0.0/8 here) no longer decides: the owner does.
        assert error_code(await alice.create_permission(("127.0.0.3", 5000))) == 403
        assert error_code(await mallory.create_permission(("127.0.0.2", 5000))) == 403
        assert error_code(await mallory.channel_bind(0x4000, ("127.0.0.2", 5000))) == 403
        assert relay.counters.peers_unauthorized == 3 and relay.counters.peers_denied == 3
        assert is_success(await alice.channel_bind(0x4000, ("127.0.0.2", 5000)))
        # Whatever the owner says: low ports and the relay's own listening port stay refused, unasked.
        asked = len(authorizer.asked)
        assert error_code(await alice.channel_bind(0x4001, ("127.0.0.2", 1023))) == 403
        authorizer.allowed["alice"].add(relay.config.listen)
        assert error_code(await alice.channel_bind(0x4001, (relay.config.listen, relay.config.port))) == 403
        assert len(authorizer.asked) == asked and relay.counters.peers_unauthorized == 3
    finally:
        alice.close()
        mallory.close()
        await relay.stop()


async def test_send_indications_to_low_ports_are_dropped() -> None:
    relay = await start_relay(may_relay=Authorizer({"alice": {"127.0.0.1"}}))
    alice = await _client(relay, "alice")
    try:
        assert is_success(await alice.allocate())
        assert is_success(await alice.create_permission(("127.0.0.1", 1)))
        before = (relay.counters.packets_to_peers, relay.counters.peers_denied)
        send = Message(Method.SEND, Class.INDICATION, attributes={"XOR-PEER-ADDRESS": ("127.0.0.1", 53),
                                                                   "DATA": b"dns?"})
        alice.send_raw(stun.encode(send, fingerprint=False))
        await asyncio.sleep(0.1)
        assert (relay.counters.packets_to_peers, relay.counters.peers_denied) == (before[0], before[1] + 1)
    finally:
        alice.close()
        await relay.stop()


async def test_quota_per_client_address_and_even_port_reservations() -> None:
    relay = await start_relay(max_allocations_per_user=2, max_allocations_per_ip=3)
    clients = [await _client(relay, user) for user in ("u1", "u1", "u1", "u2", "u3", "u4")]
    try:
        # EVEN-PORT with the R bit: the allocation and the port reserved beside it count for u1.
        reserving = await clients[0].allocate(EVEN_PORT=True)
        assert is_success(reserving) and "RESERVATION-TOKEN" in reserving.attributes
        assert error_code(await clients[1].allocate()) == 486  # u1: two of two
        assert is_success(await clients[3].allocate())  # u2, the third from 127.0.0.1
        assert error_code(await clients[4].allocate()) == 486  # this address: three of three
        # Claiming the reservation turns it into an allocation: the count stays the same.
        token = reserving.attributes["RESERVATION-TOKEN"]
        assert is_success(await clients[2].allocate(RESERVATION_TOKEN=token))
        assert error_code(await clients[5].allocate()) == 486
        assert len(relay.table) == 3
    finally:
        for client in clients:
            client.close()
        await relay.stop()
