"""The relay self-test of ``opencall doctor``: allocate on our own TURN server and echo a packet through it.

The test is what a phone's browser does: authenticate with a time-limited credential, allocate a relayed
address, send a datagram through it to a peer, and receive the peer's answer back through the relay. The
peer is a UDP socket of this process bound to the relay's own address, so nothing leaves the host.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from dataclasses import dataclass
from typing import cast

from aioice.turn import create_turn_endpoint

from opencall.relay.policy import SELF_TEST_PRINCIPAL
from turn.credentials import make_credentials

TIMEOUT = 5.0
PROBE_USER = SELF_TEST_PRINCIPAL  # under peer_policy call, it may relay to the relay's own addresses only


class RelayProbeError(Exception):
    """The self-test failed; the message says at which step."""


@dataclass(frozen=True)
class EchoResult:
    relayed: tuple[str, int]  # the relayed transport address the server allocated
    round_trip_ms: float


class _Client(asyncio.DatagramProtocol):
    """The TURN client side: remembers what comes back through the relay."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.errors: list[Exception] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)


class _EchoPeer(asyncio.DatagramProtocol):
    """The peer: sends every datagram back where it came from (the relayed address)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "401" in text or "Unauthorized" in text:
        return f"the relay refused the credentials ({text})"
    return text


async def relay_echo(host: str, port: int, secret: str, ttl: int = 600, timeout: float = TIMEOUT) -> EchoResult:
    """Allocate on ``host:port`` over UDP with a credential from ``secret`` and echo one packet through it.

    Raises :class:`RelayProbeError` naming the step that failed.
    """
    loop = asyncio.get_running_loop()
    creds = make_credentials(secret, PROBE_USER, ttl)
    try:
        transport, client = await asyncio.wait_for(
            create_turn_endpoint(_Client, (host, port), creds.username, creds.credential, transport="udp"),
            timeout,
        )
    except TimeoutError:
        raise RelayProbeError(f"no answer from the relay at {host}:{port}/udp") from None
    except Exception as exc:  # aioice raises TransactionFailed, ConnectionError, OSError...
        raise RelayProbeError(f"allocation failed: {_why(exc)}") from None
    peer_transport = None
    try:
        relayed = transport.get_extra_info("sockname")
        family = socket.AF_INET6 if ":" in relayed[0] else socket.AF_INET
        try:
            peer_transport, _ = await loop.create_datagram_endpoint(
                _EchoPeer, local_addr=(relayed[0], 0), family=family)
        except OSError as exc:
            raise RelayProbeError(f"cannot open a test peer on the relay address {relayed[0]}: {exc}") from None
        peer_addr = peer_transport.get_extra_info("sockname")[:2]
        payload = b"opencall-doctor " + secrets.token_hex(8).encode()
        started = loop.time()
        transport.sendto(payload, peer_addr)
        try:
            while True:
                data, _ = await asyncio.wait_for(client.received.get(), timeout)
                if data == payload:
                    break
        except TimeoutError:
            why = f" ({_why(client.errors[0])})" if client.errors else ""
            raise RelayProbeError(
                f"allocated {relayed[0]}:{relayed[1]} but the echo from {peer_addr[0]}:{peer_addr[1]} "
                f"did not come back{why}") from None
        return EchoResult(relayed=(relayed[0], relayed[1]), round_trip_ms=(loop.time() - started) * 1000)
    finally:
        if peer_transport is not None:
            peer_transport.close()
        transport.close()
        await asyncio.sleep(0.05)  # let aioice send the Refresh(lifetime=0) that frees the allocation
