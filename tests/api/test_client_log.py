"""POST /api/client-log: lines land in client.log beside the server log, tagged [CLIENT <who>], with api.md's limits,
within a byte budget per minute for all clients together, rotated apart from the server's lines."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable

import pytest

from tests.api.helpers import ANON_COOKIE, as_key, cookie_attributes, log_text, set_cookie_header, stderr_text
from tests.support import Server, api_key, register

JSON = {"Content-Type": "application/json"}
ANON_RE = re.compile(r"^anon-[0-9a-f]{12}$")
ANON_COOKIE_RE = re.compile(r"^(anon-[0-9a-f]{12})\.[0-9a-f]{16}$")  # the id and the server's signature


def client_log_text(server: Server) -> str:
    """client.log: the browsers' lines, in the folder of the server's log_file."""
    return server.log_file.with_name("client.log").read_text(encoding="utf-8")


def _logged(server: Server, marker: str) -> list[str]:
    """The lines of client.log that contain ``marker``."""
    return [line for line in client_log_text(server).split("\n") if marker in line]


def test_lines_reach_the_log_tagged_with_the_username(server: Server) -> None:
    client, username = register(server)
    marker = secrets.token_hex(8)
    lines = [f"[2026-06-16T09:00:00.000Z] [ERROR] [webrtc] ICE failed {marker}", f"second {marker}"]
    response = client.post("/api/client-log", json={"lines": lines})
    assert response.status_code == 200
    assert response.json() == {"ok": True, "received": 2}
    logged = _logged(server, marker)
    assert len(logged) == 2
    for line, text in zip(logged, lines, strict=True):
        assert line.endswith(f" opencall.client: [CLIENT {username}] {text}")


def test_lines_sent_with_an_api_key_are_tagged_with_its_user(server: Server) -> None:
    owner, username = register(server)
    marker = secrets.token_hex(8)
    response = server.client().post("/api/client-log", json={"lines": [marker]}, headers=as_key(api_key(owner)))
    assert response.json() == {"ok": True, "received": 1}
    assert _logged(server, marker)[0].endswith(f"[CLIENT {username}] {marker}")


def test_anonymous_lines_share_one_anon_tag_per_browser(server: Server) -> None:
    client = server.client()
    first, second = secrets.token_hex(8), secrets.token_hex(8)
    response = client.post("/api/client-log", json={"lines": [first]})
    assert response.json() == {"ok": True, "received": 1}
    cookie = ANON_COOKIE_RE.match(client.cookies[ANON_COOKIE])
    assert cookie is not None
    anon = cookie.group(1)
    assert {"httponly", "samesite=lax", "path=/"} <= cookie_attributes(set_cookie_header(response, ANON_COOKIE))
    client.post("/api/client-log", json={"lines": [second]})
    assert _logged(server, first)[0].endswith(f"[CLIENT {anon}] {first}")
    assert _logged(server, second)[0].endswith(f"[CLIENT {anon}] {second}")
    other = server.client()
    third = secrets.token_hex(8)
    other.post("/api/client-log", json={"lines": [third]})
    other_anon = other.cookies[ANON_COOKIE].partition(".")[0]
    assert other_anon != anon
    assert f"[CLIENT {other_anon}] {third}" in _logged(server, third)[0]


def test_a_forged_anon_cookie_is_not_used_as_tag(server: Server) -> None:
    marker = secrets.token_hex(8)
    client = server.client(cookies={ANON_COOKIE: "alice] [CLIENT admin"})
    client.post("/api/client-log", json={"lines": [marker]})
    tag = re.search(r"\[CLIENT ([^\]]*)\]", _logged(server, marker)[0])
    assert tag is not None
    assert ANON_RE.match(tag.group(1))
    # A well-formed id without the server's signature, or with another id's, is no id either.
    genuine = server.client()
    genuine.post("/api/client-log", json={"lines": ["-"]})
    for forged in ("anon-0123456789ab", f"anon-0123456789ab.{'0' * 16}",
                   f"anon-0123456789ab.{genuine.cookies[ANON_COOKIE].partition('.')[2]}"):
        marker = secrets.token_hex(8)
        server.client(cookies={ANON_COOKIE: forged}).post("/api/client-log", json={"lines": [marker]})
        assert "anon-0123456789ab" not in _logged(server, marker)[0]


def test_each_line_is_truncated_to_2000_characters(server: Server) -> None:
    client, username = register(server)
    marker = secrets.token_hex(8)
    long_line = marker + "x" * 2500 + "TAIL"
    exact_line = "E" + marker + "y" * (2000 - len(marker) - 1)
    client.post("/api/client-log", json={"lines": [long_line, exact_line]})
    logged = _logged(server, marker)
    assert len(logged) == 2
    assert logged[0].split(f"[CLIENT {username}] ", 1)[1] == long_line[:2000]
    assert logged[1].split(f"[CLIENT {username}] ", 1)[1] == exact_line


def test_200_lines_are_accepted_and_201_refused(server: Server) -> None:
    client, _ = register(server)
    marker = secrets.token_hex(8)
    response = client.post("/api/client-log", json={"lines": [f"{marker} {i}" for i in range(200)]})
    assert response.json() == {"ok": True, "received": 200}
    assert len(_logged(server, marker)) == 200
    refused = secrets.token_hex(8)
    response = client.post("/api/client-log", json={"lines": [f"{refused} {i}" for i in range(201)]})
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert _logged(server, refused) == []


def test_newlines_and_control_characters_cannot_forge_log_lines(server: Server) -> None:
    client, username = register(server)
    marker = secrets.token_hex(8)
    forged = "2026-06-16 09:00:00,000 INFO opencall.accounts: account registered: mallory"
    sent = {"a\n": "a\\n", "b\r\n": "b\\r\\n", "c\r": "c\\r", "d\u2028": "d\\u2028", "e\x85": "e\\x85",
            "f\x1b[2K\x00": "f\\x1b[2K\\x00", "g\u202e": "g\\u202e", "h\ud800": "h\\ud800"}
    lines = [f"{marker} {text}{forged}" for text in sent]
    # json.dumps writes the lone surrogate as the escape \ud800, which httpx's own encoder refuses to send.
    response = client.post("/api/client-log", content=json.dumps({"lines": lines}), headers=JSON)
    assert response.json() == {"ok": True, "received": len(sent)}
    text = client_log_text(server) + log_text(server)
    assert not any(line.startswith(forged) for line in text.splitlines())  # splitlines: every Unicode line break
    assert "\x1b" not in text
    logged = _logged(server, marker)
    assert [line.split(f"[CLIENT {username}] ", 1)[1] for line in logged] == [
        f"{marker} {shown}{forged}" for shown in sent.values()]
    assert all(line.isprintable() for line in logged)


@pytest.mark.parametrize("body", [
    {}, {"lines": "just a string"}, {"lines": []}, {"lines": [1, 2]}, {"lines": ["ok", None]},
    {"lines": None}, {"line": ["typo"]}, ["a list"], "a string", 7,
])
def test_missing_or_invalid_lines_is_400(server: Server, body: object) -> None:
    response = server.client().post("/api/client-log", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": "lines[] required"}


BUDGET = 16 * 1024  # the smallest client_log.bytes_per_minute
NOTICE = f"client-log budget of {BUDGET} bytes/min (all clients) exhausted"


def _metric(text: str, name: str, outcome: str) -> int:
    found = re.search(rf'^{name}{{outcome="{outcome}"}} (\d+)$', text, re.MULTILINE)
    assert found is not None, f"{name} {outcome} not in /metrics"
    return int(found.group(1))


@pytest.mark.slow  # seconds of its own: left out of the quick loop
def test_the_byte_budget_is_shared_by_all_clients(make_server: Callable[..., Server]) -> None:
    server = make_server({"client_log": {"bytes_per_minute": BUDGET}})
    member, username = register(server)
    marker = secrets.token_hex(8)
    lines = [f"{marker} member {i:02d} " + "m" * 1000 for i in range(20)]  # ~21 KiB with tags and timestamps
    response = member.post("/api/client-log", json={"lines": lines})
    assert response.status_code == 200
    written = response.json()["received"]
    assert set(response.json()) == {"ok", "received"} and 0 < written < len(lines)
    # The first `received` lines were written whole, the rest dropped whole.
    assert [line.split(f"[CLIENT {username}] ", 1)[1] for line in _logged(server, marker)] == lines[:written]
    # Another identity, an anonymous browser, finds the budget spent too: it is one budget for all.
    anonymous = server.client()
    response = anonymous.post("/api/client-log", json={"lines": [f"{marker} anonymous " + "a" * 1000]})
    assert response.json() == {"ok": True, "received": 0}
    assert _logged(server, f"{marker} anonymous") == []
    metrics = server.client().get("/metrics").text
    assert _metric(metrics, "opencall_client_log_lines_total", "written") == written
    assert _metric(metrics, "opencall_client_log_lines_total", "dropped") == len(lines) - written + 1
    assert _metric(metrics, "opencall_client_log_bytes_total", "written") <= BUDGET
    assert _metric(metrics, "opencall_client_log_bytes_total", "dropped") > 1000 * (len(lines) - written + 1)
    # Both logs say so, once (at most once a minute), and the server log holds no client line.
    for text in (log_text(server), client_log_text(server)):
        assert sum(NOTICE in line for line in text.splitlines()) == 1, text[-2000:]
    assert "[CLIENT" not in log_text(server)


@pytest.mark.slow  # seconds of its own: left out of the quick loop
def test_a_flood_rotates_client_log_and_never_the_server_log(make_server: Callable[..., Server]) -> None:
    server = make_server({"client_log": {"bytes_per_minute": 4 << 20, "max_bytes": 64 << 10, "backups": 1}})
    first = log_text(server).splitlines()[0]
    assert "config:" in first
    client, _ = register(server)
    line = "f" * 2000
    for _ in range(20):  # 20 requests of 30 lines of 2 kB (bodies < 64 KiB): ~1.2 MB, ~19 rotations
        assert client.post("/api/client-log", json={"lines": [line] * 30}).json() == {"ok": True, "received": 30}
    folder = server.log_file.parent
    assert sorted(path.name for path in folder.iterdir()) == ["client.log", "client.log.1", "opencall.log"]
    assert 64 << 10 <= (folder / "client.log.1").stat().st_size <= (64 << 10) + 2100
    server_lines = log_text(server).splitlines()
    assert server_lines[0] == first
    assert not any("[CLIENT" in text for text in server_lines)
    assert "[CLIENT" not in stderr_text(server)  # nor the journal
