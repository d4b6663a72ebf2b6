"""The relay's own socket I/O (issue 15): batched receive and send on real sockets (turn.batchio), and the
connected socket per peer (turn.relay.PeerLink) on a live relay."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from tests.turn.support import FakeClock, StunClient, credentials, is_success, start_relay
from tests.turn.test_protocol import logged_in, make_peer
from turn import TurnServer
from turn.batchio import MAX_DATAGRAM, Receiver, Sender, address, sockaddr
from turn.framing import channel_data, parse_channel_data
from turn.relay import IP_MTU_DISCOVER, IP_PMTUDISC_DO, MAX_LINKS, PeerSocket


@pytest.mark.parametrize("addr", [("127.0.0.1", 3478), ("10.1.2.3", 65535), ("::1", 9, 0, 0), ("2001:db8::7", 5, 3, 0)])
def test_sockaddr_round_trip(addr: tuple[str, int] | tuple[str, int, int, int]) -> None:
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    assert address(family, sockaddr(family, addr)) == addr


def udp_socket(family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.setblocking(False)
    return sock


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_receiver_reads_a_batch_in_place_with_each_sender(family: int) -> None:
    """One recvmmsg takes in what queued: lengths, bytes and senders as plain recvfrom would give them,
    up to the largest UDP datagram, and no more than ``count`` at once."""
    server, first, second = udp_socket(family), udp_socket(family), udp_socket(family)
    target = server.getsockname()
    sent = [(first, b"a"), (second, b""), (first, bytes(range(256)) * 4), (second, b"x" * 65_000)]
    for sock, data in sent:
        sock.sendto(data, target)
    receiver = Receiver(family, count=3)
    lengths, sources = receiver.receive(server.fileno())
    assert lengths == [len(data) for _, data in sent[:3]]
    size = receiver.name_size
    for index, (sock, data) in enumerate(sent[:3]):
        assert bytes(receiver.data[index * receiver.slot : index * receiver.slot + lengths[index]]) == data
        assert address(family, sources[index * size : (index + 1) * size])[:2] == sock.getsockname()[:2]
    lengths, _ = receiver.receive(server.fileno())
    assert lengths == [65_000] and bytes(receiver.data[:65_000]) == sent[3][1]
    assert receiver.receive(server.fileno()) == ([], b"")  # nothing queued: no error, nothing read
    assert MAX_DATAGRAM >= 65_535
    for sock in (server, first, second):
        sock.close()


def test_sender_sends_a_batch_when_flushed_or_full_and_nothing_once_closed() -> None:
    out, first, second = udp_socket(), udp_socket(), udp_socket()
    scheduled: list[Callable[[], None]] = []
    sender = Sender(out.fileno(), socket.AF_INET, scheduled.append, count=4)
    to_first, to_second = (sockaddr(socket.AF_INET, sock.getsockname()) for sock in (first, second))
    sender.add(b"one", to_first)
    sender.add(memoryview(b"two"), to_second, prefix=b"\x40\x00\x00\x03")
    assert scheduled == [sender.flush] and sender.queued == 2  # asked to flush once, after this turn
    with pytest.raises(BlockingIOError):
        first.recv(100)  # nothing left yet
    sender.flush()
    assert first.recvfrom(100) == (b"one", out.getsockname())
    assert second.recv(100) == b"\x40\x00\x00\x03two"
    for index in range(4):  # a full queue is sent at once
        sender.add(bytes([index]), to_first)
    assert sender.queued == 0 and [first.recv(10) for _ in range(4)] == [b"\x00", b"\x01", b"\x02", b"\x03"]
    sender.add(b"late", to_first)
    sender.close()  # sends what is queued ...
    assert first.recv(10) == b"late"
    sender.add(b"after close", to_first)
    sender.flush()  # ... and nothing after: the descriptor may be another socket's by then
    assert sender.dropped == 1
    with pytest.raises(BlockingIOError):
        first.recv(100)
    for sock in (out, first, second):
        sock.close()


def link_of(relay: TurnServer, client: StunClient) -> PeerSocket:
    (allocation,) = list(relay.table)
    assert isinstance(allocation.relay, PeerSocket)
    assert allocation.five_tuple[2][1] == client.local_address[1]
    return allocation.relay


async def test_a_peer_gets_a_connected_socket_on_the_relayed_port_and_others_still_reach_the_client(
        relay: TurnServer) -> None:
    peer, peer_address = await make_peer()
    other, other_address = await make_peer()
    client = await logged_in(relay)
    relayed = (await client.allocate()).attributes["XOR-RELAYED-ADDRESS"]
    assert is_success(await client.channel_bind(0x4000, peer_address))
    assert is_success(await client.create_permission(other_address))
    client.send_raw(channel_data(0x4000, b"to peer"))
    assert await asyncio.wait_for(peer.received.get(), 2) == (b"to peer", relayed)
    sockets = link_of(relay, client)._link_sockets
    assert list(sockets) == [peer_address]
    assert sockets[peer_address].sock.getpeername() == peer_address  # connected: the kernel hands it this peer
    assert sockets[peer_address].sock.getsockname() == relayed  # on the relayed address and port
    peer.transport.sendto(b"from peer", relayed)  # type: ignore[attr-defined]
    assert parse_channel_data(await asyncio.wait_for(client.received.get(), 2)) == (0x4000, b"from peer")
    other.transport.sendto(b"from other", relayed)  # type: ignore[attr-defined]  # arrives on the relay socket
    frame = await asyncio.wait_for(client.received.get(), 2)
    assert b"from other" in frame and frame[:2] == b"\x00\x17"  # a Data indication (RFC 8656 §11.3)
    # The port is still ours alone: a socket without SO_REUSEPORT cannot bind it.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(OSError):
        probe.bind(relayed)
    probe.close()
    client.close()
    peer.transport.close()
    other.transport.close()


async def test_links_are_capped_per_allocation_and_the_rest_still_relay(relay: TurnServer) -> None:
    peers = [await make_peer() for _ in range(MAX_LINKS + 2)]
    client = await logged_in(relay)
    relayed = (await client.allocate()).attributes["XOR-RELAYED-ADDRESS"]
    for index, (peer, address_) in enumerate(peers):
        assert is_success(await client.channel_bind(0x4000 + index, address_))
        client.send_raw(channel_data(0x4000 + index, b"hello %d" % index))
        assert await asyncio.wait_for(peer.received.get(), 2) == (b"hello %d" % index, relayed)
        peer.transport.sendto(b"back %d" % index, relayed)  # type: ignore[attr-defined]
        assert parse_channel_data(await asyncio.wait_for(client.received.get(), 2)) == (0x4000 + index,
                                                                                        b"back %d" % index)
    assert len(link_of(relay, client)._link_sockets) == MAX_LINKS
    client.close()
    for peer, _ in peers:
        peer.transport.close()


async def test_links_in_all_are_capped_at_max_allocations_so_descriptors_stay_within_the_budget() -> None:
    """opencall/fdlimit.py counts one link per allocation: beyond ``max_allocations`` links in all, peers are
    sent to from the relay socket, and still hear and are heard."""
    relay = await start_relay(max_allocations=1)
    try:
        peers = [await make_peer() for _ in range(2)]
        client = await logged_in(relay)
        relayed = (await client.allocate()).attributes["XOR-RELAYED-ADDRESS"]
        for index, (peer, address_) in enumerate(peers):
            assert is_success(await client.channel_bind(0x4000 + index, address_))
            client.send_raw(channel_data(0x4000 + index, b"to %d" % index))
            assert await asyncio.wait_for(peer.received.get(), 2) == (b"to %d" % index, relayed)
            peer.transport.sendto(b"from %d" % index, relayed)  # type: ignore[attr-defined]
            assert parse_channel_data(await asyncio.wait_for(client.received.get(), 2)) == (0x4000 + index,
                                                                                            b"from %d" % index)
        assert len(link_of(relay, client)._link_sockets) == 1 and relay.counters.peer_links == 1
        assert is_success(await client.refresh(0))  # the allocation goes, and its link with it
        assert relay.counters.peer_links == 0
        client.close()
        for peer, _ in peers:
            peer.transport.close()
    finally:
        await relay.stop()


async def test_a_link_closes_with_its_permission_and_the_peer_is_no_longer_heard() -> None:
    clock = FakeClock()
    relay = await start_relay(clock=clock)
    try:
        peer, peer_address = await make_peer()
        client = await StunClient.connect((relay.config.listen, relay.config.port))
        client.login(*credentials())
        relayed = (await client.allocate()).attributes["XOR-RELAYED-ADDRESS"]
        assert is_success(await client.channel_bind(0x4000, peer_address))
        client.send_raw(channel_data(0x4000, b"hi"))
        await asyncio.wait_for(peer.received.get(), 2)
        relay_socket = link_of(relay, client)
        assert peer_address in relay_socket._link_sockets
        clock.advance(relay.config.permission_lifetime + 1)  # the peer's permission expires (RFC 8656 §9) ...
        relay.sweep()
        assert relay_socket._link_sockets == {} and relay_socket.links == {}  # ... and so does the link
        peer.transport.sendto(b"unheard", relayed)  # type: ignore[attr-defined]
        assert is_success(await client.refresh())  # the marker: the relay has read the peer's datagram by now
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.received.get(), 0.2)
        client.close()
        peer.transport.close()
    finally:
        await relay.stop()


async def test_dont_fragment_reaches_the_links(relay: TurnServer) -> None:
    peer, peer_address = await make_peer()
    client = await logged_in(relay)
    await client.allocate()
    assert is_success(await client.channel_bind(0x4000, peer_address))
    client.send_raw(channel_data(0x4000, b"hi"))
    await asyncio.wait_for(peer.received.get(), 2)
    relay_socket = link_of(relay, client)
    relay_socket.set_dont_fragment()
    (link,) = relay_socket._link_sockets.values()
    for sock in (relay_socket.sock, link.sock):
        assert sock.getsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER) == IP_PMTUDISC_DO
    client.close()
    peer.transport.close()


async def test_empty_payloads_are_relayed_both_ways(relay: TurnServer) -> None:
    """A zero-length datagram is a datagram (RFC 8656 §12.4 allows a ChannelData of length 0): the relay reads
    its sockets itself, so none is lost on the way, as asyncio's and uvloop's transports lose them (so the peer
    here is a plain socket too)."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2)
    client = await logged_in(relay)
    relayed = (await client.allocate()).attributes["XOR-RELAYED-ADDRESS"]
    assert is_success(await client.channel_bind(0x4000, peer.getsockname()))
    client.send_raw(channel_data(0x4000, b""))
    assert await asyncio.to_thread(peer.recvfrom, 100) == (b"", relayed)
    peer.sendto(b"", relayed)
    assert parse_channel_data(await asyncio.wait_for(client.received.get(), 2)) == (0x4000, b"")
    client.close()
    peer.close()
