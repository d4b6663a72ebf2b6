"""Revocation that reaches the socket (docs/security.md): a logout ends the sockets of that session; `opencall user
reset-password` and `opencall user remove`, run in another process, end every socket of the account within the
credential sweep's interval; `--rotate-key` retires the old key over REST and sockets; the call records of a removed
account are kept, unlinked. Real servers, real python-socketio clients, the real `opencall` command."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import httpx

from opencall.signaling.revocation import SWEEP_INTERVAL
from tests.signaling.clients import SESSION_COOKIE, WAIT, Account, PyPeer, answer, new_account, offer
from tests.signaling.conftest import Connector
from tests.signaling.test_calls import establish
from tests.support import Server, query_db, run_cli

INVALID_KEY = {"message": "Invalid API key"}
# A revocation by another process reaches the sockets at the server's next sweep; the rest is slack for a busy box.
SWEEP_WAIT = SWEEP_INTERVAL + WAIT


def _second_session(account: Account) -> dict[str, str]:
    """The Cookie header of a new session of ``account`` (another browser signing in)."""
    with account.server.client() as browser:
        response = browser.post("/api/auth/login", json={"username": account.username, "password": "secret123"})
        assert response.status_code == 200, response.text
        return {"Cookie": f"{SESSION_COOKIE}={browser.cookies[SESSION_COOKIE]}"}


async def _gone(*peers: PyPeer, timeout: float = WAIT) -> None:
    await asyncio.wait_for(asyncio.gather(*(peer.disconnected.wait() for peer in peers)), timeout)


async def _logged(server: Server, text: str) -> None:
    deadline = time.monotonic() + WAIT
    while text not in server.log_file.read_text():
        assert time.monotonic() < deadline, f"not in the server log: {text!r}"
        await asyncio.sleep(0.05)


async def _user_command(server: Server, *args: str, stdin: str = "") -> str:
    result = await asyncio.to_thread(run_cli, "user", *args, config=server.config_path, stdin=stdin)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


async def _not_resumed(peer: PyPeer, token: str | None, call_id: str | None) -> None:
    """``peer`` presents a revoked socket's resume token: it registers anew, with no call to resume."""
    assert token is not None
    assert await peer.register(resume=token) == call_id
    await peer.sync()
    peer.assert_quiet("call-resumed", "call-ended")


async def test_logout_ends_the_sockets_of_that_session_only(server: Server, connect: Connector) -> None:
    alice, bob = new_account(server), new_account(server)
    signed_in = alice.cookie_header
    tab, other_tab = (await connect(server, "alice-tab", headers=signed_in),
                      await connect(server, "alice-tab2", headers=signed_in))  # one browser, one session
    phone = await connect(server, "alice-phone", headers=_second_session(alice))
    by_key = await connect(server, "alice-key", auth=alice.auth)
    bob_socket = await connect(server, "bob", auth=bob.auth)
    a_id = await tab.register()
    for socket in (other_tab, phone, by_key):
        assert await socket.register() == a_id
    await bob_socket.register()
    await bob_socket.emit("call", {"targetCallId": a_id, "offer": offer()})
    for socket in (tab, other_tab, phone, by_key):
        await socket.next("incoming-call")
    await tab.emit("answer", {"targetCallId": bob_socket.call_id, "answer": answer()})
    await bob_socket.next("call-answered")
    ended_sids = [tab.client.get_sid(), other_tab.client.get_sid()]

    response = await asyncio.to_thread(alice.http.post, "/api/auth/logout")
    assert response.status_code == 200, response.text
    await _gone(tab, other_tab)
    assert await bob_socket.next("call-ended") == {}  # at once, not after the resume grace
    for sid in ended_sids:  # by the logout itself, not by the next sweep
        await _logged(server, f"disconnecting socket {sid} ({alice.username}): its session ended")

    # The other session and the key are untouched, now and after a sweep; Alice is reachable on them.
    await asyncio.sleep(SWEEP_INTERVAL + 0.5)
    assert phone.connected and by_key.connected and bob_socket.connected
    await bob_socket.emit("call", {"targetCallId": a_id, "offer": offer("again")})
    await phone.next("incoming-call")
    await by_key.next("incoming-call")
    await phone.emit("reject", {"targetCallId": bob_socket.call_id})
    assert await bob_socket.next("call-rejected") == {}

    # The ended socket cannot come back: not through the same account's other session, not with its cookie.
    await _not_resumed(await connect(server, "alice-back", auth=alice.auth), tab.token, a_id)
    stale_cookie = await connect(server, "stale-cookie", headers=signed_in)
    assert await stale_cookie.register() != a_id  # anonymous now


