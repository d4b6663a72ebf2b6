"""One record, one line: untrusted text in a log message is escaped (opencall.logging_setup), on its own and on a real
server (client-log lines and contact subjects are in tests/api/test_client_log.py and tests/api/test_contact.py)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import sys
import time
from typing import Any
from urllib.parse import quote

import pytest
import socketio

from opencall.logging_setup import CONTINUATION, FORMAT, OneLineFormatter, escape
from tests.support import Server

FORGED = "2026-01-01 00:00:00,000 INFO opencall: forged"


@pytest.mark.parametrize(("text", "shown"), [
    ("a\nb", "a\\nb"), ("a\r\nb", "a\\r\\nb"), ("tab\there", "tab\\there"),
    ("\x00\x07\x08\x0b\x0c", "\\x00\\x07\\x08\\x0b\\x0c"), ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
    ("\x1c\x1d\x1e\x1f", "\\x1c\\x1d\\x1e\\x1f"), ("del\x7f", "del\\x7f"),
    ("\x85next line", "\\x85next line"), ("\x9b31m", "\\x9b31m"), ("\u2028\u2029", "\\u2028\\u2029"),
    ("\u202ebidi\u202c", "\\u202ebidi\\u202c"), ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),
    ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"), ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
])
def test_control_characters_become_visible_escapes(text: str, shown: str) -> None:
    assert escape(text) == shown
    assert escape(shown) == shown  # idempotent: escaping twice changes nothing
    assert escape(text).isprintable() and escape(text).isascii()


@pytest.mark.parametrize("text", [
    "plain ASCII [CLIENT bob] 100% \\n", "Zoë, Łódź, 日本語, مرحبا",
    "family \U0001F468\u200d\U0001F469\u200d\U0001F467", "non\u00a0breaking", "",
])
def test_printable_text_and_joiners_are_kept_as_they_are(text: str) -> None:
    assert escape(text) == text


def _format(record: logging.LogRecord) -> str:
    return OneLineFormatter(FORMAT).format(record)


def test_a_record_is_one_line_whatever_its_arguments_hold() -> None:
    record = logging.LogRecord("opencall.contact", logging.INFO, __file__, 1, "contact from %s: %s",
                               ("a@example.com", f"hi\n{FORGED}\x1b[2J"), None)
    text = _format(record)
    assert "\n" not in text and "\x1b" not in text
    assert text.endswith(f"opencall.contact: contact from a@example.com: hi\\n{FORGED}\\x1b[2J")


def test_a_traceback_keeps_its_lines_and_cannot_forge_a_record() -> None:
    try:
        raise ValueError(f"bad input\n{FORGED}\x1b[31m")
    except ValueError:
        record = logging.LogRecord("opencall.api", logging.ERROR, __file__, 1, "unhandled error on %s",
                                   (f"/x\n{FORGED}",), sys.exc_info())
    head, *rest = _format(record).split("\n")
    assert head.endswith(f"opencall.api: unhandled error on /x\\n{FORGED}")
    assert rest[0] == f"{CONTINUATION}Traceback (most recent call last):"
    assert all(line.startswith(CONTINUATION) for line in rest)
    assert rest[-2:] == [f"{CONTINUATION}ValueError: bad input", f"{CONTINUATION}{FORGED}\\x1b[31m"]


async def _registered(server: Server, display_name: str) -> tuple[socketio.AsyncClient, dict[str, Any]]:
    """A socket registered with ``display_name``, and the events it receives (the last payload by name)."""
    client = socketio.AsyncClient()
    received: dict[str, Any] = {}
    arrived = asyncio.Event()

    async def record(event: str, payload: Any = None) -> None:
        received[event] = payload
        arrived.set()

    client.on("*", record)
    await client.connect(server.base_url, transports=["websocket"])
    await client.emit("register", {"displayName": display_name})
    async with asyncio.timeout(5):
        while "registered" not in received:
            arrived.clear()
            await arrived.wait()
    return client, received


async def test_a_display_name_over_socketio_cannot_forge_log_lines(server: Server) -> None:
    name = f"M\n{FORGED}\x1b[2J"
    caller, _ = await _registered(server, name)
    callee, heard = await _registered(server, name)
    try:
        target = heard["registered"]["callId"]
        await caller.emit("call", {"targetCallId": target, "offer": {"type": "offer", "sdp": "v=0\r\n"}})
        async with asyncio.timeout(5):
            while "incoming-call" not in heard:
                await asyncio.sleep(0.05)
        assert heard["incoming-call"]["callerDisplayName"].startswith("M\n")  # the callee sees the name as sent
    finally:
        for client in (caller, callee):
            await client.eio.disconnect(abort=True)
    lines = server.log_file.read_text(encoding="utf-8").splitlines()  # splitlines: every Unicode line break
    assert any(f"-> {target} ringing" in line for line in lines)
    assert not any(line.startswith(FORGED) or "\x1b" in line for line in lines)


def _send_raw(server: Server, request: bytes) -> bytes:
    """Send ``request`` as it is (httpx would refuse or quote it) and return the status line, if any."""
    with socket.create_connection(("127.0.0.1", server.config["server"]["port"]), timeout=5) as sock:
        sock.sendall(request)
        try:
            return sock.recv(4096).split(b"\r\n", 1)[0]
        except TimeoutError:
            return b""


def test_what_sanic_and_engineio_quote_from_a_request_stays_one_line(server: Server) -> None:
    marker = secrets.token_hex(4)
    # A control character in the request line: Sanic logs the URL (it used to add a 40-line traceback).
    _send_raw(server, f"GET /{marker}\x1b[2J\x85 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    # Engine.IO quotes the session id of the query string, percent-decoded, in its "Invalid session" line.
    status = _send_raw(server, f"GET /socket.io/?EIO=4&transport=polling&sid={marker}%0A{quote(FORGED)}%1B[2J "
                               "HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert status.startswith(b"HTTP/1.1 400"), status
    time.sleep(0.2)
    lines = server.log_file.read_text(encoding="utf-8").splitlines()
    quoted = [line for line in lines if marker in line]
    assert len(quoted) == 2, quoted
    assert quoted[0].endswith(f"malformed request: Bad URL: /{marker}\\x1b[2J\\xc2\\x85"), quoted
    assert f"{marker}\\n{FORGED}\\x1b[2J" in quoted[1], quoted
    assert not any(line.startswith(FORGED) or "\x1b" in line for line in lines)
    assert "protocol.connection_task uncaught" not in "\n".join(lines)
