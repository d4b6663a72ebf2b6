"""GET /api/call-history after each outcome of a real call, from both sides.

The history is read once, right after the last event of the call: reading it waits for the calls that just
ended to reach the table (the writer batches them for up to half a second otherwise).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.signaling.clients import SQL_UTC_RE, PyPeer, answer, new_account, offer
from tests.signaling.conftest import Connector
from tests.support import Server

FIELDS = {"direction", "peer", "peerUsername", "peerCallId", "status", "startedAt", "durationSeconds"}


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def summary(calls: list[dict[str, Any]]) -> list[tuple[str, str, str, int | None]]:
    for call in calls:
        assert set(call) == FIELDS, call
        assert SQL_UTC_RE.match(call["startedAt"]), call
    return [(c["direction"], c["peer"], c["status"], c["durationSeconds"]) for c in calls]


def started(call: dict[str, Any]) -> datetime:
    return datetime.strptime(call["startedAt"], "%Y-%m-%d %H:%M:%S")


async def place(caller: PyPeer, callee: PyPeer) -> None:
    await caller.emit("call", {"targetCallId": callee.call_id, "offer": offer()})
    await callee.next("incoming-call")


async def test_history_after_answered_rejected_and_missed(server: Server, connect: Connector) -> None:
    alice_account, bob_account = new_account(server), new_account(server)
    alice = await connect(server, "alice", auth=alice_account.auth)
    bob = await connect(server, "bob", headers=bob_account.cookie_header)
    await alice.register("Alice A")
    await bob.register()  # no display name: Bob is named by his username

    placed = now()
    await place(alice, bob)
    await bob.emit("answer", {"targetCallId": alice.call_id, "answer": answer()})
    await alice.next("call-answered")
    await asyncio.sleep(1.2)  # durationSeconds counts whole seconds from answer to end
    await alice.emit("hangup", {"targetCallId": bob.call_id})
    await bob.next("call-ended")

    await place(bob, alice)
    await alice.emit("reject", {"targetCallId": bob.call_id})
    await bob.next("call-rejected")

    await place(alice, bob)
    await alice.emit("hangup", {"targetCallId": bob.call_id})  # the caller gives up: missed
    await bob.next("call-ended")
    ended = now()

    alice_calls, bob_calls = alice_account.history(), bob_account.history()
    bob_name = bob_account.username
    assert summary(alice_calls) == [  # newest first
        ("outgoing", bob_name, "missed", None),
        ("incoming", bob_name, "rejected", None),
        ("outgoing", bob_name, "answered", 1),
    ]
    assert summary(bob_calls) == [
        ("incoming", "Alice A", "missed", None),
        ("outgoing", "Alice A", "rejected", None),
        ("incoming", "Alice A", "answered", 1),
    ]
    # startedAt is UTC, when the call was placed (before the 1.2 s answered call, not at its end).
    first = started(alice_calls[2])
    assert placed - timedelta(seconds=1) <= first <= placed + timedelta(seconds=1), (placed, first)
    assert all(first <= started(call) <= ended for call in alice_calls)
    assert [c["startedAt"] for c in alice_calls] == [c["startedAt"] for c in bob_calls]


async def test_history_names_of_anonymous_peers(server: Server, connect: Connector) -> None:
    """peer is the other party's display name, else its username, else its Call ID."""
    bob_account = new_account(server)
    bob = await connect(server, "bob", auth=bob_account.auth)
    await bob.register("Bob")

    nameless = await connect(server, "nameless")
    nameless_id = await nameless.register()
    await place(nameless, bob)
    await bob.emit("reject", {"targetCallId": nameless_id})
    await nameless.next("call-rejected")

    zed = await connect(server, "zed")
    await zed.register("  Zed  ")
    await place(zed, bob)
    await bob.emit("answer", {"targetCallId": zed.call_id, "answer": answer()})
    await zed.next("call-answered")
    await zed.close()  # gone mid-call: the call was answered, and is over
    await bob.next("call-ended")

    yan = await connect(server, "yan")
    await yan.register("Yan")
    await place(bob, yan)
    await yan.close()  # gone while ringing: missed, still named by its display name
    await bob.next("call-ended")

    quiet = await connect(server, "quiet")
    quiet_id = await quiet.register()
    await place(bob, quiet)
    await quiet.emit("reject", {"targetCallId": bob.call_id})
    await bob.next("call-rejected")

    assert summary(bob_account.history()) == [
        ("outgoing", quiet_id, "rejected", None),
        ("outgoing", "Yan", "missed", None),
        ("incoming", "Zed", "answered", 0),
        ("incoming", nameless_id, "rejected", None),
    ]


async def test_history_is_per_account_and_needs_auth(server: Server, connect: Connector) -> None:
    alice_account, bob_account, carol_account = new_account(server), new_account(server), new_account(server)
    alice = await connect(server, "alice", auth=alice_account.auth)
    bob = await connect(server, "bob", auth=bob_account.auth)
    await alice.register()
    await bob.register()
    await place(alice, bob)
    await bob.emit("reject", {"targetCallId": alice.call_id})
    await alice.next("call-rejected")
    assert summary(alice_account.history()) == [("outgoing", bob_account.username, "rejected", None)]
    assert carol_account.history() == []
    anonymous = server.client()
    assert anonymous.get("/api/call-history").json() == {"error": "Not authenticated"}


async def test_finished_calls_reach_the_table_without_a_reader(server: Server, connect: Connector) -> None:
    """Nobody reads the history: the writer still stores each finished call within about half a second."""
    alice_account, bob_account = new_account(server), new_account(server)
    alice = await connect(server, "alice", auth=alice_account.auth)
    bob = await connect(server, "bob", auth=bob_account.auth)
    await alice.register()
    await bob.register()
    for _ in range(3):
        await place(alice, bob)
        await bob.emit("reject", {"targetCallId": alice.call_id})
        await alice.next("call-rejected")
    deadline = asyncio.get_running_loop().time() + 3
    while alice_account.stored_calls() < 3 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert alice_account.stored_calls() == 3
