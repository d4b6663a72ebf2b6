"""The call state machine over real python-socketio clients, on WebSocket and on long-polling."""

from __future__ import annotations

import secrets

from tests.signaling.clients import (
    ALPHABET,
    PyPeer,
    answer,
    candidate,
    gather_next,
    new_account,
    offer,
    until_sockets,
)
from tests.signaling.conftest import Connector
from tests.support import Server


async def ring(caller: PyPeer, *callees: PyPeer, sdp_tag: str = "a") -> dict:
    """``caller`` calls the Call ID of ``callees`` (one account's sockets); every callee socket rings."""
    await caller.emit("call", {"targetCallId": callees[0].call_id, "offer": offer(sdp_tag)})
    incoming = await gather_next((callee, "incoming-call") for callee in callees)
    assert all(item == incoming[0] for item in incoming), incoming
    return dict(incoming[0])


async def establish(caller: PyPeer, callee: PyPeer) -> None:
    await ring(caller, callee)
    await callee.emit("answer", {"targetCallId": caller.call_id, "answer": answer()})
    await caller.next("call-answered")


async def assert_relay_only(sender: PyPeer, receiver: PyPeer, n: int, *quiet: PyPeer) -> None:
    """A legitimate candidate still flows ``sender`` → ``receiver``, and it is the first thing that arrived:
    nothing else reached the receiver before it, and nothing reached the ``quiet`` sockets."""
    await sender.emit("ice-candidate", {"targetCallId": receiver.call_id, "candidate": candidate(n)})
    assert await receiver.next("ice-candidate") == {"candidate": candidate(n)}
    receiver.assert_quiet()
    for socket in quiet:
        socket.assert_quiet()


async def test_full_call_exact_payloads(server: Server, connect: Connector) -> None:
    alice, bob = await connect(server, "alice"), await connect(server, "bob")
    a_id, b_id = await alice.register("Alice"), await bob.register("Bob")

    await alice.emit("call", {"targetCallId": b_id, "offer": {**offer("x"), "extra": "dropped"}})
    assert await bob.next("incoming-call") == {"callerCallId": a_id, "callerDisplayName": "Alice",
                                               "offer": offer("x"), "callerUsername": None}
    # Trickle ICE starts before the answer: the caller's candidates reach the ringing callee.
    await alice.emit("ice-candidate", {"targetCallId": b_id, "candidate": candidate(1)})
    assert await bob.next("ice-candidate") == {"candidate": candidate(1)}

    await bob.emit("answer", {"targetCallId": a_id, "answer": answer("y")})
    assert await alice.next("call-answered") == {"answer": answer("y"), "calleeDisplayName": "Bob",
                                                 "calleeUsername": None}

    full = {"candidate": "candidate:9 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active",
            "sdpMid": "audio", "sdpMLineIndex": 1, "usernameFragment": "frag"}
    await bob.emit("ice-candidate", {"targetCallId": a_id, "candidate": full})
    assert await alice.next("ice-candidate") == {"candidate": full}
    for n in range(2, 6):
        await alice.emit("ice-candidate", {"targetCallId": b_id, "candidate": candidate(n)})
        await bob.emit("ice-candidate", {"targetCallId": a_id, "candidate": candidate(10 + n)})
    for n in range(2, 6):  # relayed in order
        assert await bob.next("ice-candidate") == {"candidate": candidate(n)}
        assert await alice.next("ice-candidate") == {"candidate": candidate(10 + n)}
    # Unknown candidate fields are not relayed; a browser's end-of-candidates null is dropped quietly.
    await alice.emit("ice-candidate", {"targetCallId": b_id, "candidate": None})
    await alice.emit("ice-candidate", {"targetCallId": b_id, "candidate": {**candidate(7), "evil": 1}})
    assert await bob.next("ice-candidate") == {"candidate": candidate(7)}

    await alice.emit("hangup", {"targetCallId": b_id})
    assert await bob.next("call-ended") == {}
    await alice.sync()
    alice.assert_quiet()
    bob.assert_quiet()

    # Both are free again: the roles can swap at once.
    await bob.emit("call", {"targetCallId": a_id, "offer": offer()})
    assert (await alice.next("incoming-call"))["callerCallId"] == b_id


