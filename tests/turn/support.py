"""Helpers for the relay tests: configs on 127.0.0.1, a controllable clock, and a raw STUN/TURN client."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from aioice.stun import Class, Message, Method, message_fingerprint, message_integrity
from aioice.turn import UDP_TRANSPORT, make_integrity_key

from tests.support import free_port
from tests.support import self_signed as shared_self_signed
from turn import RelayConfig, TurnServer, indications, make_credentials, stun
from turn.framing import StreamFramer

SECRET = "test-secret"
REALM = "opencall"
RELAY_PORTS = (40000, 44999)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def relay_config(**overrides: Any) -> RelayConfig:
    """A relay on free ports of 127.0.0.1 that may relay to loopback peers."""
    config = RelayConfig(
        secret=SECRET,
        listen="127.0.0.1",
        port=free_port(socket.SOCK_DGRAM),
        relay_ports=RELAY_PORTS,
        allowed_peers=("127.0.0.0/8",),
    )
    return replace(config, **overrides)


async def start_relay(**overrides: Any) -> TurnServer:
    clocks = {key: overrides.pop(key) for key in ("clock", "wall_clock", "may_relay") if key in overrides}
    server = TurnServer(relay_config(**overrides), **clocks)
    await server.start()
    return server


def credentials(user: str = "alice", ttl: int = 3600, now: float | None = None) -> tuple[str, str]:
    username, password, _ = make_credentials(SECRET, user, ttl, now=now)
    return username, password


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 written to ``tmp`` (tests.support's, valid a day)."""
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    shared_self_signed(cert_path, key_path, days=1)
    return cert_path, key_path


