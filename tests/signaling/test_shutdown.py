"""Stopping the server while clients are connected: prompt, and the calls in progress are recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tests.signaling.clients import RawPolling, answer, new_account, offer
from tests.signaling.conftest import Connector
from tests.support import Server


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
