"""Session resume (docs/api.md "Session resume"): a new socket presenting the `session` token of an old one takes
its place — Call ID, name, seat in the call — and an active call whose party disconnected waits
`signaling.resume_grace` (RESUME_GRACE here) for it. Real python-socketio clients against the real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tests.signaling.clients import WAIT, PyPeer, answer, candidate, new_account, offer, until_sockets
from tests.signaling.conftest import RESUME_GRACE, Connector
from tests.signaling.test_calls import establish, ring
from tests.support import Server


async def until_gone(peer: PyPeer) -> None:
    """The server disconnected ``peer`` (or the client saw its connection end)."""
    await asyncio.wait_for(peer.disconnected.wait(), WAIT)


async def assert_flows(one: PyPeer, other: PyPeer, n: int) -> None:
    """Candidates and renegotiation go both ways between ``one`` and ``other``, and only to them."""
    await one.emit("ice-candidate", {"targetCallId": other.call_id, "candidate": candidate(n)})
    assert await other.next("ice-candidate") == {"candidate": candidate(n)}
    await other.emit("ice-candidate", {"targetCallId": one.call_id, "candidate": candidate(n + 1)})
    assert await one.next("ice-candidate") == {"candidate": candidate(n + 1)}
    await one.emit("renegotiate", {"targetCallId": other.call_id, "description": offer(f"r{n}")})
    assert await other.next("renegotiate") == {"description": offer(f"r{n}")}
    await other.emit("renegotiate", {"targetCallId": one.call_id, "description": answer(f"r{n}")})
    assert await one.next("renegotiate") == {"description": answer(f"r{n}")}


async def test_resume_takes_over_a_socket_that_is_still_connected(server: Server, connect: Connector) -> None:
    """The roaming phone's case: its old TCP connection stalled unnoticed, its new socket takes over the call."""
    alice_account, bob_account = new_account(server), new_account(server)
    alice = await connect(server, "alice", auth=alice_account.auth)
    bob = await connect(server, "bob", auth=bob_account.auth)
    a_id, b_id = await alice.register("Alice"), await bob.register("Bob")
    await establish(alice, bob)

    # The callee comes back on a new socket, without a name: it keeps "Bob".
    bob2 = await connect(server, "bob2", auth=bob_account.auth)
    assert await bob2.register(resume=bob.token) == b_id
    assert await bob2.next("call-resumed") == {"peerCallId": a_id, "role": "callee"}
    assert bob2.token and bob2.token != bob.token  # a new token: each is single-use
    assert await alice.next("peer-reconnected") == {}
    await until_gone(bob)
    bob.assert_quiet("call-ended", "call-error")
    await assert_flows(alice, bob2, 1)

    # The caller comes back too, naming itself anew: its new name is what the call is recorded with.
    alice2 = await connect(server, "alice2", auth=alice_account.auth)
    assert await alice2.register("Alicia", resume=alice.token) == a_id
    assert await alice2.next("call-resumed") == {"peerCallId": b_id, "role": "caller"}
    assert await bob2.next("peer-reconnected") == {}
    await until_gone(alice)
    alice.assert_quiet("call-ended", "call-error")
    await assert_flows(bob2, alice2, 10)

    await bob2.emit("hangup", {"targetCallId": a_id})
    assert await alice2.next("call-ended") == {}
    await alice2.sync()
    for peer in (alice2, bob2):
        peer.assert_quiet()
    assert [(c["direction"], c["peer"], c["status"]) for c in alice_account.history()] == [
        ("outgoing", "Bob", "answered")]
    assert [(c["direction"], c["peer"], c["status"]) for c in bob_account.history()] == [
        ("incoming", "Alicia", "answered")]


