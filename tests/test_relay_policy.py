"""The pure parts of the call relay policy: addresses announced in SDP and candidates, anonymous ids, and
``may_relay``'s answers from call state (real Registry, Peer and Call objects, no server)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opencall.relay.policy import SELF_TEST_PRINCIPAL, CallRelayPolicy
from opencall.services.announced import MAX_ADDRESSES, Announced, candidate_address, ice_ufrags, sdp_addresses
from opencall.services.anonymous import AnonymousIds
from opencall.services.identity import account_principal
from opencall.signaling.live import LiveCall, Peer
from opencall.signaling.registry import Registry

HOST = "candidate:842163049 1 udp 2122260223 192.168.1.20 54400 typ host generation 0 ufrag EsAw network-id 1"
SRFLX = ("candidate:1 1 udp 1686052607 203.0.114.7 61000 typ srflx raddr 192.168.1.20 rport 54400 generation 0")
RELAY = "candidate:2 1 udp 41885439 192.168.1.2 50010 typ relay raddr 203.0.114.7 rport 61000"
MDNS = "candidate:3 1 udp 2122260223 1f4712db-ea17-4bcf-a596-105139dfd8bf.local 54401 typ host"
TCP6 = "candidate:4 1 tcp 1518280447 fd00::20%2 9 typ host tcptype active"

SDP = "\r\n".join([
    "v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
    "m=audio 54400 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 192.168.1.20", "a=ice-ufrag:EsAw", "a=ice-pwd:x",
    f"a={HOST}", f"a={MDNS}", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0", "c=IN IP6 fd00::20/64",
    "a=ice-ufrag:EsAw", "",
])


def test_candidate_addresses() -> None:
    assert candidate_address(HOST) == "192.168.1.20"
    assert candidate_address(SRFLX) == "203.0.114.7"  # the connection address, not raddr
    assert candidate_address("a=" + RELAY) == "192.168.1.2"
    assert candidate_address(TCP6) == "fd00::20"  # zone dropped
    assert candidate_address("candidate:5 1 udp 1 ::ffff:10.0.0.9 5000 typ host") == "10.0.0.9"
    assert candidate_address(MDNS) is None
    for malformed in ("", "candidate:", "candidate:1 1 udp 1 10.0.0.1 5000", "candidate:1 1 udp 1 10.0.0.1 5 x host",
                      "foo:1 1 udp 1 10.0.0.1 5000 typ host", "candidate:1 1 udp 1 0.0.0.0 9 typ host"):
        assert candidate_address(malformed) is None, malformed


def test_sdp_addresses_and_ufrags() -> None:
    assert sdp_addresses(SDP) == {"192.168.1.20", "fd00::20"}  # no mDNS name, no 0.0.0.0 placeholder
    assert sdp_addresses("c=IN IP4 10.0.0.1/127/3\nc=IN\nc=IN IP4 host.example\nbogus") == {"10.0.0.1"}
    assert ice_ufrags(SDP) == frozenset({"EsAw"})


def test_announced_follows_ice_restarts() -> None:
    announced = Announced()
    announced.description(SDP)
    announced.candidate(SRFLX)
    announced.candidate(MDNS)
    assert announced.addresses == {"192.168.1.20", "fd00::20", "203.0.114.7"}
    announced.description(SDP.replace("c=IN IP4 192.168.1.20", "c=IN IP4 192.168.1.21"))  # same ICE session
    assert "192.168.1.20" in announced.addresses and "192.168.1.21" in announced.addresses
    restarted = "v=0\r\na=ice-ufrag:New1\r\nc=IN IP4 10.1.1.1\r\n"
    announced.description(restarted)
    assert announced.addresses == {"10.1.1.1"}
    for last in range(300):
        announced.candidate(f"candidate:1 1 udp 1 10.2.{last // 250}.{last % 250} 5000 typ host")
    assert len(announced.addresses) == MAX_ADDRESSES
    announced.clear()
    assert announced.addresses == set() and announced.ufrags == frozenset()


def test_anonymous_ids_are_signed() -> None:
    ids = AnonymousIds.from_secret("one secret")
    cookie = ids.mint()
    ident = ids.verify(cookie)
    assert ident is not None and cookie.startswith(ident + ".") and len(ident) == 17
    assert ids.mint() != cookie
    assert AnonymousIds.from_secret("another secret").verify(cookie) is None
    tag = cookie.partition(".")[2]
    for forged in (None, "", ident, f"{ident}.", f"{ident}.{'0' * 16}", f"anon-0123456789ab.{tag}",
                   f"{ident.upper()}.{tag}", f"{ident}.{tag}x", "anon-zzzzzzzzzzzz." + tag):
        assert ids.verify(forged) is None, forged


def _peer(registry: Registry, sid: str, principal: str | None, ip: str) -> Peer:
    peer = Peer(sid=sid, user_id=None, username=None, api_key_hash=None, ip=ip, principal=principal)
    registry.connect(peer)
    registry.register(peer, sid.upper())
    return peer


def _call(caller: Peer, *ringing: Peer) -> LiveCall:
    call = LiveCall(caller=caller, callee_call_id=ringing[0].call_id or "", ringing=list(ringing),
                started_at=datetime.now(UTC))
    for peer in call.parties():
        peer.call = call
    return call


@pytest.fixture
def registry() -> Registry:
    return Registry()


def test_only_a_party_of_a_live_call_may_relay_and_only_to_the_other_party(registry: Registry) -> None:
    policy = CallRelayPolicy(registry, ["192.168.1.2", "fd00::2"])
    alice = _peer(registry, "a", account_principal(1), "192.168.1.20")
    bob = _peer(registry, "b", "anon-0123456789ab", "192.168.1.30")
    _peer(registry, "m", "anon-ffffffffffff", "192.168.1.66")  # mallory: connected, in no call
    assert not policy("user-1", ("192.168.1.30", 5000))  # no call yet
    call = _call(alice, bob)
    alice.announced.description(SDP)
    bob.announced.candidate("candidate:1 1 udp 1 203.0.114.9 5000 typ srflx")
    # Ringing: alice may reach bob's socket address and what he announced, and the relay itself.
    assert policy("user-1", ("192.168.1.30", 5000))
    assert policy("user-1", ("203.0.114.9", 5000))
    assert policy("user-1", ("192.168.1.2", 50000)) and policy("user-1", ("fd00::2", 50000))
    assert not policy("user-1", ("192.168.1.20", 5000))  # her own address is no peer of hers
    assert not policy("user-1", ("192.168.1.1", 5353))  # the router: nobody announced it
    # Bob may reach what alice announced (her SDP), not what he announced himself.
    assert policy("anon-0123456789ab", ("fd00::20", 5000))
    assert not policy("anon-0123456789ab", ("203.0.114.9", 5000))
    # Strangers, with valid credentials: nothing, not even the relay address.
    assert not policy("anon-ffffffffffff", ("192.168.1.30", 5000))
    assert not policy("anon-ffffffffffff", ("192.168.1.2", 50000))
    assert not policy("user-2", ("192.168.1.30", 5000))
    call.state = "ended"
    assert not policy("user-1", ("192.168.1.30", 5000))


def test_special_addresses_count_only_for_a_party_on_that_block(registry: Registry) -> None:
    policy = CallRelayPolicy(registry, ["192.168.1.2"])
    lan = _peer(registry, "l", "user-1", "192.168.1.20")
    local = _peer(registry, "o", "user-2", "127.0.0.1")
    _call(lan, local)
    lan.announced.description("a=ice-ufrag:x\r\nc=IN IP4 127.0.0.1\r\nc=IN IP4 169.254.169.254\r\n"
                              "c=IN IP6 64:ff9b::7f00:1\r\n")
    local.announced.description("a=ice-ufrag:y\r\nc=IN IP4 127.0.0.2\r\nc=IN IP6 ::1\r\n")
    for announced_by_lan in ("127.0.0.1", "169.254.169.254", "64:ff9b::7f00:1"):
        assert not policy("user-2", (announced_by_lan, 5000)), announced_by_lan
    assert policy("user-1", ("127.0.0.1", 5000))  # the other party's socket address
    assert policy("user-1", ("127.0.0.2", 5000))  # announced, in the block its socket is in
    assert not policy("user-1", ("::1", 5000))  # announced, but another block


def test_the_self_test_may_reach_the_relay_addresses_only(registry: Registry) -> None:
    policy = CallRelayPolicy(registry, ["192.168.1.2"])
    assert policy(SELF_TEST_PRINCIPAL, ("192.168.1.2", 40000))
    assert not policy(SELF_TEST_PRINCIPAL, ("192.168.1.3", 40000))


def test_a_principal_is_forgotten_with_its_socket(registry: Registry) -> None:
    policy = CallRelayPolicy(registry, [])
    alice = _peer(registry, "a", "user-1", "192.168.1.20")
    bob = _peer(registry, "b", "user-2", "192.168.1.30")
    _call(alice, bob)
    assert policy("user-1", ("192.168.1.30", 5000))
    registry.disconnect("a")
    assert not policy("user-1", ("192.168.1.30", 5000))
    assert policy("user-2", ("192.168.1.20", 5000))  # bob may still reach alice's last address meanwhile
