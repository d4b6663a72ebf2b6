"""Logging: one size-rotated file for server events, its ``client.log`` companion for browser lines, and stderr
for journald. Every record is written as one line whatever its text holds (:func:`escape`)."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from sanic.exceptions import BadRequest

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_BYTES, BACKUPS = 10 * 1024 * 1024, 5
CLIENT_LOGGER = "opencall.client"
CLIENT_LOG_NAME = "client.log"
CONTINUATION = "  | "  # starts each line of a traceback, so that only a record's first line starts at column 0

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
# What a log line must not carry as it is: C0 controls, DEL and C1 controls (line breaks, terminal escape
# sequences), U+2028/U+2029 (line and paragraph separators), the bidirectional marks and overrides that reorder
# what a viewer shows (ALM, LRM, RLM, U+202A-U+202E, U+2066-U+2069: "Trojan Source", CVE-2021-42574) and lone
# surrogates (a JSON string may hold one; UTF-8 cannot encode it, which would lose the record).
_ESCAPED = (*range(0x20), *range(0x7F, 0xA0), 0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F),
            *range(0x2066, 0x206A), *range(0xD800, 0xE000))
_TABLE = {code: _NAMED.get(chr(code)) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
          for code in _ESCAPED}


def escape(text: str) -> str:
    """``text`` with every character that could break a log line, drive a terminal or reorder what a viewer
    shows replaced by a visible escape (``\\n``, ``\\x1b``, ``\\u202e``); idempotent. Backslashes are kept as
    they are, so the escapes are for reading, not for decoding."""
    if text.isascii() and text.isprintable():
        return text
    return text.translate(_TABLE)


class OneLineFormatter(logging.Formatter):
    """A Formatter whose records are one line each: the message is escaped (whatever its arguments held), and a
    traceback or stack that follows it has each of its lines escaped and prefixed with :data:`CONTINUATION`."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return _continuation(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _continuation(super().formatStack(stack_info))


def _continuation(text: str) -> str:
    return "\n".join(CONTINUATION + escape(line) for line in text.split("\n"))


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


def client_log_path(log_file: Path) -> Path:
    """Where browser lines go: ``client.log`` in the folder of ``log_file``."""
    return log_file.with_name(CLIENT_LOG_NAME)


def setup_logging(log_file: Path, level: str, client_max_bytes: int, client_backups: int) -> None:
    """Route the root logger (and Sanic's) to ``log_file`` and stderr at ``level``, and the browsers' lines
    (logger ``opencall.client``, at INFO) to their own rotating file only (:func:`client_log_path`), so that they
    can never rotate server lines away nor fill the journal."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    formatter = OneLineFormatter(FORMAT)
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
    client_handler = RotatingLogFile(client_log_path(log_file), maxBytes=client_max_bytes,
                                     backupCount=client_backups, encoding="utf-8")
    client_handler.setFormatter(formatter)
    client = logging.getLogger(CLIENT_LOGGER)
    client.handlers[:] = [client_handler]
    client.propagate = False
    client.setLevel(logging.INFO)  # whatever log_level: the budget counts what is written, and a browser ships no DEBUG
    for name in ("sanic.root", "sanic.error", "sanic.access", "sanic.server", "sanic.websockets"):
        sanic_logger = logging.getLogger(name)
        sanic_logger.handlers.clear()
        sanic_logger.propagate = True
    logging.getLogger("sanic.access").filters[:] = [_access_text]
    logging.getLogger("sanic.error").filters[:] = [_unparsable_request]
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


def _unparsable_request(record: logging.LogRecord) -> bool:
    """Sanic logs a request line it cannot parse (a control character in the URL) as an uncaught error with a
    40-line traceback, one per request any stranger can send; keep one line saying what the client sent."""
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, BadRequest):
        record.msg, record.args = "connection closed on a malformed request: %s", (error,)
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
    return True