async def test_resume_takes_over_a_ringing_call(server: Server, connect: Connector) -> None:
    """A socket replaced while its call rings keeps its seat: the new one can answer, and hears the caller."""
    alice, bob = await connect(server, "alice"), await connect(server, "bob")
    a_id, b_id = await alice.register(), await bob.register()
    await ring(alice, bob)
    bob2 = await connect(server, "bob2")
    assert await bob2.register(resume=bob.token) == b_id
    await until_gone(bob)
    await alice.emit("ice-candidate", {"targetCallId": b_id, "candidate": candidate(1)})
    assert await bob2.next("ice-candidate") == {"candidate": candidate(1)}
    await bob2.emit("answer", {"targetCallId": a_id, "answer": answer()})
    assert (await alice.next("call-answered"))["answer"] == answer()
    await bob2.sync()
    bob2.assert_quiet()  # no call-resumed while it only rang
    alice.assert_quiet()  # nor peer-reconnected


async def test_resume_after_a_clean_disconnect_within_the_grace(own_server: Server, connect: Connector) -> None:
    server = own_server  # until_sockets counts every socket on it
    alice_account, bob_account = new_account(server), new_account(server)
    alice = await connect(server, "alice", auth=alice_account.auth)
    bob = await connect(server, "bob", auth=bob_account.auth)
    carol = await connect(server, "carol")
    a_id, b_id = await alice.register(), await bob.register()
    await carol.register()
    await establish(alice, bob)

    await bob.close()
    gone = time.monotonic()
    await until_sockets(server, 2)  # the server has handled Bob's going: his seat is held
    # While Bob's seat is held, his Call ID is not online for others, and Alice is still in her call.
    assert await carol.error("call", {"targetCallId": b_id, "offer": offer()}) == f"{b_id} is not online"
    assert await carol.error("call", {"targetCallId": a_id, "offer": offer()}) == f"{a_id} is busy"
    assert await alice.error("call", {"targetCallId": carol.call_id, "offer": offer()}) == "You are already in a call"
    await alice.emit("ice-candidate", {"targetCallId": b_id, "candidate": candidate(1)})  # nobody to hear it
    await alice.sync()
    alice.assert_quiet()

    bob2 = await connect(server, "bob2", auth=bob_account.auth)
    assert await bob2.register(resume=bob.token) == b_id
    assert await bob2.next("call-resumed") == {"peerCallId": a_id, "role": "callee"}
    assert await alice.next("peer-reconnected") == {}
    assert time.monotonic() - gone < RESUME_GRACE
    await assert_flows(alice, bob2, 2)
    # The grace has passed: the resumed call did not end.
    await asyncio.sleep(max(0.0, gone + RESUME_GRACE + 0.5 - time.monotonic()))
    await alice.sync()
    alice.assert_quiet()
    bob2.assert_quiet()

    await alice.emit("hangup", {"targetCallId": b_id})
    assert await bob2.next("call-ended") == {}
    assert [(c["direction"], c["status"]) for c in bob_account.history()] == [("incoming", "answered")]


async def test_no_resume_after_the_grace(server: Server, connect: Connector) -> None:
    """Nobody came back: the call ends RESUME_GRACE after the disconnect, recorded as ending at the disconnect."""
    alice_account = new_account(server)
    alice = await connect(server, "alice", auth=alice_account.auth)
    bob = await connect(server, "bob")
    _, b_id = await alice.register(), await bob.register("Bob")
    await establish(alice, bob)
    await asyncio.sleep(1.1)  # a call of one second

    await bob.close()
    gone = time.monotonic()
    assert await alice.next("call-ended", timeout=RESUME_GRACE + WAIT) == {}
    waited = time.monotonic() - gone
    assert RESUME_GRACE - 0.3 < waited < RESUME_GRACE + 1.5, waited
    [call] = alice_account.history()
    assert (call["peer"], call["status"], call["durationSeconds"]) == ("Bob", "answered", 1), call

    # The expired token registers anew: a fresh anonymous Call ID, no call.
    late = await connect(server, "late")
    late_id = await late.register(resume=bob.token)
    assert late_id != b_id
    await late.sync()
    late.assert_quiet()


