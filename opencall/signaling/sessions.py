"""The sessions of the sockets behind the call service: flood control, session resume and revocation.

Session resume (docs/api.md "Session resume"): a socket that registers with the ``resume`` token of another
socket of the same identity takes its place — Call ID, name, and its seat in a ringing or active call. A socket
that goes away during an active call leaves its seat *held* for the resume grace instead of ending the call, so a
phone whose network changed can come back. Revocation: a socket whose credential stopped working (logout, a
rotated key, a reset password, a removed account) is ended and cannot be resumed.

:class:`~opencall.signaling.calls.CallService` extends this with the calls themselves; ``_end`` is its.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from opencall.services.clock import utcnow
from opencall.services.ratelimit import TokenBucket
from opencall.signaling.live import Hold, LiveCall, Outbox, Peer
from opencall.signaling.payloads import CallError
from opencall.signaling.registry import Registry
from opencall.signaling.resume import ResumeTokens

log = logging.getLogger("opencall.signaling")

# Per-socket budget for all events: bursts of 200 (a call's trickled candidates), 50 per second sustained.
EVENT_BURST, EVENT_RATE = 200, 50.0


class SocketSessions:
    """Connected sockets, their event budgets, resume tokens and held seats."""

    def __init__(self, registry: Registry, outbox: Outbox, resume_grace: float) -> None:
        self.registry = registry
        self._outbox = outbox
        self._buckets: dict[str, TokenBucket] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._resume_grace = resume_grace
        self._tokens = ResumeTokens(resume_grace)
        self._held: dict[Peer, Hold] = {}
        # Sessions whose call ended while their socket was away: a resume tells them with call-ended.
        self._missed_end: weakref.WeakSet[Peer] = weakref.WeakSet()

    async def _end(self, call: LiveCall, status: str, notify: list[Peer]) -> None:
        raise NotImplementedError  # the call service's

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

    async def key_rotated(self, user_id: int) -> None:
        """Disconnect the sockets of ``user_id`` that authenticated with an API key (now invalid); their calls
        end at once and their sessions cannot be resumed."""
        await self.revoke([peer for peer in self.credentialed()
                           if peer.user_id == user_id and peer.api_key_hash is not None], "its API key was rotated")

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

    def _hold(self, peer: Peer, call: LiveCall) -> None:
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

    @staticmethod
    def _call_of(peer: Peer) -> LiveCall | None:
        call = peer.call
        return call if call is not None and call.state != "ended" else None

    async def _emit_to(self, peers: list[Peer], event: str, payload: dict[str, Any]) -> None:
        """Emit to each of ``peers``; a lone one (the usual case) is awaited directly, sparing gather's task."""
        if len(peers) == 1:
            await self._outbox.emit(peers[0].sid, event, payload)
        elif peers:
            await asyncio.gather(*(self._outbox.emit(p.sid, event, payload) for p in peers))

