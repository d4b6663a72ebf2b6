"""Per-source token buckets, and the budget of STUN/TURN messages from sources that hold no allocation.

The input budget is spent before decoding: decoding is the relay's costliest step for input it does not know
yet, so a source must have budget left before its message is even read (issue 12). Sources are IPv4
addresses, and IPv6 /64 prefixes: one host usually holds a whole /64 (RFC 7421), so counting its addresses one
by one would give it 2^64 budgets.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable


def source_key(host: str) -> str:
    """The budget key of a client address: the IPv4 address itself, or the /64 prefix of an IPv6 one."""
    if ":" not in host:
        return host
    try:
        return ipaddress.IPv6Address(host.split("%", 1)[0]).packed[:8].hex()
    except ValueError:
        return host


class TokenBuckets:
    """A token bucket per key (a client's IP address, a source): ``rate`` per second, up to ``burst`` at once.

    The relay's two per-source limits use it: unauthenticated UDP replies per client IP
    (``unauthenticated_rate``) and :class:`InputBudget`.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 65536,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys  # spoofed sources must not grow the table without bound
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, time of last update)

    def allow(self, key: str) -> bool:
        """Take one token from ``key``'s bucket; False when it is empty."""
        now = self.clock()
        tokens, then = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            self.prune()
            if len(self._buckets) >= self.max_keys:
                return False
        self._buckets[key] = (tokens - 1, now)
        return True

    def prune(self) -> None:
        """Forget the buckets that have refilled: they behave exactly like absent ones."""
        now = self.clock()
        full = [
            key
            for key, (tokens, then) in self._buckets.items()
            if tokens + (now - then) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]


class InputBudget:
    """A token bucket per source: ``rate`` messages a second, ``burst`` at once."""

    def __init__(self, rate: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets = TokenBuckets(rate, burst, clock)

    def allow(self, host: str) -> bool:
        """Spend one message of ``host``'s budget; False when none is left."""
        return self._buckets.allow(source_key(host))

    def prune(self) -> None:
        """Forget the sources whose budget has refilled."""
        self._buckets.prune()
