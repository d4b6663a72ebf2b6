"""Bad input, floods and oversized messages: a clear call-error for the sender, nobody else disturbed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.signaling.clients import WAIT, answer, candidate, offer
from tests.signaling.conftest import Connector
from tests.support import Server

SDP_LIMIT = 64 * 1024
EVENT_BURST, EVENT_RATE = 200, 50  # per-socket flood control: a burst of 200 events, then 50/s
ANY = "K7XM2PQ9"  # a well-formed Call ID nobody is in a call with
RENEGOTIATE_SHAPE = "description must be {type: 'offer' | 'answer', sdp: '…'}"


def sdp(size: int) -> str:
    return "v=0\r\n" + "a" * (size - 5)


UNREGISTERED = [
    ("call", {"targetCallId": ANY, "offer": offer()}),
    ("answer", {"targetCallId": ANY, "answer": answer()}),
    ("reject", {"targetCallId": ANY}),
    ("hangup", {"targetCallId": ANY}),
    ("ice-candidate", {"targetCallId": ANY, "candidate": candidate()}),
    ("update-name", {"displayName": "Early"}),
    ("renegotiate", {"targetCallId": ANY, "description": offer()}),
]


@pytest.mark.parametrize(("event", "payload"), UNREGISTERED, ids=[e for e, _ in UNREGISTERED])
async def test_events_before_register(server: Server, connect: Connector, event: str, payload: Any) -> None:
    peer = await connect(server, "early")
    assert await peer.error(event, payload) == "Register first"


def bad_inputs(callee: str) -> list[tuple[str, tuple[Any, ...], str]]:
    """(event, emit arguments, call-error message) for a registered sender; ``callee`` is online."""
    return [
        ("call", (), "targetCallId is required"),
        ("call", ({},), "targetCallId is required"),
        ("call", ({"offer": offer()},), "targetCallId is required"),
        ("call", ({"targetCallId": "", "offer": offer()},), "targetCallId is required"),
        ("hangup", ({"targetCallId": " \t"},), "targetCallId is required"),  # found by test_event_fuzz.py
        ("call", ({"targetCallId": 12345678, "offer": offer()},), "targetCallId is required"),
        ("call", ({"targetCallId": [callee], "offer": offer()},), "targetCallId is required"),
        ("call", ("K7XM2PQ9",), "Payload must be a JSON object"),
        ("call", ([callee, offer()],), "Payload must be a JSON object"),
        ("call", (42,), "Payload must be a JSON object"),
        ("call", ({"targetCallId": callee},), "offer must be {type: 'offer', sdp: '…'}"),
        ("call", ({"targetCallId": callee, "offer": "v=0"},), "offer must be {type: 'offer', sdp: '…'}"),
        ("call", ({"targetCallId": callee, "offer": {"type": "answer", "sdp": "v=0"}},),
         "offer must be {type: 'offer', sdp: '…'}"),
        ("call", ({"targetCallId": callee, "offer": {"type": "offer", "sdp": 7}},),
         "offer must be {type: 'offer', sdp: '…'}"),
        ("call", ({"targetCallId": callee, "offer": {"type": "offer", "sdp": sdp(SDP_LIMIT + 1)}},),
         "offer SDP is larger than 64 KiB"),
        ("answer", ({"targetCallId": callee},), "answer must be {type: 'answer', sdp: '…'}"),
        ("answer", ({"targetCallId": callee, "answer": {"type": "answer", "sdp": sdp(SDP_LIMIT + 1)}},),
         "answer SDP is larger than 64 KiB"),
        ("answer", ({"answer": answer()},), "targetCallId is required"),
        ("reject", (), "targetCallId is required"),
        ("reject", ("nope",), "Payload must be a JSON object"),
        ("hangup", ({"targetCallId": None},), "targetCallId is required"),
        ("hangup", ({"targetCallId": "ZZ"},), "ZZ is not a valid Call ID"),
        ("ice-candidate", ({"targetCallId": callee},), "candidate must be an RTCIceCandidateInit object"),
        ("ice-candidate", ({"targetCallId": callee, "candidate": "candidate:1 1 udp"},),
         "candidate must be an RTCIceCandidateInit object"),
        ("ice-candidate", ({"targetCallId": callee, "candidate": {"candidate": 5}},),
         "candidate must be an RTCIceCandidateInit object"),
        ("ice-candidate", ({"targetCallId": callee, "candidate": {"candidate": "c" * 5000}},),
         "candidate is too long"),
        ("renegotiate", ({"description": offer()},), "targetCallId is required"),
        ("renegotiate", ({"targetCallId": "ZZ", "description": offer()},), "ZZ is not a valid Call ID"),
        ("renegotiate", ("v=0",), "Payload must be a JSON object"),
        *(("renegotiate", ({"targetCallId": callee, **body},), RENEGOTIATE_SHAPE) for body in (
            {}, {"offer": offer()}, {"description": "v=0"}, {"description": {"type": "rollback", "sdp": ""}},
            {"description": {"type": "pranswer", "sdp": "v=0"}}, {"description": {"type": "offer"}},
            {"description": {"type": ["offer"], "sdp": "v=0"}}, {"description": {"type": "answer", "sdp": None}},
        )),
        ("renegotiate", ({"targetCallId": callee, "description": {"type": "answer", "sdp": sdp(SDP_LIMIT + 1)}},),
         "description SDP is larger than 64 KiB"),
        ("update-name", ({"displayName": 3.5},), "displayName must be a string"),
        ("update-name", (["Bob"],), "Payload must be a JSON object"),
        ("register", ({"displayName": {"first": "Al"}},), "displayName must be a string"),
        ("update-name", ({"displayName": "Mo\ud800m"},), "displayName must be valid Unicode text"),  # a lone surrogate
        ("dial", ({"targetCallId": callee},), "Unknown event: dial"),
        ("CALL", ({"targetCallId": callee, "offer": offer()},), "Unknown event: CALL"),
        ("x" * 100, (), "Unknown event: " + "x" * 40),
    ]


async def test_bad_input_gets_a_clear_call_error(server: Server, connect: Connector) -> None:
    sender, bystander = await connect(server, "sender"), await connect(server, "bystander")
    sender_id = await sender.register("Sender")
    callee = await bystander.register("Bystander")
    for event, args, message in bad_inputs(callee):
        assert await sender.error(event, *args) == message, (event, args)
    # Nothing reached the bystander, and both still work: the sender keeps its ID and can call.
    assert sender.connected
    bystander.assert_quiet()
    assert await sender.register() == sender_id
    await sender.emit("call", {"targetCallId": callee, "offer": offer()})
    assert (await bystander.next("incoming-call"))["callerCallId"] == sender_id


async def test_sdp_of_exactly_64_kib_is_relayed(server: Server, connect: Connector) -> None:
    alice, bob = await connect(server, "alice"), await connect(server, "bob")
    a_id, b_id = await alice.register(), await bob.register()
    big_offer = {"type": "offer", "sdp": sdp(SDP_LIMIT)}
    await alice.emit("call", {"targetCallId": b_id, "offer": big_offer})
    assert (await bob.next("incoming-call"))["offer"] == big_offer
    big_answer = {"type": "answer", "sdp": sdp(SDP_LIMIT)}
    await bob.emit("answer", {"targetCallId": a_id, "answer": big_answer})
    assert (await alice.next("call-answered"))["answer"] == big_answer
    for sender, receiver, target, kind in ((alice, bob, b_id, "offer"), (bob, alice, a_id, "answer")):
        big = {"type": kind, "sdp": sdp(SDP_LIMIT)}
        await sender.emit("renegotiate", {"targetCallId": target, "description": big})
        assert await receiver.next("renegotiate") == {"description": big}


async def test_an_oversized_message_costs_only_its_sender(server: Server, connect: Connector) -> None:
    """A message past the transport's limit closes that one connection; the server serves everyone else."""
    alice, bob = await connect(server, "alice"), await connect(server, "bob")
    abuser = await connect(server, "abuser")
    a_id, b_id = await alice.register(), await bob.register()
    await abuser.register()
    await alice.emit("call", {"targetCallId": b_id, "offer": offer()})
    await bob.next("incoming-call")
    await abuser.emit("call", {"targetCallId": b_id, "offer": {"type": "offer", "sdp": "a" * 300_000}})
    await asyncio.wait_for(abuser.disconnected.wait(), WAIT)
    await bob.emit("answer", {"targetCallId": a_id, "answer": answer()})
    await alice.next("call-answered")
    await bob.emit("ice-candidate", {"targetCallId": a_id, "candidate": candidate(1)})
    assert await alice.next("ice-candidate") == {"candidate": candidate(1)}


