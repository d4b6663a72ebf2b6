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
    status: str  # "answered" | "rejected" | "missed"
    started_at: datetime
    duration_seconds: int | None


def _peer(name: str | None, user: User | None, call_id: str) -> str:
    """The other party as api.md names them: display name, else username, else Call ID."""
    return name or (user.username if user else None) or call_id


async def recent_calls(user: User) -> list[CallRecord]:
    """The user's newest calls, up to 50, newest first."""
    calls = (
        await Call.filter(Q(caller_id=user.id) | Q(callee_id=user.id), ended_at__not_isnull=True)
        .order_by("-started_at", "-id")
        .limit(HISTORY_LIMIT)
        .prefetch_related("caller", "callee")
    )
    records = []
    for call in calls:
        outgoing = call.caller_id == user.id
        peer = (_peer(call.callee_name, call.callee, call.callee_call_id) if outgoing
                else _peer(call.caller_name, call.caller, call.caller_call_id))
        duration = None
        if call.status == "answered" and call.answered_at and call.ended_at:
            duration = int((call.ended_at - call.answered_at).total_seconds())
        records.append(CallRecord("outgoing" if outgoing else "incoming", peer, call.status,
                                  call.started_at, duration))
    return records
