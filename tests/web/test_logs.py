"""Client log shipping: lines reach the server's client.log, tagged with who sent them, on the 10-second
timer and through sendBeacon when the page goes away."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.support import Server
from tests.web.helpers import register_in_ui, unique, wait_for


def client_log(server: Server) -> Path:
    """client.log, where the browsers' lines go, beside the server's log_file (docs/configuration.md)."""
    return server.log_file.with_name("client.log")


def log_lines(server: Server, marker: str) -> list[str]:
    text = client_log(server).read_text(encoding="utf-8", errors="replace") if client_log(server).exists() else ""
    return [line for line in text.splitlines() if marker in line]


def test_logs_ship_every_ten_seconds_and_on_pagehide(open_tab, server: Server) -> None:
    anon = open_tab("/", size="phone")
    anon.call_id()
    timed = f"timer-{secrets.token_hex(4)}"
    anon.js("(marker) => window.opencall.log.info('e2e', marker)", timed)
    lines = wait_for(lambda: log_lines(server, timed), timeout=13, what="the timed flush")
    assert len(lines) == 1 and "[CLIENT anon-" in lines[0] and f"[INFO] [e2e] {timed}" in lines[0], lines

    name = unique("lee")
    member = open_tab("/", size="desktop")
    register_in_ui(member, name)
    beacon = f"beacon-{secrets.token_hex(4)}"
    member.js("(marker) => window.opencall.log.warn('e2e', marker)", beacon)
    member.page.goto("about:blank")  # pagehide: the buffer leaves with sendBeacon
    lines = wait_for(lambda: log_lines(server, beacon), timeout=5, what="the beacon")
    assert f"[CLIENT {name}]" in lines[0] and f"[WARN] [e2e] {beacon}" in lines[0], lines
    # The app's own lines travel the same way: the sign-up's socket reconnect was logged too.
    assert any(f"[CLIENT {name}]" in line and "[signaling] registered as" in line
               for line in client_log(server).read_text().splitlines())
