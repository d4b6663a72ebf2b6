"""Security defaults: the peer deny matrix, quotas on unauthenticated traffic, no amplification."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import struct

import pytest
from aioice.stun import Class, Message, Method

from tests.support import free_port
from tests.turn.support import (
    FakeClock,
    StunClient,
    credentials,
    error_code,
    is_success,
    relay_config,
    start_relay,
)
from turn import stun
from turn.budget import TokenBuckets
from turn.policy import PeerPolicy, canonical_ip, parse_networks
from turn.server import AMPLIFICATION, build_peer_policy

DENIED_BY_DEFAULT = [
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "::",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible
    "169.254.169.254",
    "169.254.1.1",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "fe80::1",
    "ff02::1",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "192.0.2.1",  # documentation
]


def policy(allowed: list[str], denied: tuple[str, ...] | list[str] = (),
           auto: tuple[str, ...] | list[str] = ()) -> PeerPolicy:
    return PeerPolicy(parse_networks(allowed), parse_networks(auto), parse_networks(denied))


@pytest.mark.parametrize("address", DENIED_BY_DEFAULT)
def test_special_addresses_are_denied_even_under_allow_all(address: str) -> None:
    everything = policy(["0.0.0.0/0", "::/0"], auto=["0.0.0.0/0", "::/0"])
    assert not everything.allows_ip(address)
    assert not everything.allows((address, 5000))


def test_canonicalisation() -> None:
    assert canonical_ip("::ffff:10.1.2.3") == ipaddress.IPv4Address("10.1.2.3")
    assert canonical_ip("fe80::1%eth0") == ipaddress.IPv6Address("fe80::1")
    with pytest.raises(ValueError):
        canonical_ip("example.org")


def test_an_explicit_cidr_inside_a_special_block_opens_it() -> None:
    loopback = policy(["127.0.0.0/8"])
    assert loopback.allows_ip("127.0.0.1") and loopback.allows_ip("::ffff:127.0.0.1")
    assert not loopback.allows_ip("::1") and not loopback.allows_ip("10.0.0.1")
    metadata = policy(["169.254.169.254/32"])
    assert metadata.allows_ip("169.254.169.254") and not metadata.allows_ip("169.254.169.253")


def test_auto_networks_never_open_special_blocks() -> None:
    auto = policy([], auto=["127.0.0.0/8", "192.168.1.0/24"])
    assert not auto.allows_ip("127.0.0.1")
    assert auto.allows_ip("192.168.1.20") and not auto.allows_ip("192.168.2.20")


def test_denied_peers_win() -> None:
    lan = policy(["192.168.0.0/16"], denied=["192.168.1.1/32"])
    assert lan.allows_ip("192.168.1.2") and not lan.allows_ip("192.168.1.1")
    assert not lan.allows_ip("::ffff:192.168.1.1")


HOST = [ipaddress.ip_interface("192.168.1.10/24"), ipaddress.ip_interface("127.0.0.1/8")]


def test_own_listening_ports_are_denied_whatever_is_allowed() -> None:
    config = relay_config(listen="0.0.0.0", relay_ip="192.168.1.10", port=3478, tls_port=5349,
                          ssl_context=ssl.create_default_context(ssl.Purpose.CLIENT_AUTH),
                          allowed_peers=("127.0.0.0/8", "192.168.1.0/24"))
    built = build_peer_policy(config, HOST)
    for host in ("127.0.0.1", "127.0.0.2", "192.168.1.10", "::ffff:192.168.1.10"):
        for port in (3478, 5349):
            assert not built.allows((host, port)), (host, port)
        assert built.allows((host, 3479))
    assert built.allows(("192.168.1.11", 3478))  # another machine's TURN server is just a peer
    assert built.allows_ip("192.168.1.10")  # permissions carry no port (RFC 8656 §9)


def test_auto_resolves_to_host_subnets_and_relay_address() -> None:
    config = relay_config(listen="0.0.0.0", relay_ip="203.0.114.7", allowed_peers=("auto",))
    built = build_peer_policy(config, HOST)
    assert built.allows_ip("192.168.1.99") and built.allows_ip("203.0.114.7")
    assert not built.allows_ip("192.168.2.1") and not built.allows_ip("127.0.0.1")
    assert not built.allows_ip("203.0.114.8")


async def test_deny_matrix_on_a_live_relay() -> None:
    """Each address of the matrix gets 403 from CreatePermission, and from ChannelBind with a port."""
    relay = await start_relay(allowed_peers=("10.0.0.0/8",))
    client = await StunClient.connect((relay.config.listen, relay.config.port))
    client.login(*credentials())
    try:
        assert is_success(await client.allocate())
        for address in [a for a in DENIED_BY_DEFAULT if ":" not in a or a.startswith("::ffff:")]:
            mapped = str(canonical_ip(address))
            assert error_code(await client.create_permission((mapped, 1))) == 403, address
        assert error_code(await client.create_permission(("11.0.0.1", 1))) == 403  # outside allowed_peers
        assert is_success(await client.create_permission(("10.0.0.1", 1)))
        assert relay.counters.peers_denied >= 10
    finally:
        client.close()
        await relay.stop()


async def test_ipv6_deny_matrix_on_a_live_relay() -> None:
    relay = await start_relay(listen="::1", allowed_peers=("fd00::/8",))
    client = await StunClient.connect((relay.config.listen, relay.config.port))
    client.login(*credentials())
    try:
        assert is_success(await client.allocate(REQUESTED_ADDRESS_FAMILY=stun.IPV6))
        for address in [a for a in DENIED_BY_DEFAULT if ":" in a and not a.startswith("::ffff:")]:
            assert error_code(await client.create_permission((address, 1))) == 403, address
        assert is_success(await client.create_permission(("fd00::1", 1)))
    finally:
        client.close()
        await relay.stop()


async def test_own_ports_are_denied_on_a_live_relay_that_allows_loopback() -> None:
    relay = await start_relay(tls_port=None)
    client = await StunClient.connect((relay.config.listen, relay.config.port))
    client.login(*credentials())
    try:
        assert is_success(await client.allocate())
        own = ("127.0.0.1", relay.config.port)
        assert is_success(await client.create_permission(own))  # the address alone is allowed here
        assert error_code(await client.channel_bind(0x4000, own)) == 403
        assert is_success(await client.channel_bind(0x4000, ("127.0.0.1", relay.config.port + 1)))
        # A Send indication to the listening port is dropped, not relayed back into the server.
        before = relay.counters.packets_to_peers
        send = Message(Method.SEND, Class.INDICATION, attributes={"XOR-PEER-ADDRESS": own, "DATA": b"loop"})
        client.send_raw(stun.encode(send, fingerprint=False))
        await asyncio.sleep(0.1)
        assert relay.counters.packets_to_peers == before
    finally:
        client.close()
        await relay.stop()


def test_token_buckets() -> None:
    clock = FakeClock()
    limiter = TokenBuckets(rate=2, burst=3, clock=clock, max_keys=2)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")
    assert not limiter.allow("c")  # the table is full of buckets that have not refilled
    clock.advance(0.5)
    assert limiter.allow("a") and not limiter.allow("a")
    clock.advance(10)
    limiter.prune()
    assert limiter._buckets == {}
    assert limiter.allow("c")


async def test_unauthenticated_udp_replies_are_rate_limited() -> None:
    relay = await start_relay(unauthenticated_rate=0.01, unauthenticated_burst=5)
    client = await StunClient.connect((relay.config.listen, relay.config.port))
    try:
        answered = 0
        for _ in range(10):
            try:
                await client.request(Message(Method.BINDING, Class.REQUEST), timeout=0.2)
                answered += 1
            except TimeoutError:
                pass
        assert answered == 5
        assert relay.counters.rate_limited == 5
        # Signed replies are not limited: the client proved it holds credentials.
        client.login(*credentials())
        client.nonce = relay.auth.nonce("127.0.0.1").encode()
        assert is_success(await client.allocate())
        for _ in range(10):
            assert is_success(await client.refresh())
    finally:
        client.close()
        await relay.stop()


async def test_replies_to_tiny_requests_never_exceed_three_times_their_size() -> None:
    relay = await start_relay(software="a rather long SOFTWARE attribute to tempt amplification")
    loop = asyncio.get_running_loop()
    sizes: list[tuple[int, int]] = []
    received: asyncio.Queue[bytes] = asyncio.Queue()

    class Probe(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            received.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Probe, remote_addr=(relay.config.listen, relay.config.port))
    try:
        requests = [
            struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, b"a" * 12),  # 20-byte Binding
            struct.pack("!HHI12sHHI", 0x0003, 8, 0x2112A442, b"b" * 12, 0x0019, 4, 0x11000000),  # Allocate
            struct.pack("!HHI12sHHI", 0x0004, 8, 0x2112A442, b"c" * 12, 0x000D, 4, 0),  # Refresh
        ]
        for request in requests:
            transport.sendto(request)
            try:
                reply = await asyncio.wait_for(received.get(), 0.5)
            except TimeoutError:
                continue
            sizes.append((len(request), len(reply)))
        assert sizes, "at least the Binding request is answered"
        assert all(reply <= AMPLIFICATION * request for request, reply in sizes), sizes
    finally:
        transport.close()
        await relay.stop()


async def test_tcp_is_not_rate_limited() -> None:
    relay = await start_relay(unauthenticated_rate=1.0, unauthenticated_burst=1, tls_port=None,
                              port=free_port())
    client = await StunClient.connect((relay.config.listen, relay.config.port), "tcp")
    try:
        for _ in range(5):
            assert is_success(await client.request(Message(Method.BINDING, Class.REQUEST)))
    finally:
        client.close()
        await relay.stop()

