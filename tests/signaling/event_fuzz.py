"""Malformed Socket.IO events for every client → server event of docs/api.md, and a client that sends them.

Each input is one event (a contract event with a payload of the wrong type, missing or junk fields, huge strings,
nested junk; or an unknown event name) followed by a marker event the server does not know. A socket's events
are handled in order (docs/api.md, Signaling), so the marker's ``call-error`` closes what the input caused:
everything received before it is the input's answer. :func:`judge` says whether that answer is what the contract
allows. Shared by tests/signaling/test_event_fuzz.py (bounded) and bench/fuzz_api.py.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import socketio
from hypothesis import strategies as st

from tests.signaling.clients import CALL_ID_RE, WAIT, answer, candidate, offer

EVENTS = ("register", "call", "answer", "reject", "hangup", "update-name", "ice-candidate", "renegotiate")
TARGETED = {"call", "answer", "reject", "hangup", "ice-candidate", "renegotiate"}
MARKER = "fuzz-marker"
MAX_MESSAGE = 120_000  # below the 128 KiB at which the transport closes the connection (docs/api.md)
PER_SOCKET = 90  # inputs per socket: 2 events each stays within the burst of 200 events per socket
# Every call-error message of docs/api.md's table.
MESSAGES = [re.compile(pattern, re.DOTALL) for pattern in (
    r".{1,16} is not online", r".{1,16} is busy", r".{1,16} did not answer", r".{1,16} is not a valid Call ID",
    r"You cannot call yourself", r"You are already in a call", r"Register first",
    r"Too many requests, try again later", r"Payload must be a JSON object", r"targetCallId is required",
    r"offer must be \{type: 'offer', sdp: '…'\}", r"answer must be \{type: 'answer', sdp: '…'\}",
    r"description must be \{type: 'offer' \| 'answer', sdp: '…'\}", r"(offer|answer|description) SDP is larger "
    r"than 64 KiB", r"candidate must be an RTCIceCandidateInit object", r"candidate is too long",
    r"displayName must be a string", r"resume must be a string", r"Unknown event: .{0,40}",
)]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=50), st.sampled_from(["", " ", "\x00", "K7XM2PQ9", "k7xm2pq9", "IIIIIIII", "offer", "answer"]),
)
huge = st.integers(10_000, 70_000).map(lambda n: "v" * n)
junk = st.recursive(st.one_of(scalars, huge), lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)
call_ids = st.one_of(st.from_regex(r"\A[A-HJ-NP-Z2-9]{8}\Z"), st.text(max_size=20), junk)
descriptions = st.one_of(
    st.sampled_from([offer(), answer()]),
    st.fixed_dictionaries({}, optional={"type": st.one_of(st.sampled_from(["offer", "answer", "rollback"]), junk),
                                        "sdp": st.one_of(st.text(max_size=200), huge, junk)}),
    junk)
candidates = st.one_of(
    st.just(candidate()), st.none(),
    st.fixed_dictionaries({}, optional={"candidate": st.one_of(st.text(max_size=100), huge, junk),
                                        "sdpMid": junk, "sdpMLineIndex": junk, "usernameFragment": junk}),
    junk)
FIELDS = {"targetCallId": call_ids, "offer": descriptions, "answer": descriptions, "description": descriptions,
          "candidate": candidates, "displayName": st.one_of(st.text(max_size=80), huge, junk), "resume": junk}
shaped = st.fixed_dictionaries({}, optional=FIELDS).flatmap(
    lambda body: st.dictionaries(st.text(max_size=12), junk, max_size=3).map(lambda extra: {**extra, **body}))
payloads = st.one_of(st.none(), junk, shaped, shaped, shaped)
unknown_events = st.text(min_size=1, max_size=60).map(lambda name: "zz-" + name)
inputs = st.one_of(
    st.tuples(st.sampled_from(EVENTS), payloads),
    st.tuples(unknown_events, payloads),
).filter(lambda item: len(json.dumps(item)) < MAX_MESSAGE)


def expected_error(event: str, payload: Any) -> str | None:
    """The call-error the contract promises for this input, when it promises one."""
    if event not in EVENTS:
        return f"Unknown event: {event[:40]}"
    if payload is not None and not isinstance(payload, dict):
        return "Payload must be a JSON object"
    body = payload or {}
    if event in TARGETED and (not isinstance(body.get("targetCallId"), str) or not body["targetCallId"].strip()):
        return "targetCallId is required"
    if event in ("register", "update-name") and not isinstance(body.get("displayName"), str | None):
        return "displayName must be a string"
    if event == "register" and not isinstance(body.get("resume"), str | None):
        return "resume must be a string"
    return None


def judge(event: str, payload: Any, answered: list[tuple[str, Any]]) -> str | None:
    """Why the server's answer to one input breaks the contract, or None when it keeps it."""
    errors = [data.get("message") if isinstance(data, dict) else data for name, data in answered
              if name == "call-error"]
    others = [name for name, _ in answered if name != "call-error"]
    for message in errors:
        if not isinstance(message, str) or not any(pattern.fullmatch(message) for pattern in MESSAGES):
            return f"undocumented call-error {message!r}"
    expected = expected_error(event, payload)
    if expected is not None:
        return None if errors == [expected] and not others else f"expected only call-error {expected!r}"
    if event == "register" and not errors:
        registered = [data for name, data in answered if name == "registered"]
        if len(registered) != 1 or not CALL_ID_RE.fullmatch(str(registered[0].get("callId"))):
            return "no registered {callId}"
        return None if set(others) <= {"registered", "session"} else f"unexpected events {others}"
    return None if not others else f"unexpected events {others}"


class Fuzzer:
    """One registered python-socketio client at a time, replaced every :data:`PER_SOCKET` inputs."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.client: socketio.AsyncClient | None = None
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.sent = 0

    async def _open(self) -> None:
        await self.close()
        client = socketio.AsyncClient(reconnection=False)
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        @client.on("*")
        async def record(event: str, *args: Any) -> None:
            queue.put_nowait((event, args[0] if len(args) == 1 else list(args)))

        await client.connect(self.base_url, transports=["websocket"], wait_timeout=WAIT)
        self.client, self.queue = client, queue
        await client.emit("register", {"displayName": "Fuzzer"})
        await self._until(lambda event, _: event == "session")

    async def _until(self, last: Any) -> list[tuple[str, Any]]:
        seen: list[tuple[str, Any]] = []
        while True:
            event, data = await asyncio.wait_for(self.queue.get(), WAIT)
            seen.append((event, data))
            if last(event, data):
                return seen

    async def send(self, event: str, payload: Any) -> list[tuple[str, Any]]:
        """Emit one input and the marker; what the server answered to the input, in order."""
        if self.client is None or self.sent % PER_SOCKET == 0 or not self.client.connected:
            await self._open()
        assert self.client is not None
        self.sent += 1
        await self.client.emit(event, payload)
        await self.client.emit(MARKER)
        marker = {"message": f"Unknown event: {MARKER}"}
        return (await self._until(lambda name, data: name == "call-error" and data == marker))[:-1]

    async def close(self) -> None:
        if self.client is not None:
            await self.client.eio.disconnect(abort=True)
            self.client = None
