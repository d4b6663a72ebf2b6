"""aioice's TURN client (a third-party implementation) against our relay over UDP, TCP and TLS."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest
from aioice.turn import create_turn_endpoint

from tests.support import free_port
from tests.turn.support import client_tls_context, credentials, self_signed, start_relay
from turn import TurnServer


class Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait((data, addr))


class Echo(Inbox):
    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


async def exchange_through(server: tuple[str, int], transport: str, relay: TurnServer,
                           context: ssl.SSLContext | None = None) -> None:
    loop = asyncio.get_running_loop()
    echo_transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    echo = echo_transport.get_extra_info("sockname")
    username, password = credentials()
    turn, inbox = await create_turn_endpoint(Inbox, server, username, password, transport=transport,
                                             ssl=context)
    try:
        relayed = turn.get_extra_info("sockname")
        assert relayed[0] == "127.0.0.1"
        for i in range(20):
            payload = f"message {i}".encode() * (i + 1)
            turn.sendto(payload, echo)
            assert await asyncio.wait_for(inbox.received.get(), 2) == (payload, echo)
        assert relay.counters.allocations == 1
        assert relay.counters.channels == 1
        assert relay.counters.packets_to_peers == 20 and relay.counters.packets_to_clients == 20
    finally:
        turn.close()
        echo_transport.close()
    for _ in range(50):  # aioice deletes the allocation with Refresh(LIFETIME=0) on close
        if relay.counters.allocations == 0:
            break
        await asyncio.sleep(0.02)
    assert relay.counters.allocations == 0


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_aioice_client(relay: TurnServer, transport: str) -> None:
    await exchange_through((relay.config.listen, relay.config.port), transport, relay)


async def test_aioice_client_over_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    relay = await start_relay(tls_port=free_port(), tls_cert=cert, tls_key=key)
    try:
        assert relay.config.tls_port is not None
        await exchange_through((relay.config.listen, relay.config.tls_port), "tcp", relay,
                               client_tls_context(cert))
    finally:
        await relay.stop()


async def test_two_aioice_clients_talk_relay_to_relay(relay: TurnServer) -> None:
    """Both sides relayed by the same server, as in a relay-only call on one box."""
    server = (relay.config.listen, relay.config.port)
    a, a_inbox = await create_turn_endpoint(Inbox, server, *credentials("a"), transport="udp")
    b, b_inbox = await create_turn_endpoint(Inbox, server, *credentials("b"), transport="tcp")
    try:
        a_relayed, b_relayed = a.get_extra_info("sockname"), b.get_extra_info("sockname")
        # Each side must permit the other before data flows (RFC 8656 §9): the first sends bind channels.
        a.sendto(b"open", b_relayed)
        b.sendto(b"open", a_relayed)
        await asyncio.sleep(0.2)
        while not a_inbox.received.empty():
            a_inbox.received.get_nowait()
        while not b_inbox.received.empty():
            b_inbox.received.get_nowait()
        a.sendto(b"hello b", b_relayed)
        assert await asyncio.wait_for(b_inbox.received.get(), 2) == (b"hello b", a_relayed)
        b.sendto(b"hello a", a_relayed)
        assert await asyncio.wait_for(a_inbox.received.get(), 2) == (b"hello a", b_relayed)
        assert relay.counters.allocations == 2
    finally:
        a.close()
        b.close()
        await asyncio.sleep(0.1)
