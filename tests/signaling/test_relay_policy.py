"""turn.peer_policy: call (the default) on a real ``opencall serve``: credentials from /api/ice-config, sockets
with the same browser's cookies (python-socketio), TURN with aioice and with the raw client of tests/turn.

On 127.0.0.1 every address is loopback. The call policy opens a loopback address only as the other party's own
address (its socket connects from 127.0.0.1) or one it announced while its socket is on loopback too, so other
loopback addresses (127.0.0.9) stand for "an address outside the call" and 192.168.1.1 for the router.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aioice import stun as aioice_stun
from aioice.turn import create_turn_endpoint

from tests.signaling.clients import PyPeer
from tests.support import Server, configured_server, register
from tests.turn.support import StunClient, error_code, is_success

WAIT = 5.0
ROUTER = ("192.168.1.1", 5353)


@pytest.fixture(scope="module")
def relay_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on the default peer policy (``call``), with small allocation quotas."""
    overrides = {"turn": {"max_allocations_per_user": 3, "max_allocations_per_ip": 8}}
    with configured_server(tmp_path_factory.mktemp("relay-policy"), overrides) as running:
        assert "peer_policy" not in running.config["turn"]
        yield running


class Receiver(asyncio.DatagramProtocol):
    """Both ends: a TURN client's protocol (what the relay delivers, and send errors) or a plain UDP peer."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.received: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.errors: asyncio.Queue[Exception] = asyncio.Queue()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.echo:
            self.transport.sendto(data, addr)
        self.received.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.put_nowait(exc)


@dataclass
class Party:
    """One browser: its HTTP cookies, its socket and its relay credentials."""

    http: httpx.Client
    socket: PyPeer
    username: str
    credential: str
    call_id: str = ""

    @property
    def principal(self) -> str:
        return self.username.split(":", 1)[1]

    async def allocate(self, server: Server) -> tuple[Any, Receiver]:
        transport, protocol = await asyncio.wait_for(create_turn_endpoint(
            Receiver, ("127.0.0.1", server.config["turn"]["port"]), self.username, self.credential,
            transport="udp"), WAIT)
        return transport, protocol

    async def raw(self, server: Server) -> StunClient:
        """A TURN client speaking raw STUN (for CreatePermission), allocated with this party's credentials."""
        client = await StunClient.connect(("127.0.0.1", server.config["turn"]["port"]))
        client.login(self.username, self.credential)
        assert is_success(await client.allocate())
        return client


async def party(server: Server, http: httpx.Client, label: str) -> Party:
    """Fetch ice-config as the page does (an anonymous browser gets its cookie here), then connect the socket
    with the browser's cookies and register."""
    servers = http.get("/api/ice-config").json()["iceServers"]
    cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
    peer = await PyPeer(label, "websocket").connect(server.base_url, headers={"Cookie": cookie})
    await peer.emit("register", {})
    registered = await peer.next("registered")
    return Party(http, peer, servers[1]["username"], servers[1]["credential"], registered["callId"])


def sdp(kind: str, ufrag: str, *addresses: str) -> dict[str, str]:
    lines = ["v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "m=audio 9 UDP/TLS/RTP/SAVPF 111",
             "c=IN IP4 0.0.0.0", f"a=ice-ufrag:{ufrag}", "a=ice-pwd:0123456789012345678901"]
    lines += [f"a=candidate:{n} 1 udp 2122260223 {address} typ host" for n, address in enumerate(addresses)]
    return {"type": kind, "sdp": "\r\n".join([*lines, ""])}


async def echo_peer(host: str) -> tuple[Any, Receiver]:
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: Receiver(echo=True), local_addr=(host, 0))
    return transport, protocol


async def refused(protocol: Receiver) -> int:
    """The error code of the next failed send through the relay (aioice reports it to the protocol)."""
    exc = await asyncio.wait_for(protocol.errors.get(), WAIT)
    assert isinstance(exc, aioice_stun.TransactionFailed), exc
    return int(exc.response.error_code)


