"""The call state machine (ringing → active → ended) behind the Socket.IO events of api.md.

It knows nothing of Socket.IO: it talks to sockets through an :class:`~opencall.signaling.live.Outbox` and
raises :class:`~opencall.signaling.payloads.CallError` for the sender's ``call-error``. Messages between the two
parties are relayed only while they share a ringing or active call (``renegotiate``: an active one); anything else
is dropped and logged.

A socket that goes away during an active call leaves its seat *held* for a resume (signaling/sessions.py).

The addresses each party announces in its offer, answer, renegotiations and candidates are kept on its socket
(``Peer.announced``) before they are passed on: the relay lets the other party reach them (relay/policy.py).

Who may ring whom: ``call`` attempts are limited per caller identity, per source address and per callee
(services/ringing.py), and a callee's blocks (services/blocks.py) turn a call into one that rings nobody: the
caller hears "did not answer" after ``ring_timeout`` as for a real miss, and only the caller's history lists it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from opencall.services.call_records import CallRecorder, FinishedCall
from opencall.services.callids import is_assigned, new_call_id
from opencall.services.clock import utcnow
from opencall.services.ringing import RingingLimits
from opencall.signaling import payloads
from opencall.signaling.live import LiveCall, Outbox, Peer, Refusal
from opencall.signaling.payloads import CallError
from opencall.signaling.registry import Registry
from opencall.signaling.sessions import SocketSessions

log = logging.getLogger("opencall.signaling")


def _limit_key(peer: Peer) -> str:
    """Whom the call limits count: the account or anonymous browser, else (no cookie at all) the address."""
    return peer.principal or f"address {peer.ip}"


class CallService(SocketSessions):
    """Registration and calls for every connected socket of this process (its sockets' sessions, resumes and
    revocations: :class:`~opencall.signaling.sessions.SocketSessions`)."""

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
        super().__init__(registry, outbox, resume_grace)
        self._recorder = recorder
        self._ring_timeout = ring_timeout
        self._limits = limits
        self._refuses = refuses
        self._permanent_call_id = permanent_call_id

    @property
    def limits(self) -> RingingLimits:
        """The call limits (read by /metrics for their refusals)."""
        return self._limits

    # -- connections -------------------------------------------------------------------------------

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

    # -- events --------------------------------------------------------------------------------------

    async def register(self, sid: str, data: Any) -> None:
        """``registered``; on the socket's first register also ``session`` (its resume token), or, with a
        valid ``resume`` token, the takeover of that session (:meth:`_resume`)."""
        peer = self._peer(sid)
        body = payloads.payload(data)
        name = payloads.display_name(body.get("displayName"))
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
        peer.display_name = payloads.display_name(payloads.payload(data).get("displayName"))

    async def place(self, sid: str, data: Any) -> None:
        """``call``: ring every socket of the target Call ID, or tell the caller why not. A call the callee
        refuses (blocks.py) rings nobody and ends as "did not answer", like a real miss."""
        caller = self._registered(sid)
        body = payloads.payload(data)
        target = payloads.target(body, malformed="is not online")  # api.md: a mistyped Call ID is "not online"
        offer = payloads.description(body, "offer")
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
        call = LiveCall(caller=caller, callee_call_id=target, ringing=[] if blocked else list(callees),
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
        body = payloads.payload(data)
        target = payloads.target(body)
        answer = payloads.description(body, "answer")
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
        call = self._call_with(peer, payloads.target(payloads.payload(data)), "reject")
        if call is None or call.state != "ringing" or peer is call.caller:
            return
        await self._end(call, "rejected", notify=[p for p in call.ringing if p is not peer])
        await self._outbox.emit(call.caller.sid, "call-rejected", {})

    async def hangup(self, sid: str, data: Any) -> None:
        peer = self._registered(sid)
        call = self._call_with(peer, payloads.target(payloads.payload(data)), "hangup")
        if call is None:
            return
        if call.state == "ringing" and peer is not call.caller:
            await self.reject(sid, data)  # hanging up a call you never answered declines it
            return
        status = "answered" if call.state == "active" else "missed"
        await self._end(call, status, notify=[p for p in call.parties() if p is not peer])

    async def relay_candidate(self, sid: str, data: Any) -> None:
        peer = self._registered(sid)
        body = payloads.payload(data)
        target = payloads.target(body)
        if "candidate" in body and body["candidate"] is None:
            return  # a browser's end-of-candidates (onicecandidate fires with null): nothing to relay
        candidate = payloads.candidate(body)
        call = self._call_with(peer, target, "ice-candidate")
        if call is None:
            return
        peer.announced.candidate(candidate["candidate"])
        payload = {"candidate": candidate}
        await self._emit_to(call.other_side(peer), "ice-candidate", payload)

    async def renegotiate(self, sid: str, data: Any) -> None:
        """A new offer or answer during an active call (an ICE restart), relayed to the other party."""
        peer = self._registered(sid)
        body = payloads.payload(data)
        target = payloads.target(body)
        description = payloads.description(body, "description", "offer", "answer")
        call = self._call_with(peer, target, "renegotiate", active=True)
        if call is None:
            return
        peer.announced.description(description["sdp"])  # an ICE restart replaces the addresses
        await self._emit_to(call.other_side(peer), "renegotiate", {"description": description})

    # -- internals -------------------------------------------------------------------------------------

    async def _fresh_call_id(self) -> str:
        """A throwaway Call ID that no live socket or held call uses and no account owns."""
        while True:
            call_id = new_call_id()
            if (not self.registry.sockets_of(call_id) and not any(p.call_id == call_id for p in self._held)
                    and not await is_assigned(call_id)):
                return call_id

    def _busy(self, call_id: str) -> bool:
        """In a ringing or active call, on a connected socket or on a held one (its other tabs are busy too)."""
        return (any(self._call_of(peer) for peer in self.registry.sockets_of(call_id))
                or any(peer.call_id == call_id and self._call_of(peer) for peer in self._held))

    def _call_with(self, peer: Peer, target: str, event: str, *, active: bool = False) -> LiveCall | None:
        """The live (with ``active``: answered) call between ``peer`` and ``target``, or None (the event is
        dropped and logged)."""
        call = self._call_of(peer)
        if call is None or call.other_call_id(peer) != target or (active and call.state != "active"):
            log.warning("dropped %s from %s (%s) to %s: no %scall between them", event, peer.sid, peer.call_id,
                        target, "active " if active else "")
            return None
        return call

    async def _end(self, call: LiveCall, status: str, notify: list[Peer]) -> None:
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

    async def _no_answer(self, call: LiveCall) -> None:
        if call.state != "ringing":
            return
        await self._end(call, "missed", notify=list(call.ringing))
        await self._outbox.emit(call.caller.sid, "call-error", {"message": f"{call.callee_call_id} did not answer"})

    @staticmethod
    def _cancel_timer(call: LiveCall) -> None:
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None

    def _ring_timed_out(self, call: LiveCall) -> None:
        task = asyncio.get_running_loop().create_task(self._no_answer(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
