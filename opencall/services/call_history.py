"""A user's call history, read from the calls table that signaling writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.expressions import Q

from opencall.db.models import Call, User

HISTORY_LIMIT = 50


@dataclass(frozen=True)
class CallRecord:
    direction: str  # "outgoing" | "incoming"
    peer: str
    peer_username: str | None  # the account the other party was signed in to; None: only its typed name
    peer_call_id: str
    status: str  # "answered" | "rejected" | "missed"
    started_at: datetime
    duration_seconds: int | None


def _peer(name: str | None, user: User | None, call_id: str) -> str:
    """The other party as api.md names them: display name, else username, else Call ID."""
    return name or (user.username if user else None) or call_id


async def recent_calls(user: User) -> list[CallRecord]:
    """The user's newest calls, up to 50, newest first; calls the user's blocks refused are the caller's only."""
    calls = (
        await Call.filter(Q(caller_id=user.id) | Q(callee_id=user.id, blocked=False), ended_at__not_isnull=True)
        .order_by("-started_at", "-id")
        .limit(HISTORY_LIMIT)
        .prefetch_related("caller", "callee")
    )
    records = []
    for call in calls:
        outgoing = call.caller_id == user.id
        peer = (_peer(call.callee_name, call.callee, call.callee_call_id) if outgoing
                else _peer(call.caller_name, call.caller, call.caller_call_id))
        peer_username = call.callee_username if outgoing else call.caller_username
        peer_call_id = call.callee_call_id if outgoing else call.caller_call_id
        duration = None
        if call.status == "answered" and call.answered_at and call.ended_at:
            duration = int((call.ended_at - call.answered_at).total_seconds())
        records.append(CallRecord("outgoing" if outgoing else "incoming", peer, peer_username, peer_call_id,
                                  call.status, call.started_at, duration))
    return records