async def test_reset_password_ends_every_socket_of_the_account(server: Server, connect: Connector) -> None:
    alice, bob = new_account(server), new_account(server)
    by_cookie = await connect(server, "alice-cookie", headers=alice.cookie_header)
    by_other_session = await connect(server, "alice-other", headers=_second_session(alice))
    by_key = await connect(server, "alice-key", auth=alice.auth)
    bob_socket = await connect(server, "bob", auth=bob.auth)
    a_id = await by_key.register()
    await by_cookie.register()
    await by_other_session.register()
    await bob_socket.register()
    await bob_socket.emit("call", {"targetCallId": a_id, "offer": offer()})
    for socket in (by_cookie, by_other_session, by_key):
        await socket.next("incoming-call")
    await by_key.emit("answer", {"targetCallId": bob_socket.call_id, "answer": answer()})
    await bob_socket.next("call-answered")

    out = await _user_command(server, "reset-password", alice.username, stdin="second-pass\n")
    assert "its API key keeps working" in out, out
    await _gone(by_cookie, by_other_session, by_key, timeout=SWEEP_WAIT)  # the key's socket too
    assert await bob_socket.next("call-ended") == {}
    assert bob_socket.connected
    assert alice.http.get("/api/auth/me").json() == {"authenticated": False}

    # The key still works (no --rotate-key); a socket opened with it is not swept, and resumes nothing.
    again = await connect(server, "alice-key-again", auth=alice.auth)
    await _not_resumed(again, by_key.token, a_id)
    await asyncio.sleep(SWEEP_INTERVAL + 0.5)
    assert again.connected


async def test_reset_password_rotate_key_retires_the_old_key(server: Server, connect: Connector) -> None:
    alice = new_account(server)
    by_key = await connect(server, "alice-key", auth=alice.auth)
    a_id = await by_key.register()

    out = await _user_command(server, "reset-password", alice.username, "--rotate-key", stdin="second-pass\n")
    found = re.search(r"new API key: (oc_[0-9a-f]{32})", out)
    assert found, out
    new_key = found.group(1)
    with httpx.Client(base_url=server.base_url, timeout=10) as rest:  # no cookie: the key alone
        assert rest.get("/api/key", headers={"x-api-key": alice.key}).status_code == 401
        assert rest.get("/api/key", headers={"x-api-key": new_key}).json() == {"apiKey": new_key}
    assert await connect.peer("old-key").refused(server.base_url, auth=alice.auth) == INVALID_KEY
    await _gone(by_key, timeout=SWEEP_WAIT)
    await _not_resumed(await connect(server, "alice-new-key", auth={"apiKey": new_key}), by_key.token, a_id)


async def test_remove_ends_every_socket_and_keeps_the_call_records(make_server: Callable[..., Server],
                                                                    connect_ws: Connector) -> None:
    """The removed account's held call ends within the sweep (not after the resume grace), and its record — queued
    after the removal, in one batch with other calls — is written unlinked; the batch's other calls are kept."""
    srv = make_server({"signaling": {"resume_grace": 60}})
    removed, xavier = new_account(srv), new_account(srv)
    phone = await connect_ws(srv, "removed-phone", auth=removed.auth)
    laptop = await connect_ws(srv, "removed-laptop", headers=removed.cookie_header)
    x = await connect_ws(srv, "xavier", auth=xavier.auth)
    await phone.register()
    await laptop.register()
    await x.register()
    pairs = []
    for n in range(3):
        one, other = new_account(srv), new_account(srv)
        caller = await connect_ws(srv, f"caller{n}", auth=one.auth)
        callee = await connect_ws(srv, f"callee{n}", auth=other.auth)
        await caller.register()
        await callee.register()
        await establish(caller, callee)
        pairs.append((caller, callee))
    await establish(phone, x)
    await phone.drop()  # the phone loses its network mid-call: its seat is held for the resume grace
    await _logged(srv, "held 60")

    removed_at = time.monotonic()
    await _user_command(srv, "remove", removed.username)
    assert await x.next("call-ended", timeout=SWEEP_WAIT) == {}
    # The other calls end at once: their records join the removed account's in the recorder's batch.
    for caller, callee in pairs:
        await caller.emit("hangup", {"targetCallId": callee.call_id})
    assert time.monotonic() - removed_at < SWEEP_WAIT
    await _gone(laptop)
    for _, callee in pairs:
        assert await callee.next("call-ended") == {}
    anonymous = await connect_ws(srv, "anonymous")
    assert await anonymous.register(resume=phone.token or "") != phone.call_id
    anonymous.assert_quiet("call-resumed")

    [record] = xavier.history()  # reading the history flushes the recorder
    assert record["status"] == "answered", record
    x_id = query_db(srv, "SELECT id FROM users WHERE username_key = ?", (xavier.username.lower(),))[0][0]
    rows = query_db(srv, "SELECT caller_id, callee_id, caller_call_id, status FROM calls ORDER BY id")
    assert len(rows) == 4, rows
    assert (None, x_id, phone.call_id, "answered") in rows, rows
    assert all(caller_id is not None and callee_id is not None for caller_id, callee_id, call_id, _ in rows
               if call_id != phone.call_id), rows
    log = srv.log_file.read_text()
    batch = re.search(r"could not record (\d+) finished calls at once", log)
    assert batch and int(batch.group(1)) >= 2, "the removed account's record was not in a batch with others"
    assert "recorded a call of a removed account unlinked from it" in log
