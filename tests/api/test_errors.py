"""Every error is JSON {"error": ...}: malformed and non-object bodies, unknown routes, wrong methods, size."""

from __future__ import annotations

import json

import pytest

from tests.support import Server, register

JSON_BODY_ENDPOINTS = ["/api/auth/register", "/api/auth/login", "/api/contact"]


@pytest.mark.parametrize("path", [*JSON_BODY_ENDPOINTS, "/api/client-log"])
@pytest.mark.parametrize("raw", [b"{bad json", b'{"username": "alice",}', b"\xff\xfe", b"{", b"nul"])
def test_malformed_json_is_400(server: Server, path: str, raw: bytes) -> None:
    response = server.client().post(path, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"error": "Malformed JSON body"}


@pytest.mark.parametrize("path", JSON_BODY_ENDPOINTS)
@pytest.mark.parametrize("raw", [b"[]", b'["alice"]', b'"alice"', b"42", b"null", b"true", b""])
def test_non_object_json_is_400(server: Server, path: str, raw: bytes) -> None:
    response = server.client().post(path, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"error": "Request body must be a JSON object"}


@pytest.mark.parametrize(("method", "path"), [
    *[(method, path) for path in ("/api/nope", "/api/auth", "/api/invite", "/nope") for method in ("GET", "POST")],
    ("GET", "/static/nope.css"),
])
def test_unknown_route_is_json_404(server: Server, method: str, path: str) -> None:
    response = server.client().request(method, path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"error": "Not found"}


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("GET", "/api/auth/register", "POST"),
    ("GET", "/api/auth/login", "POST"),
    ("PUT", "/api/auth/logout", "POST"),
    ("POST", "/api/auth/me", "GET"),
    ("DELETE", "/api/key", "GET"),
    ("GET", "/api/key/regenerate", "POST"),
    ("GET", "/api/invite/generate", "POST"),
    ("PUT", "/api/invite/5f3c2b8e-6d41-4a90-bf2a-9e0c7f1d2a44", "DELETE"),
    ("PUT", "/api/blocks", "POST"),
    ("POST", "/api/blocks/strangers", "PUT"),
    ("POST", "/api/call-history", "GET"),
    ("GET", "/api/contact", "POST"),
    ("GET", "/api/client-log", "POST"),
    ("POST", "/api/ice-config", "GET"),
])
def test_wrong_method_is_json_405_with_allow(server: Server, method: str, path: str, allowed: str) -> None:
    response = server.client().request(method, path)
    assert response.status_code == 405
    assert response.json() == {"error": "Method not allowed"}
    assert allowed in {part.strip() for part in response.headers["allow"].split(",")}


def _contact_body_of_size(size: int) -> bytes:
    """A valid contact body of exactly ``size`` bytes."""
    body = {"subject": "Size", "email": "size@example.com", "message": ""}
    padding = size - len(json.dumps(body).encode())
    body["message"] = "m" * padding
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


def test_64_kib_body_is_accepted_and_one_byte_more_is_413(server: Server) -> None:
    client = server.client()
    headers = {"Content-Type": "application/json"}
    ok = client.post("/api/contact", content=_contact_body_of_size(64 * 1024), headers=headers)
    assert ok.status_code == 200
    assert ok.json() == {"ok": True}
    too_big = client.post("/api/contact", content=_contact_body_of_size(64 * 1024 + 1), headers=headers)
    assert too_big.status_code == 413
    assert too_big.json() == {"error": "Request body too large"}


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login", "/api/client-log",
                                  "/api/key/regenerate", "/api/invite/generate"])
def test_oversized_bodies_are_413_everywhere_in_the_api(server: Server, path: str) -> None:
    client, _ = register(server)
    for size in (100 * 1024, 2 * 1024 * 1024):
        response = client.post(path, content=b'{"lines": ["' + b"x" * size + b'"]}',
                               headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.json() == {"error": "Request body too large"}