async def release(*clients: StunClient) -> None:
    """Delete the clients' allocations (Refresh with LIFETIME 0, RFC 8656 §8), so they leave the quotas."""
    for client in clients:
        if client.nonce is not None:
            await client.refresh(0)
        client.close()


def metric(server: Server, name: str) -> float:
    text = httpx.get(server.base_url + "/metrics").text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, name
    return float(found.group(1))


@pytest.fixture
async def call(relay_server: Server) -> AsyncIterator[tuple[Party, Party]]:
    """Alice (an account) calls Bob (an anonymous browser); both announce an echo socket on 127.0.0.5/6."""
    account, _ = register(relay_server)
    alice = await party(relay_server, account, "alice")
    bob = await party(relay_server, relay_server.client(), "bob")
    assert alice.principal.startswith("user-") and bob.principal.startswith("anon-")
    await alice.socket.emit("call", {"targetCallId": bob.call_id, "offer": sdp("offer", "a1", "127.0.0.5 40001")})
    await bob.socket.next("incoming-call")
    await bob.socket.emit("answer", {"targetCallId": alice.call_id, "answer": sdp("answer", "b1")})
    await alice.socket.next("call-answered")
    await bob.socket.emit("ice-candidate", {"targetCallId": alice.call_id, "candidate": {
        "candidate": "candidate:9 1 udp 2122260223 127.0.0.6 40002 typ host", "sdpMid": "0"}})
    await bob.socket.sync()
    yield alice, bob
    for each in (alice, bob):
        await each.socket.close()


async def test_the_parties_of_a_call_relay_to_each_other(relay_server: Server, call: tuple[Party, Party]) -> None:
    alice, bob = call
    a_relay, a_got = await alice.allocate(relay_server)
    b_relay, b_got = await bob.allocate(relay_server)
    b_echo, _ = await echo_peer("127.0.0.6")  # bob's trickled candidate
    a_echo, _ = await echo_peer("127.0.0.5")  # alice's candidate in her offer
    try:
        # Relay to relay, both ways (what two relay-only browsers do).
        a_relay.sendto(b"to bob's relay", b_relay.get_extra_info("sockname"))
        b_relay.sendto(b"to alice's relay", a_relay.get_extra_info("sockname"))
        assert (await asyncio.wait_for(b_got.received.get(), WAIT))[0] == b"to bob's relay"
        assert (await asyncio.wait_for(a_got.received.get(), WAIT))[0] == b"to alice's relay"
        # To the addresses the other party announced, and back.
        a_relay.sendto(b"to bob's candidate", b_echo.get_extra_info("sockname"))
        assert (await asyncio.wait_for(a_got.received.get(), WAIT))[0] == b"to bob's candidate"
        b_relay.sendto(b"to alice's candidate", a_echo.get_extra_info("sockname"))
        assert (await asyncio.wait_for(b_got.received.get(), WAIT))[0] == b"to alice's candidate"
        # Not to its own announced address, nor to one outside the call, nor below port 1024.
        before = metric(relay_server, "opencall_turn_peers_refused_by_call_policy_total")
        a_relay.sendto(b"x", a_echo.get_extra_info("sockname"))
        assert await refused(a_got) == 403
        b_relay.sendto(b"x", ("127.0.0.9", 40009))
        assert await refused(b_got) == 403
        b_relay.sendto(b"x", ROUTER)
        assert await refused(b_got) == 403
        a_relay.sendto(b"x", ("127.0.0.1", 1000))
        assert await refused(a_got) == 403
        assert metric(relay_server, "opencall_turn_peers_refused_by_call_policy_total") == before + 3
    finally:
        for transport in (a_relay, b_relay, a_echo, b_echo):
            transport.close()
        await asyncio.sleep(0.1)


async def test_an_ice_restart_replaces_the_announced_addresses(relay_server: Server,
                                                               call: tuple[Party, Party]) -> None:
    alice, bob = call
    raw = await bob.raw(relay_server)
    try:
        assert is_success(await raw.create_permission(("127.0.0.5", 1)))
        await alice.socket.emit("renegotiate", {"targetCallId": bob.call_id,
                                                "description": sdp("offer", "a2", "127.0.0.7 40007")})
        await bob.socket.next("renegotiate")
        assert is_success(await raw.create_permission(("127.0.0.7", 1)))
        assert error_code(await raw.create_permission(("127.0.0.5", 1))) == 403
    finally:
        await release(raw)


