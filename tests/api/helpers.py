"""Small helpers shared by the REST API tests: users in the database, the server's log, and request shapes."""

from __future__ import annotations

import re

import httpx

from tests.support import Server, query_db, unique_name

API_KEY_RE = re.compile(r"^oc_[0-9a-f]{32}$")
UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ISO_MILLIS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SESSION_COOKIE = "opencall_session"
ANON_COOKIE = "opencall_anon"
NOT_AUTHENTICATED = {"error": "Not authenticated"}
CROSS_ORIGIN = {"error": "Cross-origin request refused"}
FOREIGN_ORIGIN = "http://evil.example"


def user_id(server: Server, username: str) -> int:
    rows = query_db(server, "SELECT id FROM users WHERE username_key = ?", (username.lower(),))
    assert rows, f"no user {username} in the database"
    return int(rows[0][0])


def log_text(server: Server) -> str:
    return server.log_file.read_text(encoding="utf-8")


def stderr_text(server: Server) -> str:
    return server.stderr_path.read_text(encoding="utf-8", errors="replace")


def register_body(name: str | None = None, /, **overrides: object) -> dict[str, object]:
    """A valid register body for ``name`` (default: a fresh one), with fields replaced or removed (``...``)."""
    name = name or unique_name()
    body: dict[str, object] = {"username": name, "email": f"{name}@example.com", "password": "secret123"}
    for key, value in overrides.items():
        if value is ...:
            del body[key]
        else:
            body[key] = value
    return body


def session_token(response: httpx.Response) -> str:
    """The session id a response set in its Set-Cookie header."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == SESSION_COOKIE:
            return rest.split(";", 1)[0]
    raise AssertionError(f"no {SESSION_COOKIE} cookie in {response.headers.get_list('set-cookie')}")


def set_cookie_header(response: httpx.Response, name: str) -> str:
    matches = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(matches) == 1, response.headers.get_list("set-cookie")
    return matches[0]


def cookie_attributes(header: str) -> set[str]:
    """The attributes of a Set-Cookie header, lowercased (``httponly``, ``samesite=lax``, ``secure``...)."""
    return {part.strip().lower() for part in header.split(";")[1:]}


def as_key(key: str) -> dict[str, str]:
    return {"x-api-key": key}


def as_bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
