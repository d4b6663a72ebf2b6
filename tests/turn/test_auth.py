"""Long-term credentials with time-limited usernames: expired, forged, stale nonce, every request checked."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from aioice.stun import Class, Message, Method
from aioice.turn import make_integrity_key

from tests.turn.support import (
    REALM,
    SECRET,
    FakeClock,
    StunClient,
    credentials,
    error_code,
    is_success,
    start_relay,
)
from turn import TurnServer, credential_for, make_credentials, stun
from turn.auth import Authenticator


def test_nonce_is_bound_to_ip_and_time() -> None:
    clock = FakeClock(1_700_000_000)
    auth = Authenticator(SECRET, REALM, nonce_lifetime=600, clock=clock)
    nonce = auth.nonce("192.0.2.1").encode()
    assert len(nonce) == 16
    assert auth.nonce_is_valid(nonce, "192.0.2.1")
    assert not auth.nonce_is_valid(nonce, "192.0.2.2")
    assert not Authenticator("other", REALM, 600, clock).nonce_is_valid(nonce, "192.0.2.1")
    tampered = bytearray(base64.urlsafe_b64decode(nonce))
    tampered[3] ^= 1  # push the expiry: the HMAC no longer matches
    assert not auth.nonce_is_valid(base64.urlsafe_b64encode(bytes(tampered)), "192.0.2.1")
    assert not auth.nonce_is_valid(b"not base64 !", "192.0.2.1")
    clock.advance(599)
    assert auth.nonce_is_valid(nonce, "192.0.2.1")
    clock.advance(1)
    assert not auth.nonce_is_valid(nonce, "192.0.2.1")


def test_key_is_rfc_8489_long_term_key() -> None:
    auth = Authenticator(SECRET, REALM, 600)
    username = "1700000000:alice"
    assert auth.key_for(username) == make_integrity_key(username, REALM, credential_for(SECRET, username))


@pytest.fixture
async def clocked_relay() -> AsyncIterator[tuple[TurnServer, FakeClock]]:
    wall = FakeClock(1_700_000_000)
    relay = await start_relay(wall_clock=wall)
    yield relay, wall
    await relay.stop()


async def connect(relay: TurnServer) -> StunClient:
    return await StunClient.connect((relay.config.listen, relay.config.port))


async def test_unauthenticated_request_is_challenged(clocked_relay: tuple[TurnServer, FakeClock]) -> None:
    relay, _ = clocked_relay
    client = await connect(relay)
    response = await client.request(Message(Method.ALLOCATE, Class.REQUEST, attributes={
        "REQUESTED-TRANSPORT": 0x11000000}))
    assert error_code(response) == 401
    assert response.attributes["REALM"] == REALM
    assert relay.auth.nonce_is_valid(response.attributes["NONCE"], "127.0.0.1")
    assert "MESSAGE-INTEGRITY" not in response.attributes
    assert relay.counters.auth_failures == 0  # a challenge is not a failure
    client.close()


@pytest.mark.parametrize(
    "case",
    ["forged password", "other secret", "expired", "no expiry in username", "wrong realm"],
)
async def test_bad_credentials_get_401(clocked_relay: tuple[TurnServer, FakeClock], case: str) -> None:
    relay, wall = clocked_relay
    client = await connect(relay)
    username, password = credentials(now=wall.now)
    if case == "forged password":
        password = base64.b64encode(b"x" * 20).decode()
    elif case == "other secret":
        username, password, _ = make_credentials("guessed", "alice", 3600, now=wall.now)
    elif case == "expired":
        username, password = credentials(ttl=-1, now=wall.now)
    elif case == "no expiry in username":
        username, password = "alice", credential_for(SECRET, "alice")
    elif case == "wrong realm":
        client.realm = "elsewhere"
    client.login(username, password)
    response = await client.allocate()
    assert error_code(response) == 401
    assert "NONCE" in response.attributes and "MESSAGE-INTEGRITY" not in response.attributes
    assert relay.counters.auth_failures >= 1 and relay.counters.allocations == 0
    client.close()


async def test_expiry_is_checked_on_every_request(clocked_relay: tuple[TurnServer, FakeClock]) -> None:
    relay, wall = clocked_relay
    client = await connect(relay)
    client.login(*credentials(ttl=60, now=wall.now))
    assert is_success(await client.allocate())
    assert is_success(await client.refresh())
    wall.advance(61)
    assert error_code(await client.refresh()) == 401
    assert error_code(await client.create_permission(("127.0.0.1", 1))) == 401
    assert error_code(await client.channel_bind(0x4000, ("127.0.0.1", 1))) == 401
    assert relay.counters.auth_failures == 3
    client.close()


async def test_stale_nonce_gets_438_and_a_fresh_one(clocked_relay: tuple[TurnServer, FakeClock]) -> None:
    relay, wall = clocked_relay
    client = await connect(relay)
    client.login(*credentials(now=wall.now))
    assert is_success(await client.allocate())
    old_nonce = client.nonce
    wall.advance(relay.config.nonce_lifetime)
    request = Message(Method.REFRESH, Class.REQUEST, attributes={
        "USERNAME": client.username, "REALM": REALM, "NONCE": old_nonce})
    response = await client.request(request, client.key)
    assert error_code(response) == 438
    fresh = response.attributes["NONCE"]
    assert fresh != old_nonce and relay.auth.nonce_is_valid(fresh, "127.0.0.1")
    assert relay.counters.stale_nonces == 1
    assert is_success(await client.refresh())  # retried with the fresh nonce
    client.close()


async def test_forged_nonce_gets_438(clocked_relay: tuple[TurnServer, FakeClock]) -> None:
    relay, wall = clocked_relay
    client = await connect(relay)
    client.login(*credentials(now=wall.now))
    client.nonce = base64.urlsafe_b64encode(b"\xff" * 12)
    request = Message(Method.ALLOCATE, Class.REQUEST, attributes={
        "REQUESTED-TRANSPORT": 0x11000000, "USERNAME": client.username, "REALM": REALM, "NONCE": client.nonce})
    assert error_code(await client.request(request, client.key)) == 438
    client.close()


async def test_integrity_without_username_gets_400(clocked_relay: tuple[TurnServer, FakeClock]) -> None:
    relay, _ = clocked_relay
    client = await connect(relay)
    request = Message(Method.ALLOCATE, Class.REQUEST, attributes={"REQUESTED-TRANSPORT": 0x11000000})
    response = await client.request(request, b"some key")
    assert error_code(response) == 400
    client.close()


async def test_responses_are_signed_with_the_request_key(clocked_relay: tuple[TurnServer, FakeClock]) -> None:
    relay, wall = clocked_relay
    client = await connect(relay)
    client.login(*credentials(now=wall.now))
    response = await client.allocate()
    assert client.key is not None
    assert stun.check_integrity(response, client.key)
    assert not stun.check_integrity(response, b"another key")
    client.close()