async def test_call_to_offline_or_mistyped_call_id(server: Server, connect: Connector) -> None:
    alice = await connect(server, "alice")
    await alice.register()
    offline = "".join(secrets.choice(ALPHABET) for _ in range(8))  # 1 in 10^12 that anyone holds it

    async def call_error(target: str) -> str:
        return await alice.error("call", {"targetCallId": target, "offer": offer()})

    assert await call_error(offline) == f"{offline} is not online"
    assert await call_error(f" {offline.lower()} ") == f"{offline} is not online"
    # Typos that cannot be Call IDs at all (too short, I/O/0/1) are "not online" too (api.md).
    assert await call_error("K9ZX4MT") == "K9ZX4MT is not online"
    assert await call_error("K9ZX4MT0") == "K9ZX4MT0 is not online"
    assert await call_error("x" * 500) == f"{'X' * 16} is not online"
    alice.assert_quiet()


async def test_busy_while_ringing_and_in_a_call(server: Server, connect: Connector) -> None:
    alice, bob, carol = [await connect(server, name) for name in ("alice", "bob", "carol")]
    a_id, b_id, c_id = await alice.register(), await bob.register(), await carol.register()

    await ring(alice, bob)
    assert await carol.error("call", {"targetCallId": b_id, "offer": offer()}) == f"{b_id} is busy"
    assert await carol.error("call", {"targetCallId": a_id, "offer": offer()}) == f"{a_id} is busy"
    await bob.emit("answer", {"targetCallId": a_id, "answer": answer()})
    await alice.next("call-answered")
    assert await carol.error("call", {"targetCallId": b_id, "offer": offer()}) == f"{b_id} is busy"
    assert await alice.error("call", {"targetCallId": c_id, "offer": offer()}) == "You are already in a call"
    await assert_relay_only(alice, bob, 1, carol)

    await bob.emit("hangup", {"targetCallId": a_id})
    assert await alice.next("call-ended") == {}
    await carol.emit("call", {"targetCallId": b_id, "offer": offer()})
    assert (await bob.next("incoming-call"))["callerCallId"] == c_id


async def test_reject(server: Server, connect: Connector) -> None:
    alice, bob = await connect(server, "alice"), await connect(server, "bob")
    a_id, _ = await alice.register(), await bob.register()
    await ring(alice, bob)
    await bob.emit("reject", {"targetCallId": a_id})
    assert await alice.next("call-rejected") == {}
    await bob.sync()
    alice.assert_quiet()
    bob.assert_quiet()
    # The call is over: a late answer is dropped, and both can be called again.
    await bob.emit("answer", {"targetCallId": a_id, "answer": answer()})
    await ring(alice, bob)
    alice.assert_quiet()


async def test_callee_hangs_up_active_call(server: Server, connect: Connector) -> None:
    alice, bob = await connect(server, "alice"), await connect(server, "bob")
    a_id, _ = await alice.register(), await bob.register()
    await establish(alice, bob)
    await bob.emit("hangup", {"targetCallId": a_id})
    assert await alice.next("call-ended") == {}
    await alice.sync()
    bob.assert_quiet()


async def test_caller_cancels_while_ringing(server: Server, connect: Connector) -> None:
    alice, bob = await connect(server, "alice"), await connect(server, "bob")
    _, b_id = await alice.register(), await bob.register()
    await ring(alice, bob)
    await alice.emit("hangup", {"targetCallId": b_id})
    assert await bob.next("call-ended") == {}
    await alice.sync()
    alice.assert_quiet()


async def test_callee_hangup_while_ringing_declines(server: Server, connect: Connector) -> None:
    alice, bob = await connect(server, "alice"), await connect(server, "bob")
    a_id, _ = await alice.register(), await bob.register()
    await ring(alice, bob)
    await bob.emit("hangup", {"targetCallId": a_id})
    assert await alice.next("call-rejected") == {}


