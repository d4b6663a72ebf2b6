"""The call state machine (ringing → active → ended) behind the Socket.IO events of api.md.

It knows nothing of Socket.IO: it talks to sockets through an :class:`Outbox` and raises
:class:`CallError` for the sender's ``call-error``. Messages between the two parties are relayed only
while they share a ringing or active call (``renegotiate``: an active one); anything else is dropped and logged.

Session resume (docs/api.md "Session resume"): a socket that registers with the ``resume`` token of another
socket of the same identity takes its place — Call ID, name, and its seat in a ringing or active call. A socket
that goes away during an active call leaves its seat *held* for the resume grace instead of ending the call, so a
phone whose network changed can come back.

The addresses each party announces in its offer, answer, renegotiations and candidates are kept on its socket
(``Peer.announced``) before they are passed on: the relay lets the other party reach them (relay_policy.py).

Who may ring whom: ``call`` attempts are limited per caller identity, per source address and per callee
(ringing.py), and a callee's blocks (blocks.py) turn a call into one that rings nobody: the caller hears
"did not answer" after ``ring_timeout`` as for a real miss, and only the caller's history lists it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from opencall.services.call_records import CallRecorder, FinishedCall
from opencall.services.callids import is_assigned, is_call_id, new_call_id
from opencall.services.clock import utcnow
from opencall.services.errors import ServiceError
from opencall.services.ratelimit import TokenBucket
from opencall.services.ringing import RingingLimits
from opencall.services.validation import storable
from opencall.signaling.registry import Peer, Registry
from opencall.signaling.resume import ResumeTokens

log = logging.getLogger("opencall.signaling")

DISPLAY_NAME_MAX = 32
SDP_MAX = 64 * 1024
CANDIDATE_MAX = 4096
# Per-socket budget for all events: bursts of 200 (a call's trickled candidates), 50 per second sustained.
EVENT_BURST, EVENT_RATE = 200, 50.0


class CallError(ServiceError):
    """Sent back to the sender as ``call-error {message}``."""


# Whether the account ``owner_id`` refuses a call from Call ID ``call_id`` placed by ``principal``, signed in or not.
Refusal = Callable[[int, str, "str | None", bool], Awaitable[bool]]


class Outbox(Protocol):
    """How the state machine reaches sockets."""

    async def emit(self, sid: str, event: str, payload: dict[str, Any]) -> None: ...

    async def disconnect(self, sid: str) -> None: ...


State = Literal["ringing", "active", "ended"]
SdpType = Literal["offer", "answer"]


@dataclass(eq=False)
class Call:
    caller: Peer
    callee_call_id: str
    ringing: list[Peer]
    started_at: datetime
    callee_user_id: int | None = None  # the account behind callee_call_id, None for an anonymous callee
    callee_username: str | None = None
    blocked: bool = False  # the callee refuses this caller: it rings nobody
    state: State = "ringing"
    callee: Peer | None = None
    answered_at: datetime | None = None
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def parties(self) -> list[Peer]:
        return [self.caller, *([self.callee] if self.callee else self.ringing)]

    def other_side(self, peer: Peer) -> list[Peer]:
        """Who hears from ``peer``: the callee side for the caller, the caller for any callee socket."""
        if peer is self.caller:
            return [self.callee] if self.callee else list(self.ringing)
        return [self.caller]

    def other_call_id(self, peer: Peer) -> str:
        return self.callee_call_id if peer is self.caller else self.caller.call_id or ""

    def replace(self, old: Peer, new: Peer) -> None:
        """``new`` takes ``old``'s seat (caller, callee or a ringing device)."""
        if self.caller is old:
            self.caller = new
        if self.callee is old:
            self.callee = new
        self.ringing = [new if peer is old else peer for peer in self.ringing]
        old.call, new.call = None, self


@dataclass(eq=False)
class Hold:
    """A party whose socket went away during an active call: its seat waits ``resume_grace`` for a resume."""

    gone_at: datetime
    timer: asyncio.TimerHandle = field(repr=False)


