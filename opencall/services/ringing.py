"""Limits on placing calls that survive reconnects (docs/api.md "Signaling", Limits).

Counted per caller *identity* — the account, or the anonymous browser's signed id — not per socket, so a
reconnect starts no new budget; per source address (IPv6: per /64, one host's usual share), so a client that
drops its cookie gains nothing either; and per caller and callee, so nobody can keep one person ringing: a
caller's calls to one Call ID that went unanswered (missed, rejected, or refused by a block) are limited to
``rings_per_callee`` in ten minutes — answered calls do not count, so two people who keep calling each other
back are never refused. Each refusal says when to retry.
"""

from __future__ import annotations

import contextlib

from opencall.services.errors import RateLimited
from opencall.services.ratelimit import RateLimiter
from turn.budget import source_key

RING_WINDOW = 600.0  # seconds over which rings_per_callee counts


def _wait(seconds: int) -> str:
    return f"{seconds} s" if seconds < 120 else f"{-(-seconds // 60)} min"


class RingingLimits:
    """The three call limits of ``rate_limits``; 0 turns one off."""

    def __init__(self, calls_per_caller: int, calls_per_ip: int, rings_per_callee: int) -> None:
        self.per_caller = RateLimiter(calls_per_caller)
        self.per_ip = RateLimiter(calls_per_ip)
        self.rings = RateLimiter(rings_per_callee, window=RING_WINDOW)

    def named(self) -> list[tuple[str, RateLimiter]]:
        """The limiters by their config key, for /metrics' refusal counts."""
        return [("calls_per_caller", self.per_caller), ("calls_per_ip", self.per_ip),
                ("rings_per_callee", self.rings)]

    def attempt(self, caller: str, ip: str) -> None:
        """Count a ``call`` attempt (every one, so probing for online Call IDs is bounded too)."""
        for limiter, key in ((self.per_caller, caller), (self.per_ip, source_key(ip))):
            try:
                limiter.hit(key)
            except RateLimited as refused:
                raise RateLimited(f"Too many calls, try again in {_wait(refused.retry_after)}",
                                  refused.retry_after) from None

    def may_ring(self, caller: str, callee_call_id: str) -> None:
        """Refuse a call that would ring ``callee_call_id`` once the caller's unanswered rings reach the limit."""
        try:
            self.rings.check(f"{caller} {callee_call_id}")
        except RateLimited as refused:
            raise RateLimited(f"You called {callee_call_id} too often, try again in {_wait(refused.retry_after)}",
                              refused.retry_after) from None

    def unanswered(self, caller: str, callee_call_id: str) -> None:
        """Count a ring of ``callee_call_id`` that ended without an answer."""
        with contextlib.suppress(RateLimited):  # may_ring let it through, so it is within the limit
            self.rings.hit(f"{caller} {callee_call_id}")