async def test_disconnect_mid_call_ends_it_for_the_other_party(server: Server, connect: Connector) -> None:
    alice, bob = await connect(server, "alice"), await connect(server, "bob")
    a_id, b_id = await alice.register(), await bob.register()
    await establish(alice, bob)
    await bob.close()
    assert await alice.next("call-ended") == {}
    assert await alice.error("call", {"targetCallId": b_id, "offer": offer()}) == f"{b_id} is not online"

    # The caller going away while it rings stops the ringing; the callee going away tells the caller.
    carol = await connect(server, "carol")
    await carol.register()
    await ring(carol, alice)
    await carol.close()
    assert await alice.next("call-ended") == {}
    dave = await connect(server, "dave")
    await dave.register()
    await ring(alice, dave)
    await dave.close()
    assert await alice.next("call-ended") == {}
    alice.assert_quiet()
    assert a_id == alice.call_id


async def test_connection_lost_without_goodbye(server: Server, connect: Connector) -> None:
    """The callee's WebSocket just closes (no Socket.IO disconnect packet): the caller still hears of it."""
    alice, bob = await connect(server, "alice"), await connect(server, "bob", transport="websocket")
    await alice.register()
    await bob.register()
    await establish(alice, bob)
    await bob.drop()
    assert await alice.next("call-ended") == {}


async def test_multi_device_ringing_first_answer_wins(server: Server, connect: Connector) -> None:
    bob = new_account(server)
    alice = await connect(server, "alice")
    phone = await connect(server, "bob-phone", auth=bob.auth)
    laptop = await connect(server, "bob-laptop", headers=bob.cookie_header)
    a_id = await alice.register("Alice")
    b_id = await phone.register("Bob phone")
    assert await laptop.register("Bob laptop") == b_id

    incoming = await ring(alice, phone, laptop)
    assert incoming == {"callerCallId": a_id, "callerDisplayName": "Alice", "offer": offer(), "callerUsername": None}
    await alice.emit("ice-candidate", {"targetCallId": b_id, "candidate": candidate(1)})
    assert await phone.next("ice-candidate") == await laptop.next("ice-candidate") == {"candidate": candidate(1)}

    await laptop.emit("answer", {"targetCallId": a_id, "answer": answer()})
    assert await alice.next("call-answered") == {"answer": answer(), "calleeDisplayName": "Bob laptop",
                                                 "calleeUsername": bob.username}
    assert await phone.next("call-ended") == {}
    # The phone lost the race: its answer and candidates go nowhere; the call is the laptop's.
    await phone.emit("answer", {"targetCallId": a_id, "answer": answer("late")})
    await phone.emit("ice-candidate", {"targetCallId": a_id, "candidate": candidate(66)})
    await phone.emit("hangup", {"targetCallId": a_id})
    await phone.sync()
    await assert_relay_only(laptop, alice, 2)
    await assert_relay_only(alice, laptop, 3, phone)

    await alice.emit("hangup", {"targetCallId": b_id})
    assert await laptop.next("call-ended") == {}
    await alice.sync()
    phone.assert_quiet()
    history = bob.history()
    assert [(c["direction"], c["status"], c["peer"]) for c in history] == [("incoming", "answered", "Alice")]


async def test_multi_device_reject_and_one_device_leaving(own_server: Server, connect: Connector) -> None:
    server = own_server  # until_sockets counts every socket on it
    bob = new_account(server)
    alice = await connect(server, "alice")
    phone = await connect(server, "bob-phone", auth=bob.auth)
    laptop = await connect(server, "bob-laptop", auth=bob.auth)
    a_id = await alice.register()
    await phone.register()
    await laptop.register()

    await ring(alice, phone, laptop)
    await phone.emit("reject", {"targetCallId": a_id})
    assert await alice.next("call-rejected") == {}
    assert await laptop.next("call-ended") == {}

    # One ringing device going away leaves the other ringing; it can still answer.
    await ring(alice, phone, laptop)
    await phone.close()
    await until_sockets(server, 2)  # the server has handled the phone's going: alice and the laptop are left
    await laptop.sync()
    alice.assert_quiet()
    await laptop.emit("answer", {"targetCallId": a_id, "answer": answer()})
    assert (await alice.next("call-answered"))["answer"] == answer()


