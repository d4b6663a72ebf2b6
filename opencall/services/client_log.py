"""Browser log lines shipped to the server log file, each tagged ``[CLIENT <who>]``."""

from __future__ import annotations

import logging
from typing import Any

from opencall.services.errors import InvalidInput

log = logging.getLogger("opencall.client")

MAX_LINES, MAX_LINE_LENGTH = 200, 2000


def parse_lines(body: Any) -> list[str]:
    """The ``lines`` field: a non-empty list of strings, at most 200, each cut to 2000 characters."""
    lines = body.get("lines") if isinstance(body, dict) else None
    if not isinstance(lines, list) or not lines or not all(isinstance(line, str) for line in lines):
        raise InvalidInput("lines[] required")
    if len(lines) > MAX_LINES:
        raise InvalidInput(f"at most {MAX_LINES} lines per request")
    return [line[:MAX_LINE_LENGTH] for line in lines]


def record(who: str, lines: list[str]) -> int:
    """Write each line to the log as ``[CLIENT who] line``; control characters cannot forge new lines."""
    for line in lines:
        clean = "".join(ch if ch.isprintable() else " " for ch in line)
        log.info("[CLIENT %s] %s", who, clean)
    return len(lines)
