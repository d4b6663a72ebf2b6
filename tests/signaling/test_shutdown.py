"""Stopping the server while clients are connected: prompt, and the calls in progress are recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tests.signaling.clients import RawPolling, answer, new_account, offer
from tests.signaling.conftest import Connector
from tests.support import Server, query_db


async def test_stop_does_not_hang_on_a_polling_client_that_went_away(
        make_server: Callable[..., Server], connect_ws: Connector) -> None:
    srv = make_server()
    bob_account = new_account(srv)
    bob = await connect_ws(srv, "bob", auth=bob_account.auth)
    bob_id = await bob.register()
    phone = RawPolling(srv.base_url)
    try:
        await phone.open()
        await phone.emit("register", {"displayName": "Phone"})
        event, payload = await phone.next_event()
        assert event == "registered", (event, payload)
        phone_id = payload["callId"]

        # Bob calls the phone, which answers and then stops polling: its next packets are never collected.
        await bob.emit("call", {"targetCallId": phone_id, "offer": offer()})
        assert (await phone.next_event())[0] == "incoming-call"
        await phone.emit("answer", {"targetCallId": bob.call_id, "answer": answer()})
        await bob.next("call-answered")
        await bob.emit("hangup", {"targetCallId": phone_id})  # queued for the phone, never delivered
        await bob.emit("call", {"targetCallId": phone_id, "offer": offer()})
        await bob.sync()

        started = time.monotonic()
        await asyncio.to_thread(srv.stop)
        took = time.monotonic() - started
    finally:
        await phone.close()
    log = srv.log_file.read_text()
    assert "Server Stopped" in log, log[-2000:]
    assert took < 5, f"stopping took {took:.1f}s"
    # After a restart: the unanswered second call was recorded as the server went down (the recorder was
    # flushed), and Bob's permanent Call ID is still his.
    await asyncio.to_thread(srv.start)
    calls = bob_account.history()
    assert [(c["direction"], c["peer"], c["status"]) for c in calls] == [
        ("outgoing", "Phone", "missed"), ("outgoing", "Phone", "answered")]
    again = await connect_ws(srv, "bob-again", headers=bob_account.cookie_header)
    assert await again.register() == bob_id


async def test_stop_after_clients_left_logs_no_errors(make_server: Callable[..., Server],
                                                      connect_ws: Connector) -> None:
    """Sockets that closed leave engine.io's next ping asleep; stopping must not report them as destroyed tasks."""
    srv = make_server()
    peers = [await connect_ws(srv, f"peer-{n}") for n in range(5)]
    for peer in peers:
        await peer.register()
    for peer in peers[:3]:
        await peer.close()  # left before the stop
    await asyncio.to_thread(srv.stop)
    log = srv.log_file.read_text()
    assert "Server Stopped" in log, log[-2000:]
    assert "Task was destroyed" not in log, log[-4000:]
    assert " ERROR " not in log, log[-4000:]


async def test_stop_mid_call_disconnects_without_call_ended(make_server: Callable[..., Server],
                                                            connect_ws: Connector) -> None:
    """Neither party is told the other hung up: they learn of the stop from the lost connection (api.md's
    "Lost the connection to the server"); the call is recorded as answered, and a ringing one as missed."""
    srv = make_server()
    alice_account = new_account(srv)
    alice = await connect_ws(srv, "alice", auth=alice_account.auth)
    bob = await connect_ws(srv, "bob")
    carol = await connect_ws(srv, "carol")
    dave = await connect_ws(srv, "dave")
    for peer in (alice, bob, carol, dave):
        await peer.register()
    await alice.emit("call", {"targetCallId": bob.call_id, "offer": offer()})
    await bob.next("incoming-call")
    await bob.emit("answer", {"targetCallId": alice.call_id, "answer": answer()})
    await alice.next("call-answered")
    await carol.emit("call", {"targetCallId": dave.call_id, "offer": offer()})
    await dave.next("incoming-call")  # still ringing when the server stops

    await asyncio.to_thread(srv.stop)
    for peer in (alice, bob, carol, dave):
        await asyncio.wait_for(peer.disconnected.wait(), 5)
        peer.assert_quiet("call-ended", "call-error")

    await asyncio.to_thread(srv.start)
    assert [(c["direction"], c["status"]) for c in alice_account.history()] == [("outgoing", "answered")]
    assert sorted(row[0] for row in query_db(srv, "SELECT status FROM calls")) == ["answered", "missed"]
