"""The per-source budget of STUN/TURN messages from sources that hold no allocation, spent before decoding.

Decoding is the relay's costliest step for input it does not know yet, so a source must have budget left
before its message is even read (issue 12). Sources are IPv4 addresses, and IPv6 /64 prefixes: one host
usually holds a whole /64 (RFC 7421), so counting its addresses one by one would give it 2^64 budgets.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

from turn.policy import RateLimiter


def source_key(host: str) -> str:
    """The budget key of a client address: the IPv4 address itself, or the /64 prefix of an IPv6 one."""
    if ":" not in host:
        return host
    try:
        return ipaddress.IPv6Address(host.split("%", 1)[0]).packed[:8].hex()
    except ValueError:
        return host


class InputBudget:
    """A token bucket per source: ``rate`` messages a second, ``burst`` at once."""

    def __init__(self, rate: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._limiter = RateLimiter(rate, burst, clock)

    def allow(self, host: str) -> bool:
        """Spend one message of ``host``'s budget; False when none is left."""
        return self._limiter.allow(source_key(host))

    def prune(self) -> None:
        """Forget the sources whose budget has refilled."""
        self._limiter.prune()
