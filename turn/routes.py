"""The hot paths' view of the allocations: a :class:`Route` per allocation, keyed by :func:`route_key`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from turn.allocation import Address, Allocation, FiveTuple
from turn.relay import PeerSocket


def route_key(five_tuple: FiveTuple) -> Any:
    """The key of ``TurnServer.routes``: the client address for UDP, the whole 5-tuple for TCP and TLS."""
    return five_tuple[2] if five_tuple[0] == "udp" else five_tuple


class Route:
    """What the hot paths need of one allocation: its live channels, permissions and relay socket; and the
    token bucket of its messages that miss them (``allocation_input_rate`` and ``_burst``)."""

    __slots__ = ("connect", "links", "permissions", "spent_at", "to_peer", "tokens")

    def __init__(self, allocation: Allocation, relay: PeerSocket) -> None:
        self.to_peer = allocation.to_peer  # the allocation's own dicts, kept current by it
        self.permissions = allocation.permissions
        self.links = relay.links  # peer -> how to send to it, once it was sent to
        self.connect = relay.link  # how to send to a peer, made on first use
        self.tokens = 0.0
        self.spent_at = float("-inf")  # never spent: the bucket refills to its burst on the first spend

    def link(self, peer: Address) -> Callable[[bytes | memoryview], object]:
        """How to send to ``peer`` (turn.relay.PeerSocket.link); what it returns raises OSError when the kernel
        refuses a datagram."""
        send = self.links.get(peer)
        return send if send is not None else self.connect(peer)

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
