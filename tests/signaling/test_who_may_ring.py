"""Who is calling and who may ring whom (issue 13, points 1 and 2), with real Socket.IO clients and httpx:
verified caller names, call limits that survive reconnects, blocks, "Do not disturb from strangers", invites
as a stranger's pass and their revocation."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.signaling.clients import Account, PyPeer, answer, new_account, offer
from tests.signaling.conftest import SHORT_RING, Connector
from tests.support import Server, query_db, serve

LIMITS = {"calls_per_caller": 4, "calls_per_ip": 10000, "rings_per_callee": 2}


@pytest.fixture(scope="module")
def ring_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shortest ring timeout and small call limits (the tests below use distinct callers and callees, so
    each meets only the limit it is about)."""
    yield from serve(tmp_path_factory, "who-may-ring", {"ring_timeout": SHORT_RING, "rate_limits": LIMITS})


def browser(server: Server) -> dict[str, str]:
    """A new anonymous browser: the page gives it its signed anonymous id; the socket sends it back."""
    response = httpx.get(f"{server.base_url}/")
    assert response.status_code == 200
    return {"Cookie": f"opencall_anon={response.cookies['opencall_anon']}"}


async def ring(caller: PyPeer, callee: PyPeer) -> dict[str, Any]:
    await caller.emit("call", {"targetCallId": callee.call_id, "offer": offer()})
    incoming: dict[str, Any] = await callee.next("incoming-call")
    return incoming


async def cancel(caller: PyPeer, callee: PyPeer) -> None:
    await caller.emit("hangup", {"targetCallId": callee.call_id})
    await callee.next("call-ended")


async def answered_call(caller: PyPeer, callee: PyPeer) -> dict[str, Any]:
    incoming = await ring(caller, callee)
    await callee.emit("answer", {"targetCallId": caller.call_id, "answer": answer()})
    answered: dict[str, Any] = await caller.next("call-answered")
    await caller.emit("hangup", {"targetCallId": callee.call_id})
    await callee.next("call-ended")
    return {"incoming": incoming, "answered": answered}


async def refused_silently(caller: PyPeer, callee: PyPeer) -> None:
    """The call rings nobody: the callee hears nothing, the caller hears "did not answer" after ring_timeout,
    as for a real miss."""
    await caller.emit("call", {"targetCallId": callee.call_id, "offer": offer()})
    await caller.sync()
    await callee.sync()
    callee.assert_quiet("incoming-call")
    started = asyncio.get_running_loop().time()
    message = (await caller.next("call-error", timeout=SHORT_RING + 5))["message"]
    assert message == f"{callee.call_id} did not answer"
    assert asyncio.get_running_loop().time() - started > SHORT_RING - 1.5
    await callee.sync()
    callee.assert_quiet("incoming-call")


def block(account: Account, call_id: str) -> dict[str, Any]:
    response = account.http.post("/api/blocks", json={"callId": call_id})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_signed_in_caller_is_named_by_its_account_and_a_stranger_is_not(
        ring_server: Server, connect_ws: Connector) -> None:
    alice, bob = new_account(ring_server), new_account(ring_server)
    caller = await connect_ws(ring_server, "alice", auth=alice.auth)
    callee = await connect_ws(ring_server, "bob", auth=bob.auth)
    stranger = await connect_ws(ring_server, "stranger", headers=browser(ring_server))
    await caller.register("Mom")
    await callee.register()
    await stranger.register("Mom")

    seen = await answered_call(caller, callee)
    assert seen["incoming"]["callerUsername"] == alice.username
    assert seen["incoming"]["callerDisplayName"] == "Mom"  # the contract's field: what the caller typed
    assert seen["answered"]["calleeUsername"] == bob.username
    incoming = await ring(stranger, callee)
    assert incoming["callerUsername"] is None and incoming["callerDisplayName"] == "Mom"
    await cancel(stranger, callee)

    calls = bob.history()
    assert [(c["peer"], c["peerUsername"], c["peerCallId"]) for c in calls] == [
        ("Mom", None, stranger.call_id), ("Mom", alice.username, caller.call_id)]
    rows = query_db(ring_server, "SELECT caller_username, callee_username FROM calls ORDER BY id")
    assert (alice.username, bob.username) in rows and (None, bob.username) in rows


async def test_the_call_limit_is_the_callers_across_reconnects(ring_server: Server, connect_ws: Connector) -> None:
    cookie = browser(ring_server)
    callee = await connect_ws(ring_server, "callee", headers=browser(ring_server))
    await callee.register()
    caller = await connect_ws(ring_server, "caller", headers=cookie)
    await caller.register()
    other_targets = []
    for n in range(LIMITS["calls_per_caller"]):
        target = await connect_ws(ring_server, f"target{n}", headers=browser(ring_server))
        await target.register()
        other_targets.append(target)
        await ring(caller, target)
        await cancel(caller, target)
    await caller.close()
    again = await connect_ws(ring_server, "caller-again", headers=cookie)  # same browser, new socket
    await again.register()
    message = await again.error("call", {"targetCallId": callee.call_id, "offer": offer()})
    assert re.fullmatch(r"Too many calls, try again in \d+ s", message), message
    await callee.sync()
    callee.assert_quiet("incoming-call")
    # Another browser is another caller.
    fresh = await connect_ws(ring_server, "fresh", headers=browser(ring_server))
    await fresh.register()
    await ring(fresh, callee)
    await cancel(fresh, callee)