def display_name(value: Any) -> str | None:
    """api.md: trimmed, capped at 32 characters, whitespace-only → null."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise CallError("displayName must be a string")
    try:
        value = storable(value, "displayName")
    except ServiceError as refused:
        raise CallError(str(refused)) from None
    return value.strip()[:DISPLAY_NAME_MAX].strip() or None


def _payload(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CallError("Payload must be a JSON object")
    return data


def _target(data: dict[str, Any], malformed: str = "is not a valid Call ID") -> str:
    target = data.get("targetCallId")
    if not isinstance(target, str) or not target.strip():  # whitespace only names no Call ID either
        raise CallError("targetCallId is required")
    target = target.strip().upper()
    if not is_call_id(target):
        raise CallError(f"{target[:16]} {malformed}")
    return target


def _description(data: dict[str, Any], name: str, *types: SdpType) -> dict[str, str]:
    """``data[name]`` as an RTCSessionDescriptionInit whose type is one of ``types`` (default: ``name``)."""
    allowed = types or (name,)
    value = data.get(name)
    if not isinstance(value, dict) or value.get("type") not in allowed or not isinstance(value.get("sdp"), str):
        shown = " | ".join(f"'{kind}'" for kind in allowed)
        raise CallError(f"{name} must be {{type: {shown}, sdp: '…'}}")
    if len(value["sdp"]) > SDP_MAX:
        raise CallError(f"{name} SDP is larger than 64 KiB")
    return {"type": value["type"], "sdp": value["sdp"]}


def _candidate(data: dict[str, Any]) -> dict[str, Any]:
    value = data.get("candidate")
    if not isinstance(value, dict) or not isinstance(value.get("candidate", ""), str):
        raise CallError("candidate must be an RTCIceCandidateInit object")
    if len(value.get("candidate", "")) > CANDIDATE_MAX:
        raise CallError("candidate is too long")
    kept = {"candidate": value.get("candidate", "")}
    for key, kind in (("sdpMid", str), ("sdpMLineIndex", int), ("usernameFragment", str)):
        if isinstance(value.get(key), kind) and not isinstance(value.get(key), bool):
            kept[key] = value[key]
    return kept


def _limit_key(peer: Peer) -> str:
    """Whom the call limits count: the account or anonymous browser, else (no cookie at all) the address."""
    return peer.principal or f"address {peer.ip}"


class Signaling:
    """Registration, presence and calls for every connected socket of this process."""

    def __init__(
        self,
        registry: Registry,
        outbox: Outbox,
        recorder: CallRecorder,
        ring_timeout: float,
        limits: RingingLimits,
        refuses: Refusal,
        permanent_call_id: Callable[[int], Awaitable[str]],
        resume_grace: float = 15,
    ) -> None:
        self.registry = registry
        self._outbox = outbox
        self._recorder = recorder
        self._ring_timeout = ring_timeout
        self._limits = limits
        self._refuses = refuses
        self._permanent_call_id = permanent_call_id
        self._buckets: dict[str, TokenBucket] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._resume_grace = resume_grace
        self._tokens = ResumeTokens(resume_grace)
        self._held: dict[Peer, Hold] = {}
        # Sessions whose call ended while their socket was away: a resume tells them with call-ended.
        self._missed_end: weakref.WeakSet[Peer] = weakref.WeakSet()

    @property
    def limits(self) -> RingingLimits:
        """The call limits (read by /metrics for their refusals)."""
        return self._limits

    # -- connections -------------------------------------------------------------------------------

    def connected(self, peer: Peer) -> None:
        self.registry.connect(peer)
        self._buckets[peer.sid] = TokenBucket(EVENT_RATE, EVENT_BURST)

    def admit(self, sid: str) -> bool:
        """Whether this socket may send another event now (flood control); drops are logged once."""
        bucket = self._buckets.get(sid)
        if bucket is None or bucket.take():
            return True
        if bucket.first_drop():
            log.warning("socket %s exceeds %d events/s: dropping events", sid, EVENT_RATE)
        return False

    async def disconnected(self, sid: str) -> None:
        """Hold the socket's active call for a resume, or end its ringing call as api.md's disconnect rules
        say; then forget the socket (its session stays resumable for the grace)."""
        self._buckets.pop(sid, None)
        peer = self.registry.peers.get(sid)
        if peer is None:
            return  # never connected, or taken over by a resume
        resumable = peer.resumable and peer.call_id is not None and self._resume_grace > 0
        call = self._call_of(peer)
        if call is not None:
            if call.state == "active" and resumable:
                self._hold(peer, call)
            elif call.state == "ringing" and peer is not call.caller and len(call.ringing) > 1:
                call.ringing.remove(peer)  # the callee's other devices keep ringing
                peer.call = None
            elif call.state == "ringing" and peer is not call.caller:
                # The last ringing socket: end while it is still listed, so the record keeps its name.
                await self._end(call, "missed", notify=[call.caller])
            else:
                await self._end(call, "answered" if call.state == "active" else "missed",
                                notify=[p for p in call.parties() if p is not peer])
        self.registry.disconnect(sid)
        if resumable:
            self._tokens.gone(peer)
        else:
            self._tokens.revoke(peer)

    async def end_all_calls(self) -> None:
        """The server is stopping: record every live call as it stands (answered, else missed) without telling
        anyone, so that each party learns from its lost connection rather than from a ``call-ended`` saying the
        other side hung up. Held calls end too (recorded as ending when their party went away)."""
        peers = [*self.registry.peers.values(), *self._held]
        calls = {id(call): call for peer in peers if (call := self._call_of(peer))}
        for call in calls.values():
            await self._end(call, "answered" if call.state == "active" else "missed", notify=[])
        for hold in self._held.values():
            hold.timer.cancel()
        self._held.clear()
        self._missed_end.clear()

    async def key_rotated(self, user_id: int) -> None:
        """Disconnect the sockets of ``user_id`` that authenticated with an API key (now invalid); their calls
        end at once and their sessions cannot be resumed."""
        await self.revoke([peer for peer in self.credentialed()
                           if peer.user_id == user_id and peer.api_key_hash is not None], "its API key was rotated")

    # -- revocation ----------------------------------------------------------------------------------

    async def session_ended(self, session_hash: str) -> None:
        """Disconnect the sockets that authenticated with this session (logout, or a new login in the same
        browser); the account's other sessions and its API-key sockets stay."""
        await self.revoke([peer for peer in self.credentialed() if peer.session_hash == session_hash],
                          "its session ended")

    def credentialed(self) -> list[Peer]:
        """The sockets that authenticated with a session or an API key: the connected ones, and those whose seat
        in a call is held for a resume."""
        return [peer for peer in (*self.registry.peers.values(), *self._held) if peer.user_id is not None]

    async def revoke(self, peers: list[Peer], reason: str) -> None:
        """End these sockets, whose credential stopped working: none can be resumed; a connected one is
        disconnected (its call ends as at any disconnect, the other party gets ``call-ended``), a held one gives
        up its seat now rather than after the resume grace."""
        for peer in peers:
            peer.resumable = False
            self._tokens.revoke(peer)
        for peer in peers:
            if self.registry.peers.get(peer.sid) is peer:
                log.info("disconnecting socket %s (%s): %s", peer.sid, peer.username, reason)
                await self._outbox.disconnect(peer.sid)
            elif peer in self._held:
                log.info("ending the held call of socket %s (%s): %s", peer.sid, peer.username, reason)
                await self._give_up(peer)

    # -- events --------------------------------------------------------------------------------------

    async def register(self, sid: str, data: Any) -> None:
        """``registered``; on the socket's first register also ``session`` (its resume token), or, with a
        valid ``resume`` token, the takeover of that session (:meth:`_resume`)."""
        peer = self._peer(sid)
        body = _payload(data)
        name = display_name(body.get("displayName"))
        token = body.get("resume")
        if token is not None and not isinstance(token, str):
            raise CallError("resume must be a string")
        if token is not None and peer.call_id is not None:
            log.info("socket %s: resume ignored, the socket is registered already", sid)
        elif token is not None and await self._resume(peer, token, name, keep_name=body.get("displayName") is None):
            return
        fresh = None
        if peer.call_id is None:
            if peer.user_id is not None:
                call_id = await self._permanent_call_id(peer.user_id)
            else:
                call_id = await self._fresh_call_id()
            if self.registry.peers.get(sid) is not peer:
                return  # disconnected while the Call ID was being looked up
            self.registry.register(peer, call_id)
            fresh = self._tokens.issue(peer)
        peer.display_name = name
        log.info("socket %s registered as %s", sid, peer.call_id)
        await self._outbox.emit(sid, "registered", {"callId": peer.call_id})
        if fresh is not None:
            await self._outbox.emit(sid, "session", {"resumeToken": fresh})

    async def update_name(self, sid: str, data: Any) -> None:
        peer = self._registered(sid)
        peer.display_name = display_name(_payload(data).get("displayName"))

    async def place(self, sid: str, data: Any) -> None:
        """``call``: ring every socket of the target Call ID, or tell the caller why not. A call the callee
        refuses (blocks.py) rings nobody and ends as "did not answer", like a real miss."""
        caller = self._registered(sid)
        body = _payload(data)
        target = _target(body, malformed="is not online")  # api.md: a mistyped Call ID is "not online"
        offer = _description(body, "offer")
        if target == caller.call_id:
            raise CallError("You cannot call yourself")
        identity = _limit_key(caller)
        self._limits.attempt(identity, caller.ip)  # every attempt counts: probing for online Call IDs too
        callees = self._callees(caller, target)
        owner = callees[0].user_id
        blocked = owner is not None and await self._refuses(owner, caller.call_id or "", caller.principal,
                                                             caller.user_id is not None)
        if self.registry.peers.get(sid) is not caller:
            return  # disconnected while the blocks were read
        callees = self._callees(caller, target)  # again: the blocks were read in between
        self._limits.may_ring(identity, target)
        call = Call(caller=caller, callee_call_id=target, ringing=[] if blocked else list(callees),
                    started_at=utcnow(), callee_user_id=owner, callee_username=callees[0].username, blocked=blocked)
        for peer in call.parties():
            peer.call = call
            peer.announced.clear()
        caller.announced.description(offer["sdp"])  # before anyone hears of it: the relay policy reads it
        call.timer = asyncio.get_running_loop().call_later(self._ring_timeout, self._ring_timed_out, call)
        if blocked:
            log.info("call %s -> %s refused by the callee's blocks: ringing nobody", caller.call_id, target)
            return
        log.info("call %s -> %s ringing on %d socket(s)", caller.call_id, target, len(callees))
        incoming = {"callerCallId": caller.call_id, "callerDisplayName": caller.shown_name, "offer": offer,
                    "callerUsername": caller.username}
        await self._emit_to(callees, "incoming-call", incoming)

    def _callees(self, caller: Peer, target: str) -> list[Peer]:
        """The sockets ``caller`` may ring for ``target``, or the ``call-error`` saying why none."""
        if self._busy(caller.call_id or ""):
            raise CallError("You are already in a call")
        callees = self.registry.sockets_of(target)
        if not callees:
            raise CallError(f"{target} is not online")
        if self._busy(target):
            raise CallError(f"{target} is busy")
        return callees

    async def answer(self, sid: str, data: Any) -> None:
        """The first answering socket wins; the other ringing sockets get ``call-ended``."""
        peer = self._registered(sid)
        body = _payload(data)
        target = _target(body)
        answer = _description(body, "answer")
        call = self._call_with(peer, target, "answer")
        if call is None or call.state != "ringing" or peer is call.caller:
            return
        self._cancel_timer(call)
        peer.announced.description(answer["sdp"])
        call.state, call.callee, call.answered_at = "active", peer, utcnow()
        others = [p for p in call.ringing if p is not peer]
        for other in others:
            other.call = None
        call.ringing = []
        log.info("call %s -> %s answered by socket %s", call.caller.call_id, call.callee_call_id, sid)
        await self._outbox.emit(call.caller.sid, "call-answered",
                                {"answer": answer, "calleeDisplayName": peer.shown_name,
                                 "calleeUsername": peer.username})
        await self._emit_to(others, "call-ended", {})

    async def reject(self, sid: str, data: Any) -> None:
        peer = self._registered(sid)
        call = self._call_with(peer, _target(_payload(data)), "reject")
        if call is None or call.state != "ringing" or peer is call.caller:
            return
        await self._end(call, "rejected", notify=[p for p in call.ringing if p is not peer])
        await self._outbox.emit(call.caller.sid, "call-rejected", {})

    async def hangup(self, sid: str, data: Any) -> None:
        peer = self._registered(sid)
        call = self._call_with(peer, _target(_payload(data)), "hangup")
        if call is None:
            return
        if call.state == "ringing" and peer is not call.caller:
            await self.reject(sid, data)  # hanging up a call you never answered declines it
            return
        status = "answered" if call.state == "active" else "missed"
        await self._end(call, status, notify=[p for p in call.parties() if p is not peer])

    async def relay_candidate(self, sid: str, data: Any) -> None:
        peer = self._registered(sid)
        body = _payload(data)
        target = _target(body)
        if "candidate" in body and body["candidate"] is None:
            return  # a browser's end-of-candidates (onicecandidate fires with null): nothing to relay
        candidate = _candidate(body)
        call = self._call_with(peer, target, "ice-candidate")
        if call is None:
            return
        peer.announced.candidate(candidate["candidate"])
        payload = {"candidate": candidate}
        await self._emit_to(call.other_side(peer), "ice-candidate", payload)

    async def renegotiate(self, sid: str, data: Any) -> None:
        """A new offer or answer during an active call (an ICE restart), relayed to the other party."""
        peer = self._registered(sid)
        body = _payload(data)
        target = _target(body)
        description = _description(body, "description", "offer", "answer")
        call = self._call_with(peer, target, "renegotiate", active=True)
        if call is None:
            return
        peer.announced.description(description["sdp"])  # an ICE restart replaces the addresses
        await self._emit_to(call.other_side(peer), "renegotiate", {"description": description})

    # -- session resume ---------------------------------------------------------------------------------

    async def _resume(self, peer: Peer, token: str, name: str | None, *, keep_name: bool) -> bool:
        """``peer`` (connected, not yet registered) takes over the session of ``token``: its Call ID, its name
        (``name`` unless ``keep_name``) and its seat in a ringing or active call. The old socket, if still
        connected, is disconnected without ending anything. False (register anew) when the token is unknown,
        used or expired, or belongs to another identity."""
        old = self._tokens.find(token)
        if old is None or old is peer:
            log.info("socket %s: resume token unknown, used or expired: registering anew", peer.sid)
            return False
        if old.user_id != peer.user_id:
            log.info("socket %s: resume token of another identity refused: registering anew", peer.sid)
            return False
        call_id = old.call_id or ""
        if any(other is not old for other in self.registry.sockets_of(call_id)) and old.user_id is None:
            log.info("socket %s: resume refused, %s was handed out again", peer.sid, call_id)
            return False
        # Everything changes hands before the first await, so a disconnect of either socket meanwhile sees a
        # consistent state.
        self._tokens.revoke(old)
        hold = self._held.pop(old, None)
        if hold is not None:
            hold.timer.cancel()
        missed_end = old in self._missed_end
        still_connected = self.registry.peers.get(old.sid) is old
        if still_connected:
            self.registry.disconnect(old.sid)  # its own disconnect, below, then finds nothing to end
        self.registry.register(peer, call_id)
        peer.display_name = old.display_name if keep_name else name
        call = self._call_of(old)
        if call is not None:
            call.replace(old, peer)
        old.call = None
        fresh = self._tokens.issue(peer)
        log.info("socket %s resumed the session of socket %s as %s (%s)", peer.sid, old.sid, call_id,
                 f"{call.state} call" if call else "no call")
        if still_connected:
            await self._outbox.disconnect(old.sid)
        # registered, then the call's news, then session last: by then the client knows whether its call is back.
        await self._outbox.emit(peer.sid, "registered", {"callId": call_id})
        if call is not None and call.state == "active":
            role = "caller" if peer is call.caller else "callee"
            await self._outbox.emit(peer.sid, "call-resumed", {"peerCallId": call.other_call_id(peer), "role": role})
            await self._emit_to(self._connected(call.other_side(peer)), "peer-reconnected", {})
        elif missed_end:
            await self._outbox.emit(peer.sid, "call-ended", {})
        await self._outbox.emit(peer.sid, "session", {"resumeToken": fresh})
        return True

    def _hold(self, peer: Peer, call: Call) -> None:
        """``peer``'s socket went away during the active ``call``: its seat waits for a resume."""
        timer = asyncio.get_running_loop().call_later(self._resume_grace, self._hold_expired, peer)
        self._held[peer] = Hold(gone_at=utcnow(), timer=timer)
        log.info("call %s -> %s: socket %s (%s) went away; held %ss for a resume", call.caller.call_id,
                 call.callee_call_id, peer.sid, peer.call_id, self._resume_grace)

    def _hold_expired(self, peer: Peer) -> None:
        task = asyncio.get_running_loop().create_task(self._give_up(peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _give_up(self, peer: Peer) -> None:
        """No socket resumed ``peer``'s seat within the grace: the call ends as a disconnect always did."""
        if self._held.get(peer) is None:
            return
        call = self._call_of(peer)
        if call is None:
            self._held.pop(peer, None)
            return
        log.info("call %s -> %s: socket %s did not come back", call.caller.call_id, call.callee_call_id, peer.sid)
        await self._end(call, "answered", notify=[p for p in call.parties() if p is not peer])

    def _connected(self, peers: list[Peer]) -> list[Peer]:
        return [p for p in peers if self.registry.peers.get(p.sid) is p]

    # -- internals -------------------------------------------------------------------------------------

    def _peer(self, sid: str) -> Peer:
        peer = self.registry.peers.get(sid)
        if peer is None:
            raise CallError("Not connected")
        return peer

    def _registered(self, sid: str) -> Peer:
        peer = self._peer(sid)
        if peer.call_id is None:
            raise CallError("Register first")
        return peer

    async def _fresh_call_id(self) -> str:
        """A throwaway Call ID that no live socket or held call uses and no account owns."""
        while True:
            call_id = new_call_id()
            if (not self.registry.sockets_of(call_id) and not any(p.call_id == call_id for p in self._held)
                    and not await is_assigned(call_id)):
                return call_id

    @staticmethod
    def _call_of(peer: Peer) -> Call | None:
        call = peer.call
        return call if isinstance(call, Call) and call.state != "ended" else None

    def _busy(self, call_id: str) -> bool:
        """In a ringing or active call, on a connected socket or on a held one (its other tabs are busy too)."""
        return (any(self._call_of(peer) for peer in self.registry.sockets_of(call_id))
                or any(peer.call_id == call_id and self._call_of(peer) for peer in self._held))

    def _call_with(self, peer: Peer, target: str, event: str, *, active: bool = False) -> Call | None:
        """The live (with ``active``: answered) call between ``peer`` and ``target``, or None (the event is
        dropped and logged)."""
        call = self._call_of(peer)
        if call is None or call.other_call_id(peer) != target or (active and call.state != "active"):
            log.warning("dropped %s from %s (%s) to %s: no %scall between them", event, peer.sid, peer.call_id,
                        target, "active " if active else "")
            return None
        return call

    async def _end(self, call: Call, status: str, notify: list[Peer]) -> None:
        """Mark the call ended, free its parties, tell ``notify`` with ``call-ended`` and record it.

        A held party is told when it resumes. A call that ends while a party is held ended, as far as the
        record goes, when that party went away (it never came back, or the server stopped, or the other party
        gave up)."""
        if call.state == "ended":
            return
        self._cancel_timer(call)
        ended_at = utcnow()
        callee_side = call.callee or (call.ringing[0] if call.ringing else None)
        for peer in call.parties():
            peer.call = None
            hold = self._held.pop(peer, None)
            if hold is not None:
                hold.timer.cancel()
                ended_at = min(ended_at, hold.gone_at)
                self._missed_end.add(peer)
        notify = self._connected(notify)
        call.state = "ended"
        log.info("call %s -> %s ended: %s", call.caller.call_id, call.callee_call_id, status)
        if status != "answered":
            self._limits.unanswered(_limit_key(call.caller), call.callee_call_id)
        self._recorder.record(FinishedCall(
            caller_id=call.caller.user_id,
            callee_id=call.callee_user_id,
            caller_call_id=call.caller.call_id or "",
            callee_call_id=call.callee_call_id,
            caller_name=call.caller.display_name,
            callee_name=callee_side.display_name if callee_side else None,
            caller_username=call.caller.username,
            callee_username=call.callee_username,
            caller_principal=call.caller.principal,
            blocked=call.blocked,
            status=status,
            started_at=call.started_at,
            answered_at=call.answered_at,
            ended_at=ended_at,
        ))
        await self._emit_to(notify, "call-ended", {})

    async def _emit_to(self, peers: list[Peer], event: str, payload: dict[str, Any]) -> None:
        """Emit to each of ``peers``; a lone one (the usual case) is awaited directly, sparing gather's task."""
        if len(peers) == 1:
            await self._outbox.emit(peers[0].sid, event, payload)
        elif peers:
            await asyncio.gather(*(self._outbox.emit(p.sid, event, payload) for p in peers))

    async def _no_answer(self, call: Call) -> None:
        if call.state != "ringing":
            return
        await self._end(call, "missed", notify=list(call.ringing))
        await self._outbox.emit(call.caller.sid, "call-error", {"message": f"{call.callee_call_id} did not answer"})

    @staticmethod
    def _cancel_timer(call: Call) -> None:
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None

    def _ring_timed_out(self, call: Call) -> None:
        task = asyncio.get_running_loop().create_task(self._no_answer(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
