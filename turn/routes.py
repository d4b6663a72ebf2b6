"""The hot paths' view of the allocations: a :class:`Route` per allocation, keyed by :func:`route_key`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from turn.allocation import Address, Allocation, FiveTuple


def route_key(five_tuple: FiveTuple) -> Any:
    """The key of ``TurnServer.routes``: the client address for UDP, the whole 5-tuple for TCP and TLS."""
    return five_tuple[2] if five_tuple[0] == "udp" else five_tuple


class Route:
    """What the hot paths need of one allocation: its live channels, permissions and relay socket; and the
    token bucket of its messages that miss them (``allocation_input_rate`` and ``_burst``)."""

    __slots__ = ("permissions", "sendto", "spent_at", "to_peer", "tokens")

    def __init__(self, allocation: Allocation, sendto: Callable[[bytes, Address], None]) -> None:
        self.to_peer = allocation.to_peer  # the allocation's own dicts, kept current by it
        self.permissions = allocation.permissions
        self.sendto = sendto
        self.tokens = 0.0
        self.spent_at = float("-inf")  # never spent: the bucket refills to its burst on the first spend

    def available(self, now: float, rate: int, burst: int) -> float:
        """The tokens of this allocation's input budget at ``now``."""
        return min(burst, self.tokens + (now - self.spent_at) * rate)

    def spend(self, now: float, rate: int, burst: int) -> bool:
        """Take one token of this allocation's input budget; False when none is left."""
        tokens = self.available(now, rate, burst)
        self.spent_at = now
        if tokens < 1:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1
        return True
