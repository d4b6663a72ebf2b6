"""The methods of a live relay over UDP, TCP and TLS, driven by a raw STUN client: answers and error codes."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import pytest
from aioice.stun import Class, Message, Method
from aioice.turn import TCP_TRANSPORT, UDP_TRANSPORT

from tests.support import free_port
from tests.turn.support import (
    StunClient,
    client_tls_context,
    credentials,
    error_code,
    is_success,
    self_signed,
    start_relay,
)
from turn import TurnServer, stun
from turn.framing import channel_data, parse_channel_data


def server_address(relay: TurnServer) -> tuple[str, int]:
    return relay.config.listen, relay.config.port


async def logged_in(relay: TurnServer, user: str = "alice", kind: str = "udp") -> StunClient:
    client = await StunClient.connect(server_address(relay), kind)
    client.login(*credentials(user))
    return client


class Peer(asyncio.DatagramProtocol):
    """A UDP peer on 127.0.0.1 that records what it receives."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr[:2]))


async def allocations_drop_to_zero(relay: TurnServer, timeout: float = 2.0) -> None:
    """Wait until the relay holds no allocation (a closed connection's goes at once, but asynchronously)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while relay.counters.allocations:
        assert asyncio.get_running_loop().time() < deadline, "the allocation outlived its connection"
        await asyncio.sleep(0.005)


async def make_peer() -> tuple[Peer, tuple[str, int]]:
    _, peer = await asyncio.get_running_loop().create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
    return peer, peer.transport.get_extra_info("sockname")


@pytest.mark.parametrize("kind", ["udp", "tcp"])
async def test_binding(relay: TurnServer, kind: str) -> None:
    client = await StunClient.connect(server_address(relay), kind)
    response = await client.request(Message(Method.BINDING, Class.REQUEST))
    assert is_success(response)
    assert response.attributes["XOR-MAPPED-ADDRESS"] == client.local_address
    assert response.attributes["SOFTWARE"] == relay.config.software
    assert response.fingerprinted
    client.close()


async def test_binding_and_allocation_over_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    relay = await start_relay(tls_port=free_port(), tls_cert=cert, tls_key=key)
    try:
        address = (relay.config.listen, relay.config.tls_port or 0)
        client = await StunClient.connect(address, "tls", client_tls_context(cert))
        response = await client.request(Message(Method.BINDING, Class.REQUEST))
        assert response.attributes["XOR-MAPPED-ADDRESS"] == client.local_address
        client.login(*credentials())
        assert is_success(await client.allocate())
        assert relay.counters.allocations == 1
        client.close()
        await allocations_drop_to_zero(relay)  # the allocation goes with its connection
    finally:
        await relay.stop()


async def test_unknown_comprehension_required_attribute_gets_420(relay: TurnServer) -> None:
    client = await StunClient.connect(server_address(relay))
    request = Message(Method.BINDING, Class.REQUEST, attributes={"CHANGE-REQUEST": 6})
    response = await client.request(request)
    assert error_code(response) == 420
    assert response.attributes["UNKNOWN-ATTRIBUTES"] == [0x0003]
    client.close()


async def test_unknown_attribute_in_authenticated_request_gets_signed_420(relay: TurnServer) -> None:
    client = await logged_in(relay)
    response = await client.allocate(CHANGE_REQUEST=6)
    assert error_code(response) == 420
    assert response.attributes["UNKNOWN-ATTRIBUTES"] == [0x0003]
    assert client.key is not None and stun.check_integrity(response, client.key)
    client.close()


async def test_allocate_success_response(relay: TurnServer) -> None:
    client = await logged_in(relay)
    response = await client.allocate()
    assert is_success(response)
    assert client.key is not None and stun.check_integrity(response, client.key)
    relayed = response.attributes["XOR-RELAYED-ADDRESS"]
    assert relayed[0] == "127.0.0.1" and 40000 <= relayed[1] <= 44999
    assert response.attributes["XOR-MAPPED-ADDRESS"] == client.local_address
    assert response.attributes["LIFETIME"] == 600
    assert relay.counters.allocations == 1
    client.close()


UDP = {"REQUESTED-TRANSPORT": UDP_TRANSPORT}


@pytest.mark.parametrize(
    ("attributes", "code"),
    [
        ({}, 400),  # no REQUESTED-TRANSPORT
        ({"REQUESTED-TRANSPORT": TCP_TRANSPORT}, 442),
        ({**UDP, "REQUESTED-ADDRESS-FAMILY": stun.IPV6}, 440),
        ({**UDP, "REQUESTED-ADDRESS-FAMILY": 7}, 440),
        ({**UDP, "RESERVATION-TOKEN": b"12345678", "EVEN-PORT": False}, 400),
        ({**UDP, "RESERVATION-TOKEN": b"12345678", "REQUESTED-ADDRESS-FAMILY": stun.IPV4}, 400),
        ({**UDP, "RESERVATION-TOKEN": b"12345678"}, 508),  # no such reservation
        ({**UDP, "ADDITIONAL-ADDRESS-FAMILY": stun.IPV4}, 400),
        ({**UDP, "ADDITIONAL-ADDRESS-FAMILY": stun.IPV6, "REQUESTED-ADDRESS-FAMILY": stun.IPV4}, 400),
    ],
)
async def test_allocate_errors(relay: TurnServer, attributes: dict[str, object], code: int) -> None:
    client = await logged_in(relay)
    assert error_code(await client.authed(Method.ALLOCATE, attributes)) == code
    assert relay.counters.allocations == 0
    client.close()


async def test_additional_family_unsupported_is_reported_in_success(relay: TurnServer) -> None:
    client = await logged_in(relay)
    response = await client.allocate(ADDITIONAL_ADDRESS_FAMILY=stun.IPV6)
    assert is_success(response)
    assert response.attributes["ADDRESS-ERROR-CODE"][:2] == (stun.IPV6, 440)
    client.close()


async def test_second_allocate_gets_437_but_retransmission_gets_the_same_success(relay: TurnServer) -> None:
    client = await logged_in(relay)
    first = await client.allocate()
    assert is_success(first)
    again = await client.authed(Method.ALLOCATE, {"REQUESTED-TRANSPORT": 0x11000000},
                                transaction_id=first.message.transaction_id)
    assert is_success(again)
    assert again.attributes["XOR-RELAYED-ADDRESS"] == first.attributes["XOR-RELAYED-ADDRESS"]
    assert error_code(await client.allocate()) == 437
    client.close()


async def test_even_port_with_reservation(relay: TurnServer) -> None:
    first = await logged_in(relay)
    response = await first.allocate(EVEN_PORT=True)
    assert is_success(response)
    port = response.attributes["XOR-RELAYED-ADDRESS"][1]
    assert port % 2 == 0
    token = response.attributes["RESERVATION-TOKEN"]
    second = await logged_in(relay)
    reserved = await second.allocate(RESERVATION_TOKEN=token)
    assert is_success(reserved)
    assert reserved.attributes["XOR-RELAYED-ADDRESS"][1] == port + 1
    third = await logged_in(relay)
    assert error_code(await third.allocate(RESERVATION_TOKEN=token)) == 508  # used up
    for client in (first, second, third):
        client.close()


async def test_dont_fragment_is_supported(relay: TurnServer) -> None:
    client = await logged_in(relay)
    assert is_success(await client.allocate(DONT_FRAGMENT=None))
    client.close()


async def test_quotas_give_486() -> None:
    relay = await start_relay(max_allocations=3, max_allocations_per_user=2)
    clients = []
    try:
        for user, expected in (("a", None), ("a", None), ("a", 486), ("b", None), ("c", 486)):
            client = await logged_in(relay, user)
            clients.append(client)
            assert error_code(await client.allocate()) == expected
    finally:
        for client in clients:
            client.close()
        await relay.stop()


async def test_no_free_relay_port_gives_508() -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 0))
    port = blocker.getsockname()[1]
    relay = await start_relay(relay_ports=(port, port))
    try:
        client = await logged_in(relay)
        assert error_code(await client.allocate()) == 508
        assert relay.counters.allocations == 0
        client.close()
    finally:
        blocker.close()
        await relay.stop()


async def test_requests_without_allocation_get_437(relay: TurnServer) -> None:
    client = await logged_in(relay)
    assert error_code(await client.refresh()) == 437
    assert error_code(await client.channel_bind(0x4000, ("127.0.0.1", 9))) == 437
    client.close()


async def test_another_users_credentials_on_an_allocation_get_441(relay: TurnServer) -> None:
    client = await logged_in(relay, "alice")
    assert is_success(await client.allocate())
    client.login(*credentials("mallory"))
    assert error_code(await client.refresh()) == 441
    client.close()


async def test_refresh_zero_deletes(relay: TurnServer) -> None:
    client = await logged_in(relay)
    assert is_success(await client.allocate())
    response = await client.refresh(0)
    assert is_success(response) and response.attributes["LIFETIME"] == 0
    assert relay.counters.allocations == 0
    assert error_code(await client.refresh(0)) == 437
    client.close()


async def test_refresh_with_other_family_gets_443(relay: TurnServer) -> None:
    client = await logged_in(relay)
    assert is_success(await client.allocate())
    response = await client.authed(Method.REFRESH, {"REQUESTED-ADDRESS-FAMILY": stun.IPV6})
    assert error_code(response) == 443
    client.close()


async def test_create_permission_and_channel_errors(relay: TurnServer) -> None:
    client = await logged_in(relay)
    assert is_success(await client.allocate())
    assert error_code(await client.authed(Method.CREATE_PERMISSION, {})) == 400
    assert error_code(await client.create_permission(("::1", 9), ("127.0.0.1", 9))) == 443
    assert error_code(await client.channel_bind(0x3FFF, ("127.0.0.1", 9009))) == 400
    assert error_code(await client.channel_bind(0x8000, ("127.0.0.1", 9009))) == 400
    assert error_code(await client.channel_bind(0x4000, ("2001:db8::1", 9009))) == 443
    assert is_success(await client.channel_bind(0x4000, ("127.0.0.1", 9009)))
    assert is_success(await client.channel_bind(0x4000, ("127.0.0.1", 9009)))  # a refresh
    assert error_code(await client.channel_bind(0x4000, ("127.0.0.1", 9010))) == 400  # number taken
    assert error_code(await client.channel_bind(0x4001, ("127.0.0.1", 9009))) == 400  # peer taken
    assert relay.counters.channels == 1 and relay.counters.permissions == 1
    client.close()


async def test_create_permission_with_several_peers_is_all_or_nothing(relay: TurnServer) -> None:
    client = await logged_in(relay)
    assert is_success(await client.allocate())
    assert is_success(await client.create_permission(("127.0.0.2", 1), ("127.0.0.3", 1)))
    assert relay.counters.permissions == 2
    assert error_code(await client.create_permission(("127.0.0.4", 1), ("10.1.2.3", 1))) == 403
    assert relay.counters.permissions == 2
    client.close()


@pytest.mark.parametrize("listen", ["::1", "127.0.0.1"])
async def test_ipv6_relay(listen: str) -> None:
    """An IPv6-only relay on ::1, and an IPv4 relay with relay_ip6: REQUESTED-ADDRESS-FAMILY picks IPv6."""
    extra = {"relay_ip6": "::1"} if listen == "127.0.0.1" else {}
    relay = await start_relay(listen=listen, allowed_peers=("::1/128",), **extra)
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(Peer, local_addr=("::1", 0))
    peer_address = peer.transport.get_extra_info("sockname")[:2]
    client = await logged_in(relay)
    try:
        if listen == "::1":
            assert error_code(await client.allocate()) == 440  # IPv4 is the default, and not served here
        else:
            assert is_success(await logged_in_allocate(relay))
        response = await client.allocate(REQUESTED_ADDRESS_FAMILY=stun.IPV6)
        assert is_success(response)
        relayed = response.attributes["XOR-RELAYED-ADDRESS"]
        assert relayed[0] == "::1"
        assert error_code(await client.create_permission(("127.0.0.1", 1))) == 443
        assert is_success(await client.channel_bind(0x4000, peer_address))
        client.send_raw(channel_data(0x4000, b"over ipv6"))
        assert await asyncio.wait_for(peer.received.get(), 2) == (b"over ipv6", relayed)
        peer.transport.sendto(b"back", relayed)  # type: ignore[attr-defined]
        assert parse_channel_data(await asyncio.wait_for(client.received.get(), 2)) == (0x4000, b"back")
        peer.transport.sendto(b"x", relayed)  # type: ignore[attr-defined]
        await asyncio.wait_for(client.received.get(), 2)
        send = Message(Method.SEND, Class.INDICATION, attributes={"XOR-PEER-ADDRESS": peer_address,
                                                                   "DATA": b"indicated"})
        client.send_raw(stun.encode(send, fingerprint=False))
        assert (await asyncio.wait_for(peer.received.get(), 2))[0] == b"indicated"
    finally:
        client.close()
        peer.transport.close()
        await relay.stop()


async def logged_in_allocate(relay: TurnServer) -> stun.Decoded:
    client = await logged_in(relay, "ipv4")
    response = await client.allocate()
    client.close()
    return response


async def test_start_and_stop() -> None:
    relay = await start_relay()
    assert relay.running
    with pytest.raises(RuntimeError):
        await relay.start()
    taken = TurnServer(relay.config)
    with pytest.raises(OSError):
        await taken.start()  # the ports are in use: nothing stays open
    assert not taken.running
    await relay.stop()
    await relay.stop()
    assert not relay.running
    await taken.start()  # the ports are free again
    await taken.stop()


async def test_unknown_request_method_gets_400(relay: TurnServer) -> None:
    client = await StunClient.connect(server_address(relay))
    response = await client.request(Message(Method.SHARED_SECRET, Class.REQUEST))
    assert error_code(response) == 400
    client.close()


@pytest.mark.parametrize("kind", ["udp", "tcp"])
async def test_send_and_data_indications(relay: TurnServer, kind: str) -> None:
    peer, peer_address = await make_peer()
    client = await logged_in(relay, kind=kind)
    relayed = (await client.allocate()).attributes["XOR-RELAYED-ADDRESS"]
    send = Message(Method.SEND, Class.INDICATION, attributes={"XOR-PEER-ADDRESS": peer_address, "DATA": b"x"})
    client.send_raw(stun.encode(send, fingerprint=False))  # no permission yet (RFC 8656 §11.2): dropped, so ...
    assert is_success(await client.create_permission(peer_address))
    for payload in (b"a", b"ab", b"abc", b"abcd", b"hello"):  # ... the first data the peer gets is b"a"
        send.transaction_id = bytes(12)
        send.attributes["DATA"] = payload
        client.send_raw(stun.encode(send, fingerprint=False))
        data, source = await asyncio.wait_for(peer.received.get(), 2)
        assert (data, source) == (payload, relayed)
        peer.transport.sendto(payload[::-1], relayed)  # type: ignore[attr-defined]
        indication = stun.decode(await asyncio.wait_for(client.received.get(), 2))
        assert indication.message.message_method == Method.DATA
        assert indication.message.message_class == Class.INDICATION
        assert indication.attributes["DATA"] == payload[::-1]
        assert indication.peers == [peer_address]
    assert relay.counters.packets_to_peers == 5 and relay.counters.packets_to_clients == 5
    client.close()
    peer.transport.close()


@pytest.mark.parametrize("kind", ["udp", "tcp"])
async def test_channel_data_both_ways(relay: TurnServer, kind: str) -> None:
    peer, peer_address = await make_peer()
    client = await logged_in(relay, kind=kind)
    relayed = (await client.allocate()).attributes["XOR-RELAYED-ADDRESS"]
    assert is_success(await client.channel_bind(0x4321, peer_address))
    for size in (1, 2, 3, 4, 5, 1200):
        payload = bytes([size % 251]) * size
        client.send_raw(channel_data(0x4321, payload))
        assert await asyncio.wait_for(peer.received.get(), 2) == (payload, relayed)
        peer.transport.sendto(payload, relayed)  # type: ignore[attr-defined]
        frame = await asyncio.wait_for(client.received.get(), 2)
        assert parse_channel_data(frame) == (0x4321, payload)
        if kind == "tcp":
            assert len(frame) % 4 == 0  # padded (RFC 8656 §12.5)
    # A ChannelData shorter than its length field, or on an unbound channel, is dropped.
    if kind == "udp":
        client.send_raw(struct.pack("!HH", 0x4321, 10) + b"short")
    client.send_raw(channel_data(0x4322, b"nobody"))
    client.send_raw(channel_data(0x4321, b"marker"))  # the next thing the peer gets, if the others were dropped
    assert await asyncio.wait_for(peer.received.get(), 2) == (b"marker", relayed)
    client.close()
    peer.transport.close()


async def test_data_from_peers_without_permission_is_dropped(relay: TurnServer) -> None:
    peer, _ = await make_peer()
    client = await logged_in(relay)
    relayed = (await client.allocate()).attributes["XOR-RELAYED-ADDRESS"]
    assert is_success(await client.create_permission(("127.0.0.9", 1)))  # another peer's IP
    peer.transport.sendto(b"unsolicited", relayed)  # type: ignore[attr-defined]
    # The marker: once this peer has a permission, its next packet is the first the client hears of it.
    assert is_success(await client.create_permission(peer.transport.get_extra_info("sockname")))  # type: ignore[attr-defined]
    peer.transport.sendto(b"marker", relayed)  # type: ignore[attr-defined]
    indication = stun.decode(await asyncio.wait_for(client.received.get(), 2))
    assert indication.attributes["DATA"] == b"marker"
    assert relay.counters.packets_to_clients == 1
    client.close()
    peer.transport.close()


async def test_tcp_allocation_is_deleted_when_the_connection_closes(relay: TurnServer) -> None:
    client = await logged_in(relay, kind="tcp")
    assert is_success(await client.allocate())
    assert relay.counters.allocations == 1
    client.close()
    await allocations_drop_to_zero(relay)


async def test_stream_garbage_closes_the_connection(relay: TurnServer) -> None:
    reader, writer = await asyncio.open_connection(*server_address(relay))
    writer.write(b"\xff" * 32)
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