async def test_a_stranger_with_valid_credentials_reaches_nothing(relay_server: Server,
                                                                 call: tuple[Party, Party]) -> None:
    stranger = await party(relay_server, relay_server.client(), "stranger")
    raw = await stranger.raw(relay_server)
    transport, protocol = await stranger.allocate(relay_server)
    try:
        for peer in (ROUTER, ("127.0.0.1", 40000), ("127.0.0.5", 40001), ("127.0.0.6", 40002)):
            assert error_code(await raw.create_permission(peer)) == 403, peer
            transport.sendto(b"x", peer)
            assert await refused(protocol) == 403, peer
        # Not even the relay addresses: relay to relay is for parties of a call.
        transport.sendto(b"x", (relay_server.config["turn"]["advertise"], 50000))
        assert await refused(protocol) == 403
    finally:
        await release(raw)
        transport.close()
        await stranger.socket.close()
        await asyncio.sleep(0.1)
    log = relay_server.log_file.read_text()
    assert log.count(f"relay refused {stranger.principal}") == 1  # once, not once per request


async def test_after_hangup_nothing_more_is_permitted(relay_server: Server, call: tuple[Party, Party]) -> None:
    alice, bob = call
    raw = await alice.raw(relay_server)
    try:
        assert is_success(await raw.create_permission(("127.0.0.6", 1)))
        await alice.socket.emit("hangup", {"targetCallId": bob.call_id})
        await bob.socket.next("call-ended")
        assert error_code(await raw.create_permission(("127.0.0.6", 1))) == 403
        assert error_code(await raw.channel_bind(0x4000, ("127.0.0.1", 40000))) == 403
    finally:
        await release(raw)


async def test_even_port_reservations_count_against_the_quotas(relay_server: Server) -> None:
    """max_allocations_per_user 3 and max_allocations_per_ip 8 on this server."""
    http = relay_server.client()
    servers = http.get("/api/ice-config").json()["iceServers"]
    username, credential = servers[1]["username"], servers[1]["credential"]
    assert metric(relay_server, "opencall_turn_allocations") == 0  # the other tests released theirs
    clients = []
    try:
        for _ in range(4):
            client = await StunClient.connect(("127.0.0.1", relay_server.config["turn"]["port"]))
            client.login(username, credential)
            clients.append(client)
        reserving = await clients[0].allocate(EVEN_PORT=True)  # an allocation and the reserved next port
        assert is_success(reserving) and "RESERVATION-TOKEN" in reserving.attributes
        assert is_success(await clients[1].allocate())
        assert error_code(await clients[2].allocate()) == 486  # two allocations and a reservation: 3 of 3
        token = reserving.attributes["RESERVATION-TOKEN"]
        assert is_success(await clients[2].allocate(RESERVATION_TOKEN=token))  # claimed: counted once
        assert error_code(await clients[3].allocate()) == 486
        # Fresh anonymous ids from the same address still meet the per-address quota (8): 3 held by the
        # first id, 5 more at most.
        others = []
        for _ in range(6):
            fresh = relay_server.client().get("/api/ice-config").json()["iceServers"][1]
            client = await StunClient.connect(("127.0.0.1", relay_server.config["turn"]["port"]))
            client.login(fresh["username"], fresh["credential"])
            clients.append(client)
            others.append(error_code(await client.allocate()))
        assert others == [None] * 5 + [486]
    finally:
        await release(*clients)


def test_the_page_gives_a_new_browser_its_anonymous_id(relay_server: Server) -> None:
    """The page mints the anonymous id, so the socket that connects after it carries one (and so do the relay
    credentials fetched later)."""
    http = relay_server.client()
    page = http.get("/")
    assert page.status_code == 200
    assert re.fullmatch(r"anon-[0-9a-f]{12}\.[0-9a-f]{16}", http.cookies["opencall_anon"])
    again = http.get("/")
    assert "opencall_anon" not in again.cookies  # kept, not replaced