FLOOD_MAX = 8000


async def test_a_flood_does_not_disturb_another_call(server: Server, connect: Connector) -> None:
    alice, bob = await connect(server, "alice"), await connect(server, "bob")
    flooder = await connect(server, "flooder")
    a_id, b_id = await alice.register("Alice"), await bob.register("Bob")
    await flooder.register()

    async def flood(seconds: float) -> int:
        """Thousands of events a second (the allowance is a burst of 200, then 50/s) for ``seconds``, at most
        FLOOD_MAX: each still has to be read and decoded, and a faster client would leave the flooder's own
        marker below (it is served in order) behind a backlog of several seconds."""
        sent = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and sent < FLOOD_MAX:
            for _ in range(100):
                await flooder.emit("dial", {"n": sent})
                await flooder.emit("ice-candidate", {"targetCallId": b_id, "candidate": candidate(sent)})
                sent += 2
            await flooder.flush()  # on polling, keeps each batch within what one request may carry
        return sent

    async def call() -> float:
        await asyncio.sleep(0.2)  # in the thick of the flood
        started = time.monotonic()
        await alice.emit("call", {"targetCallId": b_id, "offer": offer()})
        await bob.next("incoming-call")
        await bob.emit("answer", {"targetCallId": a_id, "answer": answer()})
        await alice.next("call-answered")
        for n in range(10):
            await alice.emit("ice-candidate", {"targetCallId": b_id, "candidate": candidate(n)})
            await bob.emit("ice-candidate", {"targetCallId": a_id, "candidate": candidate(100 + n)})
        for n in range(10):
            assert await bob.next("ice-candidate") == {"candidate": candidate(n)}
            assert await alice.next("ice-candidate") == {"candidate": candidate(100 + n)}
        return time.monotonic() - started

    flood_started = time.monotonic()
    sent, took = await asyncio.gather(flood(1.0), call())
    assert took < 1.5, f"a call beside the flood took {took:.2f}s"
    # The flooder's candidates went nowhere; Alice and Bob got only their own traffic.
    await alice.emit("hangup", {"targetCallId": b_id})
    assert await bob.next("call-ended") == {}
    alice.assert_quiet()
    bob.assert_quiet()

    # Once the flood stops, the flooder is served again; until then it was throttled to its allowance.
    answered = 0
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        await flooder.emit("marker-event")
        try:
            while (await flooder.next("call-error", timeout=0.2))["message"] != "Unknown event: marker-event":
                answered += 1
            break
        except AssertionError:
            continue
    else:
        raise AssertionError("the flooder was never served again")
    allowance = EVENT_BURST + EVENT_RATE * (time.monotonic() - flood_started)
    assert answered <= allowance, (answered, allowance)
    assert answered * 2 < sent, (answered, sent)
    assert flooder.connected
