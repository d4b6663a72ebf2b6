"""API keys (GET /api/key, POST /api/key/regenerate) and how 🔒 endpoints authenticate."""

from __future__ import annotations

import secrets

import pytest

from tests.api.helpers import API_KEY_RE, NOT_AUTHENTICATED, SESSION_COOKIE, as_bearer, as_key
from tests.support import Server, api_key, register

LOCKED = [
    ("GET", "/api/key"),
    ("POST", "/api/key/regenerate"),
    ("POST", "/api/invite/generate"),
    ("GET", "/api/invite/5f3c2b8e-6d41-4a90-bf2a-9e0c7f1d2a44"),
    ("GET", "/api/call-history"),
]
WRONG_CREDENTIALS = {
    "none": {},
    "unknown x-api-key": as_key("oc_" + "0" * 32),
    "malformed x-api-key": as_key("not-a-key"),
    "overlong x-api-key": as_key("oc_" + "a" * 200),
    "unknown bearer": as_bearer("oc_" + "f" * 32),
    "basic auth": {"Authorization": "Basic YWxpY2U6c2VjcmV0MTIz"},
    "forged cookie": {"Cookie": f"{SESSION_COOKIE}=forged-session-token"},
}


@pytest.mark.parametrize(("method", "path"), LOCKED)
@pytest.mark.parametrize("credentials", list(WRONG_CREDENTIALS), ids=str)
def test_locked_endpoints_answer_401_without_valid_credentials(
    server: Server, method: str, path: str, credentials: str
) -> None:
    response = server.client().request(method, path, headers=WRONG_CREDENTIALS[credentials])
    assert response.status_code == 401
    assert response.json() == NOT_AUTHENTICATED


def test_every_account_has_a_key_from_registration(server: Server) -> None:
    client, _ = register(server)
    response = client.get("/api/key")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["apiKey"]
    assert API_KEY_RE.match(body["apiKey"])
    assert client.get("/api/key").json() == body  # stable until rotated
    other, _ = register(server)
    assert api_key(other) != body["apiKey"]


@pytest.mark.parametrize("how", ["x-api-key", "bearer", "bearer-lowercase-scheme", "cookie"])
def test_key_and_cookie_each_authenticate(server: Server, how: str) -> None:
    owner, username = register(server)
    key = api_key(owner)
    client = server.client()
    headers = {
        "x-api-key": as_key(key),
        "bearer": as_bearer(key),
        "bearer-lowercase-scheme": {"Authorization": f"bearer {key}"},
        "cookie": {"Cookie": f"{SESSION_COOKIE}={owner.cookies[SESSION_COOKIE]}"},
    }[how]
    assert client.get("/api/key", headers=headers).json() == {"apiKey": key}
    assert client.get("/api/call-history", headers=headers).json() == {"calls": []}
    invite = client.post("/api/invite/generate", headers=headers)
    assert invite.status_code == 200
    lookup = client.get(f"/api/invite/{invite.json()['token']}", headers=headers)
    assert lookup.json()["creatorUsername"] == username


def test_a_wrong_key_never_falls_back_to_the_cookie(server: Server) -> None:
    client, _ = register(server)
    assert client.get("/api/key").status_code == 200
    response = client.get("/api/key", headers=as_key("oc_" + secrets.token_hex(16)))
    assert response.status_code == 401
    assert response.json() == NOT_AUTHENTICATED


def test_regenerate_issues_a_new_key_and_kills_the_old_one_at_once(server: Server) -> None:
    client, username = register(server)
    old = api_key(client)
    response = server.client().post("/api/key/regenerate", headers=as_key(old))
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["apiKey"]
    new = body["apiKey"]
    assert API_KEY_RE.match(new)
    assert new != old
    for headers in (as_key(old), as_bearer(old)):
        stale = server.client().get("/api/key", headers=headers)
        assert stale.status_code == 401
        assert stale.json() == NOT_AUTHENTICATED
    assert server.client().get("/api/key", headers=as_bearer(new)).json() == {"apiKey": new}
    assert client.get("/api/key").json() == {"apiKey": new}  # the dashboard shows the new key
    me = server.client().get("/api/auth/me", headers=as_key(new)).json()
    assert me["username"] == username


def test_regenerate_with_the_session_cookie(server: Server) -> None:
    client, _ = register(server)
    old = api_key(client)
    new = client.post("/api/key/regenerate").json()["apiKey"]
    assert new != old
    assert server.client().get("/api/key", headers=as_key(old)).status_code == 401
    assert api_key(client) == new