async def test_a_client_without_cookies_is_counted_by_its_address_across_reconnects(
        ring_server: Server, connect_ws: Connector) -> None:
    """Node and Python clients send no cookie: their address is their identity (no other test of this module
    connects without one)."""
    for n in range(LIMITS["calls_per_caller"]):
        callee = await connect_ws(ring_server, f"callee{n}", headers=browser(ring_server))
        await callee.register()
        bare = await connect_ws(ring_server, f"bare{n}")
        await bare.register()
        await ring(bare, callee)
        await cancel(bare, callee)
        await bare.close()
    last = await connect_ws(ring_server, "bare-last")
    await last.register()
    message = await last.error("call", {"targetCallId": callee.call_id, "offer": offer()})
    assert re.fullmatch(r"Too many calls, try again in \d+ s", message), message


async def test_unanswered_rings_of_one_callee_are_limited_and_answered_calls_are_not(
        ring_server: Server, connect_ws: Connector) -> None:
    cookie = browser(ring_server)
    caller = await connect_ws(ring_server, "caller", headers=cookie)
    callee = await connect_ws(ring_server, "callee", headers=browser(ring_server))
    await caller.register()
    await callee.register()
    await answered_call(caller, callee)  # answered: not counted
    for _ in range(LIMITS["rings_per_callee"]):
        await ring(caller, callee)
        await cancel(caller, callee)
    await caller.close()
    again = await connect_ws(ring_server, "caller-again", headers=cookie)
    await again.register()
    message = await again.error("call", {"targetCallId": callee.call_id, "offer": offer()})
    assert message == f"You called {callee.call_id} too often, try again in 10 min"
    await callee.sync()
    callee.assert_quiet("incoming-call")


async def test_a_blocked_caller_hears_did_not_answer_and_only_its_history_lists_it(
        ring_server: Server, connect_ws: Connector) -> None:
    alice, bob = new_account(ring_server), new_account(ring_server)
    caller = await connect_ws(ring_server, "alice", auth=alice.auth)
    callee = await connect_ws(ring_server, "bob", auth=bob.auth)
    await caller.register()
    await callee.register()
    listed = block(bob, caller.call_id or "")
    assert listed["strangers"] is False
    assert [(b["callId"], b["label"]) for b in listed["blocked"]] == [(caller.call_id, alice.username)]

    await refused_silently(caller, callee)
    assert [(c["direction"], c["status"]) for c in alice.history()] == [("outgoing", "missed")]
    assert bob.history() == []

    response = bob.http.delete(f"/api/blocks/{caller.call_id}")
    assert response.status_code == 200 and response.json()["blocked"] == []
    await ring(caller, callee)
    await cancel(caller, callee)


async def test_blocking_a_strangers_call_id_blocks_the_browser_behind_it(
        ring_server: Server, connect_ws: Connector) -> None:
    bob = new_account(ring_server)
    callee = await connect_ws(ring_server, "bob", auth=bob.auth)
    await callee.register()
    cookie = browser(ring_server)
    stranger = await connect_ws(ring_server, "stranger", headers=cookie)
    await stranger.register("Mom")
    listed = block(bob, stranger.call_id or "")
    assert listed["blocked"][0]["label"] == "Unverified: Mom"
    await stranger.close()
    again = await connect_ws(ring_server, "stranger-again", headers=cookie)
    assert await again.register() != stranger.call_id  # a new Call ID: the browser is what is blocked
    await refused_silently(again, callee)


async def test_strangers_are_refused_unless_they_hold_a_live_invite(ring_server: Server, connect_ws: Connector) -> None:
    alice, bob = new_account(ring_server), new_account(ring_server)
    callee = await connect_ws(ring_server, "bob", auth=bob.auth)
    await callee.register()
    response = bob.http.put("/api/blocks/strangers", json={"blocked": True})
    assert response.status_code == 200 and response.json()["strangers"] is True

    stranger = await connect_ws(ring_server, "stranger", headers=browser(ring_server))
    await stranger.register()
    await refused_silently(stranger, callee)
    member = await connect_ws(ring_server, "alice", auth=alice.auth)
    await member.register()
    await ring(member, callee)  # a signed-in caller is no stranger
    await cancel(member, callee)

    token = bob.http.post("/api/invite/generate").json()["token"]
    guest_cookie = browser(ring_server)
    claim = httpx.get(f"{ring_server.base_url}/api/invite/{token}/preview", headers=guest_cookie)
    assert claim.status_code == 200, claim.text
    guest = await connect_ws(ring_server, "guest", headers=guest_cookie)
    await guest.register()
    await ring(guest, callee)  # the invite's claimant may ring
    await cancel(guest, callee)

    invites = bob.http.get("/api/invites").json()["invites"]
    assert [(i["token"], i["claimedAt"] is not None, i["revokedAt"]) for i in invites] == [(token, True, None)]
    assert bob.http.delete(f"/api/invite/{token}").json() == {"ok": True}
    gone = httpx.get(f"{ring_server.base_url}/api/invite/{token}/preview", headers=guest_cookie)
    assert (gone.status_code, gone.json()) == (410, {"error": "Invite revoked"})
    assert bob.http.get("/api/invites").json()["invites"][0]["revokedAt"] is not None
    await refused_silently(guest, callee)  # the pass ended with the invite


async def test_the_call_limit_per_address_counts_every_browser_on_it(
        make_server: Callable[..., Server], connect_ws: Connector) -> None:
    server = make_server({"rate_limits": {"calls_per_ip": 2}})
    callee = await connect_ws(server, "callee", headers=browser(server))
    await callee.register()
    for n in range(2):
        caller = await connect_ws(server, f"browser{n}", headers=browser(server))
        await caller.register()
        await ring(caller, callee)
        await cancel(caller, callee)
    last = await connect_ws(server, "browser-3", headers=browser(server))
    await last.register()
    message = await last.error("call", {"targetCallId": callee.call_id, "offer": offer()})
    assert re.fullmatch(r"Too many calls, try again in \d+ s", message), message