async def test_strangers_cannot_touch_a_call(server: Server, connect: Connector) -> None:
    bob_account = new_account(server)
    alice, bob = await connect(server, "alice"), await connect(server, "bob", auth=bob_account.auth)
    mallory, carol = await connect(server, "mallory"), await connect(server, "carol")
    a_id, b_id = await alice.register(), await bob.register()
    await mallory.register()
    await carol.register()
    await establish(alice, bob)
    # Bob's second tab, opened after the call started, is not part of it either.
    tab = await connect(server, "bob-tab", auth=bob_account.auth)
    assert await tab.register() == b_id
    # Mallory is in a call of her own with Carol.
    await establish(mallory, carol)

    for intruder in (mallory, tab):
        for target in (a_id, b_id):
            await intruder.emit("ice-candidate", {"targetCallId": target, "candidate": candidate(666)})
            await intruder.emit("answer", {"targetCallId": target, "answer": answer("evil")})
            await intruder.emit("reject", {"targetCallId": target})
            await intruder.emit("hangup", {"targetCallId": target})
        await intruder.sync()
    # Nothing reached Alice or Bob, and their call is intact in both directions.
    await assert_relay_only(alice, bob, 1, mallory, tab)
    await assert_relay_only(bob, alice, 2, mallory, tab)
    # Mallory's own call is intact too.
    await assert_relay_only(mallory, carol, 3)
    # ... and the attempts were logged.
    dropped = [line for line in server.log_file.read_text().splitlines() if "dropped" in line and b_id in line]
    assert len(dropped) >= 4, dropped


async def test_update_name_keeps_call_id_and_renames_the_caller(server: Server, connect: Connector) -> None:
    alice, bob = await connect(server, "alice"), await connect(server, "bob")
    a_id, b_id = await alice.register("Alice"), await bob.register()
    for sent, shown in (("  Alicia  ", "Alicia"), ("   ", None), ("x" * 40, "x" * 32), ("", None)):
        await alice.emit("update-name", {"displayName": sent})
        await alice.emit("call", {"targetCallId": b_id, "offer": offer()})
        assert await bob.next("incoming-call") == {"callerCallId": a_id, "callerDisplayName": shown,
                                                   "offer": offer(), "callerUsername": None}
        await alice.emit("hangup", {"targetCallId": b_id})
        await bob.next("call-ended")
    await alice.sync()
    alice.assert_quiet()  # update-name has no reply
    assert await alice.register() == a_id

    # The callee's new name is what the caller sees in call-answered.
    await bob.emit("update-name", {"displayName": " Robert "})
    await ring(alice, bob)
    await bob.emit("answer", {"targetCallId": a_id, "answer": answer()})
    assert await alice.next("call-answered") == {"answer": answer(), "calleeDisplayName": "Robert",
                                                 "calleeUsername": None}


async def test_account_name_falls_back_to_username(server: Server, connect: Connector) -> None:
    """An account's socket without a display name is shown by its username (null is for anonymous)."""
    account = new_account(server)
    alice, bob = await connect(server, "alice", auth=account.auth), await connect(server, "bob")
    a_id, b_id = await alice.register(), await bob.register()
    await alice.emit("call", {"targetCallId": b_id, "offer": offer()})
    assert (await bob.next("incoming-call"))["callerDisplayName"] == account.username
    await bob.emit("answer", {"targetCallId": a_id, "answer": answer()})
    assert (await alice.next("call-answered"))["calleeDisplayName"] is None


async def test_a_burst_of_trickled_candidates_all_arrive_in_order(server: Server, connect: Connector) -> None:
    """A browser trickles dozens of candidates at once; on long-polling the client sends what it buffered
    while a request was in flight as one batch, and every candidate in it must be relayed."""
    alice, bob = await connect(server, "alice"), await connect(server, "bob")
    a_id, b_id = await alice.register(), await bob.register()
    await establish(alice, bob)
    burst = 60
    for n in range(burst):  # no awaiting in between: the client batches them
        await alice.emit("ice-candidate", {"targetCallId": b_id, "candidate": candidate(n)})
        await bob.emit("ice-candidate", {"targetCallId": a_id, "candidate": candidate(1000 + n)})
    for n in range(burst):
        assert await bob.next("ice-candidate") == {"candidate": candidate(n)}
        assert await alice.next("ice-candidate") == {"candidate": candidate(1000 + n)}