async def test_the_other_party_may_hang_up_during_the_grace(own_server: Server, connect: Connector) -> None:
    server = own_server  # until_sockets counts every socket on it
    alice, bob = await connect(server, "alice"), await connect(server, "bob")
    a_id, b_id = await alice.register(), await bob.register()
    await establish(alice, bob)
    await bob.close()
    await until_sockets(server, 1)  # the server has handled Bob's going: his seat is held
    await alice.emit("hangup", {"targetCallId": b_id})
    await alice.sync()
    # Both are free at once: Alice can be called, and Bob's new socket learns its call ended.
    bob2 = await connect(server, "bob2")
    assert await bob2.register(resume=bob.token) == b_id
    assert await bob2.next("call-ended") == {}
    await bob2.emit("call", {"targetCallId": a_id, "offer": offer()})
    assert (await alice.next("incoming-call"))["callerCallId"] == b_id
    await asyncio.sleep(RESUME_GRACE)  # the old hold's timer ends nothing
    await alice.sync()
    await bob2.sync()
    alice.assert_quiet()
    bob2.assert_quiet()


async def test_a_held_account_is_busy_on_its_other_devices(own_server: Server, connect: Connector) -> None:
    """One call at a time per Call ID: while the phone's seat is held, the account's laptop is not free either."""
    server = own_server  # until_sockets counts every socket on it
    bob_account = new_account(server)
    alice, carol = await connect(server, "alice"), await connect(server, "carol")
    phone = await connect(server, "bob-phone", auth=bob_account.auth)
    await alice.register()
    await carol.register()
    b_id = await phone.register()
    await establish(alice, phone)
    laptop = await connect(server, "bob-laptop", auth=bob_account.auth)
    assert await laptop.register() == b_id
    await phone.close()
    await until_sockets(server, 3)  # the server has handled the phone's going: its seat is held
    assert await carol.error("call", {"targetCallId": b_id, "offer": offer()}) == f"{b_id} is busy"
    assert await laptop.error("call", {"targetCallId": carol.call_id, "offer": offer()}) == "You are already in a call"
    assert await alice.next("call-ended", timeout=RESUME_GRACE + WAIT) == {}
    await carol.emit("call", {"targetCallId": b_id, "offer": offer()})
    assert (await laptop.next("incoming-call"))["callerCallId"] == carol.call_id


async def test_a_token_of_another_identity_is_refused(server: Server, connect: Connector) -> None:
    alice_account, mallory_account = new_account(server), new_account(server)
    alice = await connect(server, "alice", auth=alice_account.auth)
    a_id = await alice.register()
    anon = await connect(server, "anon")
    anon_id = await anon.register()

    # Another account, an anonymous socket, and an account presenting an anonymous token: each registers as
    # itself, and the sockets whose tokens they tried keep running.
    mallory = await connect(server, "mallory", auth=mallory_account.auth)
    m_id = await mallory.register(resume=alice.token)
    stranger = await connect(server, "stranger")
    s_id = await stranger.register(resume=alice.token)
    assert len({a_id, m_id, s_id}) == 3
    mallory2 = await connect(server, "mallory2", auth=mallory_account.auth)
    assert await mallory2.register(resume=anon.token) == m_id
    for peer in (mallory, stranger, mallory2):
        await peer.sync()
        peer.assert_quiet()
    assert alice.connected and anon.connected
    log = server.log_file.read_text()
    assert log.count("resume token of another identity refused") >= 3, log[-3000:]

    # The refusals did not use the tokens up: their owners can still resume.
    alice2 = await connect(server, "alice2", headers=alice_account.cookie_header)  # the same account by cookie
    assert await alice2.register(resume=alice.token) == a_id
    await until_gone(alice)
    anon2 = await connect(server, "anon2")
    assert await anon2.register(resume=anon.token) == anon_id
    await until_gone(anon)


