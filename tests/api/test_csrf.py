"""Cross-site request refusal: cookie-authenticated unsafe requests and all /api/auth/* need our own Origin."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import PUBLIC_URL
from tests.api.helpers import CROSS_ORIGIN, FOREIGN_ORIGIN, SESSION_COOKIE, as_bearer, as_key, register_body
from tests.support import Server, api_key, register

COOKIE_POSTS = ["/api/key/regenerate", "/api/invite/generate", "/api/auth/logout"]


@pytest.fixture(scope="module")
def victim(server: Server) -> httpx.Client:
    """A signed-in browser that foreign pages try to act through; refused requests leave it unchanged."""
    client, _ = register(server)
    return client


@pytest.mark.parametrize("path", COOKIE_POSTS)
@pytest.mark.parametrize("headers", [
    {"Origin": FOREIGN_ORIGIN},
    {"Origin": "null"},
    {"Origin": "https://127.0.0.1"},  # same host, other scheme and port: another origin
    {"Referer": f"{FOREIGN_ORIGIN}/attack.html"},
], ids=["foreign", "null", "other-scheme", "foreign-referer"])
def test_cookie_request_from_a_foreign_origin_is_403(
    victim: httpx.Client, path: str, headers: dict[str, str]
) -> None:
    client = victim
    key = api_key(client)
    response = client.post(path, headers=headers)
    assert response.status_code == 403
    assert response.json() == CROSS_ORIGIN
    # Nothing happened: the key was not rotated and the session still lives.
    assert api_key(client) == key
    assert client.get("/api/auth/me").json()["authenticated"] is True


@pytest.mark.parametrize("path", COOKIE_POSTS)
def test_cookie_request_from_our_own_origin_is_allowed(server: Server, path: str) -> None:
    client, _ = register(server)
    for headers in ({"Origin": server.base_url}, {"Referer": f"{server.base_url}/invite/x"}):
        if path == "/api/auth/logout":
            client, _ = register(server)
        response = client.post(path, headers=headers)
        assert response.status_code == 200, response.text


def test_api_key_requests_are_never_refused_for_their_origin(server: Server) -> None:
    client, _ = register(server)
    key = api_key(client)
    anonymous = server.client()
    response = anonymous.post("/api/invite/generate", headers={**as_key(key), "Origin": FOREIGN_ORIGIN})
    assert response.status_code == 200
    # Even with the session cookie beside it, the key decides.
    response = client.post("/api/key/regenerate", headers={**as_bearer(key), "Origin": FOREIGN_ORIGIN})
    assert response.status_code == 200
    assert response.json()["apiKey"] != key


def test_safe_methods_with_a_foreign_origin_are_allowed(server: Server) -> None:
    client, username = register(server)
    me = client.get("/api/auth/me", headers={"Origin": FOREIGN_ORIGIN})
    assert me.json()["username"] == username
    assert client.get("/api/call-history", headers={"Origin": FOREIGN_ORIGIN}).status_code == 200


def test_login_and_register_from_a_foreign_origin_are_403(server: Server) -> None:
    _, username = register(server)
    client = server.client()
    login = {"username": username, "password": "secret123"}
    response = client.post("/api/auth/login", json=login, headers={"Origin": FOREIGN_ORIGIN})
    assert response.status_code == 403
    assert response.json() == CROSS_ORIGIN
    assert SESSION_COOKIE not in client.cookies
    body = register_body()
    response = client.post("/api/auth/register", json=body, headers={"Origin": FOREIGN_ORIGIN})
    assert response.status_code == 403
    assert response.json() == CROSS_ORIGIN
    # The account was not created.
    assert client.post("/api/auth/login", json={"username": body["username"], "password": "secret123"}
                       ).status_code == 401
    ok = client.post("/api/auth/login", json=login, headers={"Origin": server.base_url})
    assert ok.status_code == 200
    assert ok.json() == {"ok": True, "username": username}


def test_public_url_origin_is_our_own(custom_server: Server) -> None:
    client, _ = register(custom_server)
    assert client.post("/api/invite/generate", headers={"Origin": PUBLIC_URL}).status_code == 200
    refused = client.post("/api/invite/generate", headers={"Origin": "https://calls.example.org.evil.example"})
    assert refused.status_code == 403


def test_https_origin_check(https_server: Server) -> None:
    client, _ = register(https_server)
    assert client.post("/api/invite/generate", headers={"Origin": https_server.base_url}).status_code == 200
    http_origin = https_server.base_url.replace("https://", "http://")
    refused = client.post("/api/invite/generate", headers={"Origin": http_origin})
    assert refused.status_code == 403
    assert refused.json() == CROSS_ORIGIN