async def test_renegotiate_only_between_the_parties_of_an_active_call(server: Server, connect: Connector) -> None:
    """Our addition (docs/api.md "Signaling"): a second offer/answer during an active call, for ICE restarts."""
    bob_account = new_account(server)
    alice, bob = await connect(server, "alice"), await connect(server, "bob", auth=bob_account.auth)
    mallory, carol = await connect(server, "mallory"), await connect(server, "carol")
    a_id, b_id = await alice.register(), await bob.register()
    await mallory.register()
    c_id = await carol.register()

    # While the call only rings there is nothing to renegotiate: dropped both ways, without a reply.
    await ring(alice, bob)
    await alice.emit("renegotiate", {"targetCallId": b_id, "description": offer("ringing")})
    await bob.emit("renegotiate", {"targetCallId": a_id, "description": answer("ringing")})
    await alice.sync()
    await bob.sync()
    await bob.emit("answer", {"targetCallId": a_id, "answer": answer()})
    assert await alice.next("call-answered") == {"answer": answer(), "calleeDisplayName": bob_account.username,
                                                 "calleeUsername": bob_account.username}
    alice.assert_quiet()
    bob.assert_quiet()

    # Active: relayed with the exact payload, in both directions, whichever side offers.
    await alice.emit("renegotiate", {"targetCallId": b_id.lower(), "description": {**offer("restart"), "x": 1},
                                     "extra": True})
    assert await bob.next("renegotiate") == {"description": offer("restart")}
    await bob.emit("renegotiate", {"targetCallId": a_id, "description": answer("restart")})
    assert await alice.next("renegotiate") == {"description": answer("restart")}
    await bob.emit("renegotiate", {"targetCallId": a_id, "description": offer("bob")})
    assert await alice.next("renegotiate") == {"description": offer("bob")}
    await alice.emit("renegotiate", {"targetCallId": b_id, "description": answer("alice")})
    assert await bob.next("renegotiate") == {"description": answer("alice")}

    # A malformed one from a party gets call-error and reaches nobody.
    assert await alice.error("renegotiate", {"targetCallId": b_id, "description": {"type": "pranswer", "sdp": "v=0"}}) \
        == "description must be {type: 'offer' | 'answer', sdp: '…'}"
    assert await bob.error("renegotiate", {"targetCallId": a_id, "offer": offer()}) \
        == "description must be {type: 'offer' | 'answer', sdp: '…'}"

    # Strangers: Mallory in her own active call with Carol, and Bob's tab opened after the call started.
    await establish(mallory, carol)
    tab = await connect(server, "bob-tab", auth=bob_account.auth)
    assert await tab.register() == b_id
    for intruder in (mallory, tab):
        for target in (a_id, b_id):
            await intruder.emit("renegotiate", {"targetCallId": target, "description": offer("evil")})
        await intruder.sync()
    alice.assert_quiet()
    bob.assert_quiet()
    tab.assert_quiet()
    # Everyone's call still renegotiates.
    await mallory.emit("renegotiate", {"targetCallId": c_id, "description": offer("m")})
    assert await carol.next("renegotiate") == {"description": offer("m")}
    await bob.emit("renegotiate", {"targetCallId": a_id, "description": offer("b2")})
    assert await alice.next("renegotiate") == {"description": offer("b2")}
    mallory.assert_quiet()

    # Once the call has ended, nothing more is relayed.
    await alice.emit("hangup", {"targetCallId": b_id})
    assert await bob.next("call-ended") == {}
    await alice.emit("renegotiate", {"targetCallId": b_id, "description": offer("late")})
    await alice.sync()
    await bob.sync()
    bob.assert_quiet()
    dropped = [line for line in server.log_file.read_text().splitlines()
               if "dropped renegotiate" in line and "no active call" in line and (a_id in line or b_id in line)]
    assert len(dropped) >= 7, dropped  # 2 while ringing, 4 from strangers, 1 after the hangup
