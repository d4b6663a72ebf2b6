"""What lives while sockets are connected: a socket (:class:`Peer`), a call as the state machine holds it
(ringing → active → ended), and the seat of a party whose socket went away. The records of finished calls are
services/call_records.py's; who is connected, registry.py's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from opencall.services.announced import Announced

# Whether the account ``owner_id`` refuses a call from Call ID ``call_id`` placed by ``principal``, signed in or not.
Refusal = Callable[[int, str, "str | None", bool], Awaitable[bool]]


class Outbox(Protocol):
    """How the state machine reaches sockets."""

    async def emit(self, sid: str, event: str, payload: dict[str, Any]) -> None: ...

    async def disconnect(self, sid: str) -> None: ...


State = Literal["ringing", "active", "ended"]


@dataclass(eq=False)
class Peer:
    """One connected socket. ``call_id`` is set once it has registered."""

    sid: str
    user_id: int | None
    username: str | None
    api_key_hash: str | None  # the key it authenticated with; None for cookie or anonymous sockets
    ip: str
    session_hash: str | None = None  # SHA-256 of the session token it authenticated with (cookie sockets)
    password_stamp: str | None = field(default=None, repr=False)  # the account's password when it authenticated
    principal: str | None = None  # the relay user id of the account or anonymous browser behind it
    call_id: str | None = None
    display_name: str | None = None
    call: LiveCall | None = field(default=None, repr=False)  # the call this socket takes part in
    resume_key: str | None = field(default=None, repr=False)  # SHA-256 of its live resume token
    resumable: bool = True  # False once the server drops it on purpose (its API key was rotated)
    announced: Announced = field(default_factory=Announced, repr=False)  # its addresses in its current call

    @property
    def shown_name(self) -> str | None:
        """The name to show others: the display name, else the account's username."""
        return self.display_name or self.username


@dataclass(eq=False)
class LiveCall:
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
