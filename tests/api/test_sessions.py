"""Website sessions: cookie attributes, a fresh id at every login, server-side logout."""

from __future__ import annotations

import hashlib

from tests.api.helpers import SESSION_COOKIE, cookie_attributes, register_body, session_token, set_cookie_header
from tests.support import Server, database, register


def _me(server: Server, token: str) -> dict[str, object]:
    response = server.client(cookies={SESSION_COOKIE: token}).get("/api/auth/me")
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def test_session_cookie_is_httponly_lax_and_not_secure_over_http(server: Server) -> None:
    client = server.client()
    register_response = client.post("/api/auth/register", json=register_body())
    login_response = client.post("/api/auth/login", json={
        "username": register_response.json()["username"], "password": "secret123"})
    for response in (register_response, login_response):
        attributes = cookie_attributes(set_cookie_header(response, SESSION_COOKIE))
        assert {"httponly", "samesite=lax", "path=/"} <= attributes
        assert "secure" not in attributes
        assert "max-age=2592000" in attributes  # 30 days
        assert len(session_token(response)) >= 32


def test_session_cookie_is_secure_over_https(https_server: Server) -> None:
    assert https_server.base_url.startswith("https://")
    client = https_server.client()
    response = client.post("/api/auth/register", json=register_body())
    assert response.status_code == 200
    attributes = cookie_attributes(set_cookie_header(response, SESSION_COOKIE))
    assert {"httponly", "samesite=lax", "secure", "path=/"} <= attributes
    assert client.get("/api/auth/me").json()["authenticated"] is True
    logout = client.post("/api/auth/logout")
    assert {"secure", "httponly", "max-age=0"} <= cookie_attributes(set_cookie_header(logout, SESSION_COOKIE))
    assert client.get("/api/auth/me").json() == {"authenticated": False}


def test_login_issues_a_new_session_id_and_ends_the_old_one(server: Server) -> None:
    client = server.client()
    body = register_body()
    first = session_token(client.post("/api/auth/register", json=body))
    second = session_token(client.post("/api/auth/login", json={"username": body["username"],
                                                                 "password": "secret123"}))
    assert second != first
    assert client.cookies[SESSION_COOKIE] == second
    assert _me(server, first) == {"authenticated": False}
    assert _me(server, second)["username"] == body["username"]
    third = session_token(client.post("/api/auth/login", json={"username": body["username"],
                                                                "password": "secret123"}))
    assert third not in (first, second)
    assert _me(server, second) == {"authenticated": False}
    assert _me(server, third)["authenticated"] is True


def test_sessions_of_different_browsers_are_independent(server: Server) -> None:
    laptop, username = register(server)
    phone = server.client()
    phone.post("/api/auth/login", json={"username": username, "password": "secret123"})
    assert phone.cookies[SESSION_COOKIE] != laptop.cookies[SESSION_COOKIE]
    phone.post("/api/auth/logout")
    assert laptop.get("/api/auth/me").json()["authenticated"] is True
    assert phone.get("/api/auth/me").json() == {"authenticated": False}


def test_logout_destroys_the_session_server_side(server: Server) -> None:
    client, _ = register(server)
    token = client.cookies[SESSION_COOKIE]
    response = client.post("/api/auth/logout")
    assert response.json() == {"ok": True}
    cleared = set_cookie_header(response, SESSION_COOKIE)
    assert cleared.startswith(f'{SESSION_COOKIE}=""') or cleared.startswith(f"{SESSION_COOKIE}=;")
    assert "max-age=0" in cookie_attributes(cleared)
    # Replaying the old cookie value does not bring the session back.
    assert _me(server, token) == {"authenticated": False}
    replay = server.client(cookies={SESSION_COOKIE: token})
    assert replay.get("/api/key").status_code == 401
    assert replay.post("/api/invite/generate").status_code == 401


def test_an_expired_session_is_refused_and_removed(server: Server) -> None:
    client, _ = register(server)
    token_hash = hashlib.sha256(client.cookies[SESSION_COOKIE].encode()).hexdigest()
    with database(server) as db:
        db.execute("UPDATE sessions SET expires_at = ? WHERE token_hash = ?",
                   ("2020-01-01 00:00:00.000000+00:00", token_hash))
    assert client.get("/api/auth/me").json() == {"authenticated": False}
    assert client.get("/api/key").status_code == 401
    with database(server) as db:
        assert db.execute("SELECT count(*) FROM sessions WHERE token_hash = ?", (token_hash,)).fetchone() == (0,)
