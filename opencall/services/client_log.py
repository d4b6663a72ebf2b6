"""Browser log lines, each tagged ``[CLIENT <who>]``, written to the client log within a global byte budget."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from opencall.logging_setup import CLIENT_LOGGER, escape
from opencall.services.errors import InvalidInput

log = logging.getLogger(CLIENT_LOGGER)  # client.log only (opencall.logging_setup.setup_logging)
notices = logging.getLogger("opencall.logs")  # the server log

MAX_LINES, MAX_LINE_LENGTH = 200, 2000
LINE_OVERHEAD = len("2026-06-16 09:00:00,000 INFO opencall.client: \n")  # what the formatter adds to a line
NOTICE_EVERY = 60.0  # seconds between two "budget exhausted" notices


def parse_lines(body: Any) -> list[str]:
    """The ``lines`` field: a non-empty list of strings, at most 200, each cut to 2000 characters."""
    lines = body.get("lines") if isinstance(body, dict) else None
    if not isinstance(lines, list) or not lines or not all(isinstance(line, str) for line in lines):
        raise InvalidInput("lines[] required")
    if len(lines) > MAX_LINES:
        raise InvalidInput(f"at most {MAX_LINES} lines per request")
    return [line[:MAX_LINE_LENGTH] for line in lines]


class ClientLog:
    """Writes browser lines to the client log, ``bytes_per_minute`` for all clients together.

    The budget is a bucket of one minute's bytes that refills continuously: a quiet box takes a burst of a
    minute's worth at once, a flood gets the budget on average. A line that does not fit is dropped with the
    rest of its request (the written lines are always the first ones), counted for /metrics, and noted in the
    server log and the client log at most once a minute.
    """

    def __init__(self, bytes_per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.bytes_per_minute = bytes_per_minute
        self._clock = clock
        self._available = float(bytes_per_minute)
        self._stamp = clock()
        self._noticed: float | None = None
        self.written_lines = self.written_bytes = self.dropped_lines = self.dropped_bytes = 0

    def record(self, who: str, lines: list[str]) -> int:
        """Write the lines as ``[CLIENT who] line`` while the budget lasts; returns how many were written."""
        self._refill()
        texts = [f"[CLIENT {escape(who)}] {escape(line)}" for line in lines]
        sizes = [len(text.encode()) + LINE_OVERHEAD for text in texts]
        written = 0
        for text, size in zip(texts, sizes, strict=True):
            if size > self._available:
                break
            self._available -= size
            log.info("%s", text)
            written += 1
        self.written_lines += written
        self.written_bytes += sum(sizes[:written])
        if written < len(texts):
            self.dropped_lines += len(texts) - written
            self.dropped_bytes += sum(sizes[written:])
            self._notice()
        return written

    def counters(self) -> dict[str, int]:
        """Lines and bytes written and dropped since start, for /metrics (grouped by unit, as it lists them)."""
        return {"written_lines": self.written_lines, "dropped_lines": self.dropped_lines,
                "written_bytes": self.written_bytes, "dropped_bytes": self.dropped_bytes}

    def _refill(self) -> None:
        now = self._clock()
        self._available = min(float(self.bytes_per_minute),
                              self._available + (now - self._stamp) * self.bytes_per_minute / 60)
        self._stamp = now

    def _notice(self) -> None:
        now = self._clock()
        if self._noticed is not None and now - self._noticed < NOTICE_EVERY:
            return
        self._noticed = now
        text = (f"client-log budget of {self.bytes_per_minute} bytes/min (all clients) exhausted: client lines "
                f"are dropped until it refills ({self.dropped_lines} dropped since start)")
        notices.warning("%s", text)
        log.warning("%s", text)
