"""POST /api/client-log: lines land in the log file tagged [CLIENT <who>], with api.md's limits."""

from __future__ import annotations

import re
import secrets

import pytest

from tests.api.helpers import ANON_COOKIE, as_key, cookie_attributes, log_text, set_cookie_header
from tests.support import Server, api_key, register

ANON_RE = re.compile(r"^anon-[0-9a-f]{12}$")
ANON_COOKIE_RE = re.compile(r"^(anon-[0-9a-f]{12})\.[0-9a-f]{16}$")  # the id and the server's signature


def _logged(server: Server, marker: str) -> list[str]:
    """The client-log lines of the log file that contain ``marker``."""
    return [line for line in log_text(server).split("\n") if marker in line]


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
    lines = [f"{marker} a\n{forged}", f"{marker} b\r\n{forged}", f"{marker} c\r{forged}",
             f"{marker} d\u2028{forged}", f"{marker} e\x85{forged}", f"{marker} f\x1b[2K\x00{forged}"]
    assert client.post("/api/client-log", json={"lines": lines}).json() == {"ok": True, "received": 6}
    text = log_text(server)
    assert not any(line.startswith(forged) for line in text.splitlines())
    logged = _logged(server, marker)
    assert len(logged) == 6
    for line in logged:
        assert line.split(f"[CLIENT {username}] ", 1)[1].startswith(marker)
        assert line.endswith(forged)
        assert all(ch.isprintable() for ch in line)


@pytest.mark.parametrize("body", [
    {}, {"lines": "just a string"}, {"lines": []}, {"lines": [1, 2]}, {"lines": ["ok", None]},
    {"lines": None}, {"line": ["typo"]}, ["a list"], "a string", 7,
])
def test_missing_or_invalid_lines_is_400(server: Server, body: object) -> None:
    response = server.client().post("/api/client-log", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": "lines[] required"}
