"""Logging: one size-rotated file for server events and client lines, plus stderr for journald."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_BYTES, BACKUPS = 10 * 1024 * 1024, 5


class RotatingLogFile(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler that reads the file's size from its own stream.

    The standard one stats the path twice, seeks, and formats every record a second time before writing it, to
    decide whether to roll over first; this rolls over once the file has reached ``maxBytes``, so a file may
    end up to one line longer. It matters on the signaling path, which logs three lines per call.
    """

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if self.stream is None:
            self.stream = self._open()
        return 0 < self.maxBytes <= self.stream.tell()


def setup_logging(log_file: Path, level: str) -> None:
    """Route the root logger (and Sanic's) to ``log_file`` and stderr at ``level``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter(FORMAT)
    file_handler = RotatingLogFile(
        log_file, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
    )
    stderr_handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in (file_handler, stderr_handler):
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("sanic.root", "sanic.error", "sanic.access", "sanic.server", "sanic.websockets"):
        sanic_logger = logging.getLogger(name)
        sanic_logger.handlers.clear()
        sanic_logger.propagate = True
    logging.getLogger("sanic.access").filters[:] = [_access_text]
    # Tortoise logs every SQL statement with its parameters (password hashes, key hashes) at debug.
    logging.getLogger("tortoise").setLevel(max(logging.INFO, root.level))
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, root.level))


def _access_text(record: logging.LogRecord) -> bool:
    """Sanic's access lines carry their text in extra fields; make it the message."""
    fields = record.__dict__
    record.msg = f"{fields.get('host', '-')} {fields.get('request', '-')} {fields.get('status', '-')} " \
                 f"{fields.get('byte', '-')}{fields.get('duration', '')}"
    record.args = ()
    return True