async def test_tokens_are_single_use(server: Server, connect: Connector) -> None:
    first = await connect(server, "first")
    call_id = await first.register("First")
    second = await connect(server, "second")
    assert await second.register(resume=first.token) == call_id
    await until_gone(first)
    assert second.token != first.token

    # The used token, an unknown one and an empty one register anew; each gets a token of its own.
    for label, token in (("reused", first.token), ("unknown", "x" * 32), ("empty", ""), ("long", "y" * 5000)):
        assert token is not None
        other = await connect(server, label)
        assert await other.register(resume=token) != call_id
        assert other.token not in (first.token, second.token)
    assert "resume token unknown, used or expired: registering anew" in server.log_file.read_text()

    # A resume on a socket that is registered already is ignored; a resume that is not a string is refused.
    assert await second.register(raw={"resume": second.token}) == call_id
    third = await connect(server, "third")
    assert await third.error("register", {"resume": 42}) == "resume must be a string"
    third.assert_quiet()
    # The token the second socket holds still works (once).
    fourth = await connect(server, "fourth")
    assert await fourth.register(resume=second.token) == call_id
    await until_gone(second)


async def test_server_stop_ends_held_calls(make_server: Callable[..., Server], connect_ws: Connector) -> None:
    """A call held for a resume when the server stops is recorded, as ending at the disconnect."""
    srv = make_server({"signaling": {"resume_grace": 60}})
    alice_account = new_account(srv)
    alice = await connect_ws(srv, "alice", auth=alice_account.auth)
    bob = await connect_ws(srv, "bob")
    await alice.register()
    await bob.register("Bob")
    await establish(alice, bob)
    await bob.close()
    await asyncio.sleep(1.5)
    await asyncio.to_thread(srv.stop)
    await asyncio.wait_for(alice.disconnected.wait(), WAIT)
    alice.assert_quiet("call-ended")
    await asyncio.to_thread(srv.start)
    [call] = alice_account.history()
    assert (call["peer"], call["status"], call["durationSeconds"]) == ("Bob", "answered", 0), call


async def test_rotating_the_key_ends_the_call_at_once(server: Server, connect: Connector) -> None:
    """A socket the server drops on purpose is not held: its call ends without waiting for the grace."""
    alice_account = new_account(server)
    alice = await connect(server, "alice", auth=alice_account.auth)
    bob = await connect(server, "bob")
    await alice.register()
    await bob.register()
    await establish(alice, bob)
    response = alice_account.http.post("/api/key/regenerate", headers={"x-api-key": alice_account.key})
    assert response.status_code == 200, response.text
    rotated = time.monotonic()
    assert await bob.next("call-ended") == {}
    assert time.monotonic() - rotated < RESUME_GRACE / 2
    await until_gone(alice)
    fresh = await connect(server, "alice-new", auth={"apiKey": response.json()["apiKey"]})
    await fresh.register(resume=alice.token)
    await fresh.sync()
    fresh.assert_quiet()  # the token went with the key: no call-resumed, no call-ended


async def test_a_grace_of_zero_ends_the_call_at_the_disconnect(make_server: Callable[..., Server],
                                                                connect_ws: Connector) -> None:
    """signaling.resume_grace: 0 — a disconnect ends the call at once, as api.md's table says; a socket that is
    still connected can still be taken over."""
    srv = make_server({"signaling": {"resume_grace": 0}})
    alice, bob = await connect_ws(srv, "alice"), await connect_ws(srv, "bob")
    a_id, b_id = await alice.register(), await bob.register()
    await establish(alice, bob)
    bob2 = await connect_ws(srv, "bob2")
    assert await bob2.register(resume=bob.token) == b_id
    assert await bob2.next("call-resumed") == {"peerCallId": a_id, "role": "callee"}
    assert await alice.next("peer-reconnected") == {}
    await until_gone(bob)

    await bob2.close()
    closed = time.monotonic()
    assert await alice.next("call-ended") == {}
    assert time.monotonic() - closed < 1
    late = await connect_ws(srv, "late")
    assert await late.register(resume=bob2.token) != b_id  # nothing to resume after a disconnect
