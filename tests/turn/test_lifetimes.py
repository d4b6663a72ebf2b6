"""Lifetimes and expiry (RFC 8656 §6-§12) under a controllable clock: the state alone, then a live relay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.turn.support import FakeClock, StunClient, credentials, error_code, is_success, start_relay
from tests.turn.test_protocol import make_peer
from turn import TurnServer
from turn.allocation import MAX_PERMISSIONS, Allocation, AllocationTable
from turn.counters import Counters
from turn.framing import channel_data, parse_channel_data


def new_allocation(counters: Counters, user: str = "u", client_port: int = 1) -> Allocation:
    five_tuple = ("udp", ("127.0.0.1", 3478), ("127.0.0.1", client_port))
    return Allocation(five_tuple, f"1:{user}", user, b"t" * 12, 1, 600.0, counters, "127.0.0.1")


def test_permission_and_channel_routes_follow_expiry() -> None:
    counters = Counters()
    allocation = new_allocation(counters)
    peer = ("10.0.0.5", 5000)
    allocation.bind(0x4000, peer, until=600)
    assert allocation.to_peer == {}  # bound, but no permission yet: nothing may flow
    assert allocation.permit("10.0.0.5", until=300)
    assert allocation.to_peer == {0x4000: peer} and allocation.to_client == {peer: 0x4000}
    allocation.expire(now=300)  # the permission lapses (RFC 8656 §9): the channel stays bound but silent
    assert allocation.permissions == {} and allocation.to_peer == {} and allocation.to_client == {}
    assert counters.permissions == 0 and counters.channels == 1
    allocation.permit("10.0.0.5", until=900)  # a new permission brings the route back
    assert allocation.to_peer == {0x4000: peer}
    allocation.expire(now=600)  # the channel lapses (RFC 8656 §12)
    assert allocation.channels == {} and allocation.to_peer == {} and counters.channels == 0
    assert allocation.permissions == {"10.0.0.5": 900}


def test_channel_rules() -> None:
    allocation = new_allocation(Counters())
    allocation.bind(0x4000, ("10.0.0.5", 5000), until=600)
    assert allocation.can_bind(0x4000, ("10.0.0.5", 5000))  # refresh of the same binding
    assert not allocation.can_bind(0x4000, ("10.0.0.5", 5001))  # number bound to another peer
    assert not allocation.can_bind(0x4001, ("10.0.0.5", 5000))  # peer bound to another number


def test_permission_limit() -> None:
    allocation = new_allocation(Counters())
    for i in range(MAX_PERMISSIONS):
        assert allocation.permit(f"10.0.{i // 256}.{i % 256}", until=300)
    assert not allocation.permit("10.9.9.9", until=300)
    assert allocation.permit("10.0.0.0", until=600)  # refreshing an existing one is fine
    assert allocation.has_room_for({"10.0.0.0", "10.0.0.1"})
    assert not allocation.has_room_for({"10.0.0.0", "10.9.9.9"})


def test_table_quotas_and_expiry() -> None:
    counters = Counters()
    table = AllocationTable(counters, max_allocations=3, max_per_user=2, max_per_ip=3)
    first, second = new_allocation(counters, "a", 1), new_allocation(counters, "a", 2)
    table.add(first)
    table.add(second)
    assert not table.has_room_for("a", "127.0.0.1") and table.has_room_for("b", "127.0.0.1")
    first.permit("10.0.0.1", until=300)
    first.refresh(now=0, lifetime=1200)
    assert table.expire(now=600) == [second]
    assert counters.allocations == 1 and counters.permissions == 0
    assert table.has_room_for("a", "127.0.0.1")
    table.remove(first)
    table.remove(first)  # twice is harmless
    assert len(table) == 0 and counters.allocations == 0 and counters.allocations_created == 2


@pytest.fixture
async def clocked() -> AsyncIterator[tuple[TurnServer, FakeClock]]:
    clock = FakeClock()
    relay = await start_relay(clock=clock)
    yield relay, clock
    await relay.stop()


async def allocated(relay: TurnServer, **attributes: object) -> tuple[StunClient, int]:
    client = await StunClient.connect((relay.config.listen, relay.config.port))
    client.login(*credentials())
    response = await client.allocate(**attributes)
    assert is_success(response)
    return client, response.attributes["LIFETIME"]


@pytest.mark.parametrize(
    ("requested", "granted"),
    [(None, 600), (0, 600), (10, 600), (1200, 1200), (3600, 3600), (100_000, 3600)],
)
async def test_allocation_lifetime_is_clamped(clocked: tuple[TurnServer, FakeClock], requested: int | None,
                                              granted: int) -> None:
    relay, _ = clocked
    client, lifetime = await allocated(relay, **({} if requested is None else {"LIFETIME": requested}))
    assert lifetime == granted
    client.close()


async def test_allocation_expires_unless_refreshed(clocked: tuple[TurnServer, FakeClock]) -> None:
    relay, clock = clocked
    client, _ = await allocated(relay)
    clock.advance(599)
    relay.sweep()
    assert relay.counters.allocations == 1
    refreshed = await client.refresh(1000)
    assert refreshed.attributes["LIFETIME"] == 1000
    clock.advance(999)
    relay.sweep()
    assert relay.counters.allocations == 1
    clock.advance(1)
    relay.sweep()
    assert relay.counters.allocations == 0
    assert error_code(await client.refresh()) == 437
    client.close()


async def test_permission_expires_after_300_seconds(clocked: tuple[TurnServer, FakeClock]) -> None:
    relay, clock = clocked
    peer, peer_address = await make_peer()
    client, _ = await allocated(relay, LIFETIME=3600)
    relayed = next(iter(relay.table)).relayed
    assert is_success(await client.create_permission(peer_address))
    clock.advance(299)
    relay.sweep()
    peer.transport.sendto(b"still allowed", relayed)  # type: ignore[attr-defined]
    assert b"still allowed" in await asyncio.wait_for(client.received.get(), 2)
    clock.advance(1)
    relay.sweep()
    assert relay.counters.permissions == 0
    peer.transport.sendto(b"too late", relayed)  # type: ignore[attr-defined]
    await asyncio.sleep(0.1)
    assert client.received.empty()
    client.close()
    peer.transport.close()


async def test_channel_expires_after_600_seconds(clocked: tuple[TurnServer, FakeClock]) -> None:
    relay, clock = clocked
    peer, peer_address = await make_peer()
    client, _ = await allocated(relay, LIFETIME=3600)
    assert is_success(await client.channel_bind(0x4000, peer_address))
    for _ in range(2):  # CreatePermission keeps the permission alive; only the channel ages
        clock.advance(290)
        relay.sweep()
        assert is_success(await client.create_permission(peer_address))
    clock.advance(19)
    relay.sweep()
    client.send_raw(channel_data(0x4000, b"bound"))
    assert (await asyncio.wait_for(peer.received.get(), 2))[0] == b"bound"
    clock.advance(1)
    relay.sweep()
    assert relay.counters.channels == 0 and relay.counters.permissions == 1
    client.send_raw(channel_data(0x4000, b"unbound"))
    await asyncio.sleep(0.1)
    assert peer.received.empty()
    # The peer still has a permission, so what it sends arrives as a Data indication now.
    relayed = next(iter(relay.table)).relayed
    peer.transport.sendto(b"hi", relayed)  # type: ignore[attr-defined]
    frame = await asyncio.wait_for(client.received.get(), 2)
    assert frame[0] < 0x40  # STUN, not ChannelData
    with pytest.raises(ValueError):
        parse_channel_data(frame)
    client.close()
    peer.transport.close()


async def test_unclaimed_reservation_is_released(clocked: tuple[TurnServer, FakeClock]) -> None:
    relay, clock = clocked
    client = await StunClient.connect((relay.config.listen, relay.config.port))
    client.login(*credentials())
    token = (await client.allocate(EVEN_PORT=True)).attributes["RESERVATION-TOKEN"]
    assert relay.ports[1].holds(token)
    clock.advance(31)
    relay.sweep()
    assert not relay.ports[1].holds(token)
    other = await StunClient.connect((relay.config.listen, relay.config.port))
    other.login(*credentials())
    assert error_code(await other.allocate(RESERVATION_TOKEN=token)) == 508
    client.close()
    other.close()
