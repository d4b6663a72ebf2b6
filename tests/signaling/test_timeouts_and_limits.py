"""ring_timeout, on a dedicated server with ring_timeout 5 (the call limits: test_who_may_ring.py)."""

from __future__ import annotations

import asyncio
import time

from tests.signaling.clients import answer, new_account, offer
from tests.signaling.conftest import SHORT_RING, Connector
from tests.support import Server


async def test_unanswered_call_times_out_as_missed(short_server: Server, connect_ws: Connector) -> None:
    """Both transports at once (the wait is the same): a WebSocket caller rings a callee with a WebSocket
    and a polling device, and a polling caller rings a WebSocket callee."""
    bob_account, carol_account, dave_account = (new_account(short_server) for _ in range(3))
    bob = await connect_ws(short_server, "bob", auth=bob_account.auth, transport="websocket")
    carol_ws = await connect_ws(short_server, "carol-ws", auth=carol_account.auth, transport="websocket")
    carol_poll = await connect_ws(short_server, "carol-poll", auth=carol_account.auth, transport="polling")
    dave = await connect_ws(short_server, "dave", auth=dave_account.auth, transport="polling")
    eve = await connect_ws(short_server, "eve", transport="websocket")
    await bob.register("Bob")
    carol_id = await carol_ws.register("Carol")
    await carol_poll.register("Carol")
    await dave.register("Dave")
    eve_id = await eve.register("Eve")

    started = time.monotonic()
    await bob.emit("call", {"targetCallId": carol_id, "offer": offer()})
    await dave.emit("call", {"targetCallId": eve_id, "offer": offer()})
    await asyncio.gather(carol_ws.next("incoming-call"), carol_poll.next("incoming-call"), eve.next("incoming-call"))

    wait = SHORT_RING + 4
    bob_error, dave_error, *ended = await asyncio.gather(
        bob.next("call-error", wait), dave.next("call-error", wait),
        carol_ws.next("call-ended", wait), carol_poll.next("call-ended", wait), eve.next("call-ended", wait))
    took = time.monotonic() - started
    assert bob_error == {"message": f"{carol_id} did not answer"}
    assert dave_error == {"message": f"{eve_id} did not answer"}
    assert ended == [{}, {}, {}]
    assert SHORT_RING - 0.5 <= took <= SHORT_RING + 3, took

    # Too late to answer; everyone is free again.
    await carol_ws.emit("answer", {"targetCallId": bob.call_id, "answer": answer()})
    await carol_ws.sync()
    bob.assert_quiet()
    await eve.emit("call", {"targetCallId": dave.call_id, "offer": offer()})
    assert (await dave.next("incoming-call"))["callerCallId"] == eve_id

    summary = [(c["direction"], c["peer"], c["status"], c["durationSeconds"])
               for c in bob_account.history() + carol_account.history()]
    assert summary == [("outgoing", "Carol", "missed", None), ("incoming", "Bob", "missed", None)]
    assert [(c["direction"], c["peer"], c["status"]) for c in dave_account.history()] == [
        ("outgoing", "Eve", "missed")]
