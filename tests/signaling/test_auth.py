"""Auth on connect, API key rotation, browser origins, and the presence behind invite look-ups."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.signaling.clients import CALL_ID_RE, WAIT, Account, answer, new_account, offer, until_sockets
from tests.signaling.conftest import Connector
from tests.support import Server

INVALID_KEY = {"message": "Invalid API key"}


async def test_invalid_api_key_is_refused(server: Server, connect: Connector) -> None:
    for key in ("bad", "oc_" + "0" * 32, "", 12345, ["oc_x"]):
        peer = connect.peer(f"bad-key-{key!r}")
        assert await peer.refused(server.base_url, auth={"apiKey": key}) == INVALID_KEY, key
        assert not peer.connected


async def test_the_key_decides_even_with_a_valid_cookie(server: Server, connect: Connector) -> None:
    alice = new_account(server)
    peer = connect.peer("bad-key-good-cookie")
    assert await peer.refused(server.base_url, auth={"apiKey": "oc_nope"}, headers=alice.cookie_header) == INVALID_KEY


async def test_no_key_or_an_unknown_cookie_is_anonymous(server: Server, connect: Connector) -> None:
    plain = await connect(server, "plain", auth={"somethingElse": 1})
    stale = await connect(server, "stale-cookie", headers={"Cookie": "opencall_session=not-a-session"})
    ids = {await plain.register(), await stale.register()}
    assert len(ids) == 2 and all(CALL_ID_RE.match(i) for i in ids)


async def test_key_rotation_disconnects_sockets_using_the_old_key(server: Server, connect: Connector) -> None:
    alice, bob = new_account(server), new_account(server)
    by_key = await connect(server, "alice-key", auth=alice.auth)
    by_cookie = await connect(server, "alice-cookie", headers=alice.cookie_header)
    bob_socket = await connect(server, "bob", auth=bob.auth)
    a_id = await by_key.register()
    assert await by_cookie.register() == a_id
    await bob_socket.register()

    # Bob is in a call with the key-authenticated socket.
    await bob_socket.emit("call", {"targetCallId": a_id, "offer": offer()})
    await by_key.next("incoming-call")
    await by_cookie.next("incoming-call")
    await by_key.emit("answer", {"targetCallId": bob_socket.call_id, "answer": answer()})
    await bob_socket.next("call-answered")
    await by_cookie.next("call-ended")

    old_key = alice.key
    response = alice.http.post("/api/key/regenerate", headers={"x-api-key": old_key})
    assert response.status_code == 200, response.text
    new_key = response.json()["apiKey"]
    assert new_key != old_key

    await asyncio.wait_for(by_key.disconnected.wait(), WAIT)
    assert await bob_socket.next("call-ended") == {}
    # The cookie socket and other accounts' sockets stay, and Alice is still reachable on that one.
    assert by_cookie.connected and bob_socket.connected
    await bob_socket.emit("call", {"targetCallId": a_id, "offer": offer()})
    assert (await by_cookie.next("incoming-call"))["callerCallId"] == bob_socket.call_id
    await by_cookie.emit("reject", {"targetCallId": bob_socket.call_id})
    assert await bob_socket.next("call-rejected") == {}

    assert await connect.peer("old-key").refused(server.base_url, auth={"apiKey": old_key}) == INVALID_KEY
    fresh = await connect(server, "alice-new-key", auth={"apiKey": new_key})
    assert await fresh.register() == a_id


async def test_only_this_servers_origin_may_connect_from_a_browser(server: Server, connect: Connector) -> None:
    """A page on another site cannot open a socket that rides the user's session cookie."""
    alice = new_account(server)
    own = await connect(server, "own-origin", headers={"Origin": server.base_url, **alice.cookie_header})
    assert await own.register() == await _permanent_id(connect, server, alice)
    foreign = connect.peer("foreign-origin")
    await foreign.refused(server.base_url, headers={"Origin": "http://evil.example", **alice.cookie_header})
    assert not foreign.connected


async def _permanent_id(connect: Connector, server: Server, account: Account) -> str:
    peer = await connect(server, "by-key", auth=account.auth)
    return await peer.register()


def _look_up(viewer: Account, token: str) -> dict[str, Any]:
    response = viewer.http.get(f"/api/invite/{token}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _until(viewer: Account, token: str, online: bool) -> dict[str, Any]:
    """The look-up once presence says ``online`` (a disconnect is noticed a moment after the client goes)."""
    deadline = time.monotonic() + WAIT
    while True:
        body = await asyncio.to_thread(_look_up, viewer, token)
        if body["online"] is online or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.05)


async def test_invite_look_up_reports_live_presence(own_server: Server, connect: Connector) -> None:
    server = own_server  # until_sockets counts every socket on it
    creator, viewer = new_account(server), new_account(server)
    response = creator.http.post("/api/invite/generate", headers={"x-api-key": creator.key})
    assert response.status_code == 200, response.text
    token = response.json()["token"]

    offline = _look_up(viewer, token)
    assert offline["creatorUsername"] == creator.username
    assert (offline["online"], offline["creatorCallId"]) == (False, None)

    first = await connect(server, "creator-key", auth=creator.auth)
    await first.sync()  # connected but not registered: not reachable yet
    assert _look_up(viewer, token) == offline
    call_id = await first.register()
    online = {**offline, "online": True, "creatorCallId": call_id}
    assert _look_up(viewer, token) == online
    assert _look_up(creator, token) == online  # the creator's own look-up agrees

    second = await connect(server, "creator-cookie", headers=creator.cookie_header)
    await second.register()
    await first.close()
    await until_sockets(server, 1)  # the server has handled the first socket's going
    assert _look_up(viewer, token) == online  # still one registered socket
    await second.close()
    assert await _until(viewer, token, online=False) == offline
