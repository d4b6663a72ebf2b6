"""Per-key sliding-window rate limits ("N per minute", or per another window), kept in memory."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from opencall.services.errors import RateLimited

WINDOW = 60.0
SWEEP_EVERY = 1024  # hits between sweeps of idle keys, so memory stays bounded by active clients


class RateLimiter:
    """Allows ``per_minute`` events per key in any ``window``-second window (60); 0 allows everything."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic, window: float = WINDOW) -> None:
        self.per_minute = per_minute
        self.window = window
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._hits = 0
        self.refused = 0  # events refused since start, for /metrics

    def _window(self, key: str, now: float) -> deque[float]:
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window:
            events.popleft()
        return events

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may act again; 0 when it may act now. Records nothing."""
        if not self.per_minute:
            return 0
        now = self._clock()
        events = self._window(key, now)
        if len(events) < self.per_minute:
            return 0
        return max(1, math.ceil(events[0] + self.window - now))

    def hit(self, key: str) -> None:
        """Record one event for ``key``, or raise RateLimited when the limit is reached."""
        if not self.per_minute:
            return
        wait = self.retry_after(key)
        if wait:
            self.refused += 1
            raise RateLimited("Too many requests, try again later", wait)
        self._events[key].append(self._clock())
        self._hits += 1
        if self._hits % SWEEP_EVERY == 0:
            self._sweep()

    def check(self, key: str) -> None:
        """Raise RateLimited when ``key`` is at its limit, without recording an event."""
        wait = self.retry_after(key)
        if wait:
            self.refused += 1
            raise RateLimited("Too many requests, try again later", wait)

    def forget(self, key: str) -> None:
        """Drop the history of ``key`` (a connection that went away)."""
        self._events.pop(key, None)

    def _sweep(self) -> None:
        now = self._clock()
        for key in [k for k, events in self._events.items() if not events or events[-1] <= now - self.window]:
            del self._events[key]


class TokenBucket:
    """``rate`` events per second with bursts of ``burst``; for flood control of one connection."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst = rate, burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._dropping = False

    def take(self) -> bool:
        """Spend one token; False when the bucket is empty."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            self._dropping = False
            return True
        return False

    def first_drop(self) -> bool:
        """True for the first refused event of a run of refusals (to log floods once)."""
        first = not self._dropping
        self._dropping = True
        return first