def client_tls_context(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    return context


class _Receiver(asyncio.DatagramProtocol, asyncio.Protocol):
    def __init__(self, deliver: Callable[[bytes], None]) -> None:
        self.deliver = deliver
        self.framer = StreamFramer()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.deliver(data)

    def data_received(self, data: bytes) -> None:
        for frame in self.framer.feed(data):
            self.deliver(frame)


class StunClient:
    """A raw STUN/TURN client over UDP, TCP or TLS that sends exactly what a test builds.

    Responses are matched to requests by transaction ID; anything else (Data indications, ChannelData) lands
    in ``received``.
    """

    def __init__(self) -> None:
        self.transport: Any = None
        self.pending: dict[bytes, asyncio.Future[stun.Decoded]] = {}
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.username: str | None = None
        self.key: bytes | None = None
        self.nonce: bytes | None = None
        self.realm = REALM
        self.kind = "udp"

    @classmethod
    async def connect(cls, server: tuple[str, int], kind: str = "udp",
                      ssl_context: ssl.SSLContext | None = None) -> StunClient:
        client = cls()
        loop = asyncio.get_running_loop()
        if kind == "udp":
            client.transport, _ = await loop.create_datagram_endpoint(
                lambda: _Receiver(client._deliver), remote_addr=server
            )
        else:
            client.transport, _ = await loop.create_connection(
                lambda: _Receiver(client._deliver), server[0], server[1], ssl=ssl_context
            )
        client.kind = kind
        return client

    @property
    def local_address(self) -> tuple[str, int]:
        return self.transport.get_extra_info("sockname")[:2]

    def _deliver(self, data: bytes) -> None:
        if data[0] < 0x40:
            try:
                message = stun.decode(data)
            except ValueError:
                self.received.put_nowait(data)
                return
            future = self.pending.pop(message.message.transaction_id, None)
            if future is not None and not future.done():
                future.set_result(message)
                return
        self.received.put_nowait(data)

    def send_raw(self, data: bytes) -> None:
        if self.kind == "udp":
            self.transport.sendto(data)
        else:
            self.transport.write(data + b"\x00" * (-len(data) % 4))

    async def request(self, message: Message, key: bytes | None = None, timeout: float = 2.0,
                      fingerprint: bool = True) -> stun.Decoded:
        """Send ``message`` (signed with ``key``) and wait for its response."""
        future: asyncio.Future[stun.Decoded] = asyncio.get_running_loop().create_future()
        self.pending[message.transaction_id] = future
        self.send_raw(stun.encode(message, key, fingerprint))
        return await asyncio.wait_for(future, timeout)

    async def send_and_expect_nothing(self, data: bytes, wait: float = 0.2) -> None:
        """Send raw bytes and check no response for them arrives."""
        self.send_raw(data)
        await asyncio.sleep(wait)

    def close(self) -> None:
        self.transport.close()

    # TURN with long-term credentials.

    def login(self, username: str, password: str) -> None:
        self.username = username
        self.key = make_integrity_key(username, self.realm, password)

    async def authed(self, method: Method, attributes: dict[str, Any] | None = None,
                     transaction_id: bytes | None = None) -> stun.Decoded:
        """Send an authenticated request, fetching a nonce first (401 or 438) when needed."""
        for _ in range(3):
            message = Message(method, Class.REQUEST, transaction_id, dict(attributes or {}))
            if self.nonce is not None:
                message.attributes.update(USERNAME=self.username, REALM=self.realm, NONCE=self.nonce)
                response = await self.request(message, self.key)
            else:
                response = await self.request(message)
            code = response.message.error_code
            if (code == 438 or (code == 401 and self.nonce is None)) and "NONCE" in response.attributes:
                self.nonce = response.attributes["NONCE"]
                continue
            return response
        return response

    async def allocate(self, **attributes: Any) -> stun.Decoded:
        attributes.setdefault("REQUESTED_TRANSPORT", UDP_TRANSPORT)
        return await self.authed(Method.ALLOCATE, {k.replace("_", "-"): v for k, v in attributes.items()})

    async def create_permission(self, *peers: tuple[str, int]) -> stun.Decoded:
        """CreatePermission with one XOR-PEER-ADDRESS per peer (several attributes of the same type)."""
        assert self.nonce is not None and self.key is not None
        message = Message(Method.CREATE_PERMISSION, Class.REQUEST)
        encoded = b"".join(indications.xor_peer_address(peer, message.transaction_id) for peer in peers)
        message.attributes.update(USERNAME=self.username, REALM=self.realm, NONCE=self.nonce)
        data = stun.encode(message, None, fingerprint=False)
        # Splice the XOR-PEER-ADDRESS attributes in after the header, then sign the whole.
        body = encoded + data[20:]
        unsigned = data[:2] + len(body).to_bytes(2, "big") + data[4:20] + body
        signed = sign(unsigned, self.key)
        future: asyncio.Future[stun.Decoded] = asyncio.get_running_loop().create_future()
        self.pending[message.transaction_id] = future
        self.send_raw(signed)
        return await asyncio.wait_for(future, 2)

    async def channel_bind(self, number: int, peer: tuple[str, int]) -> stun.Decoded:
        return await self.authed(Method.CHANNEL_BIND, {"CHANNEL-NUMBER": number, "XOR-PEER-ADDRESS": peer})

    async def refresh(self, lifetime: int | None = None) -> stun.Decoded:
        return await self.authed(Method.REFRESH, {} if lifetime is None else {"LIFETIME": lifetime})


def sign(data: bytes, key: bytes) -> bytes:
    """Append MESSAGE-INTEGRITY and FINGERPRINT to an encoded message (RFC 8489 §14.5, §14.7)."""
    mac = message_integrity(data, key)
    with_mac = _append(data, 0x0008, mac)
    return _append(with_mac, 0x8028, message_fingerprint(with_mac).to_bytes(4, "big"))


def _append(data: bytes, kind: int, value: bytes) -> bytes:
    attribute = kind.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value
    length = len(data) - 20 + len(attribute)
    return data[:2] + length.to_bytes(2, "big") + data[4:] + attribute


def error_code(response: stun.Decoded) -> int | None:
    return response.message.error_code


def is_success(response: stun.Decoded) -> bool:
    return response.message.message_class == Class.RESPONSE
