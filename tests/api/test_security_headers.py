"""Every response carries the security headers of opencall/api/headers.py: pages, static files, the Socket.IO
bundle and polling transport, REST JSON, errors, /healthz and /ca.crt; the socket's origin in connect-src is the
request's own Host, whether the box was opened by IPv4 address or by name, and never a Host that could break the
policy or that CSP cannot name (an IPv6 literal)."""

from __future__ import annotations

import httpx
import pytest

from tests.support import Server

EXPECTED = {
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
DIRECTIVES = {
    "default-src": ["'none'"], "script-src": ["'self'"], "style-src": ["'self'"], "img-src": ["'self'"],
    "base-uri": ["'none'"], "form-action": ["'self'"], "frame-ancestors": ["'none'"],
}
PATHS = [
    ("GET", "/", 200),
    ("GET", "/invite/sometoken", 200),
    ("GET", "/dashboard", 200),
    ("GET", "/static/app.css", 200),
    ("GET", "/static/js/main.js", 200),
    ("GET", "/static/icon.svg", 200),
    ("GET", "/socket.io/socket.io.js", 200),
    ("GET", "/socket.io/?EIO=4&transport=polling", 200),
    ("GET", "/api/auth/me", 200),
    ("GET", "/api/ice-config", 200),
    ("GET", "/healthz", 200),
    ("GET", "/api/nope", 404),
    ("GET", "/static/nope.js", 404),
    ("GET", "/api/auth/login", 405),
    ("POST", "/api/auth/login", 400),
]


def policy(response: httpx.Response) -> dict[str, list[str]]:
    """The response's Content-Security-Policy as {directive: sources}."""
    parsed = {}
    for part in response.headers["content-security-policy"].split(";"):
        name, *sources = part.split()
        assert name not in parsed, f"{name} twice in {response.headers['content-security-policy']}"
        parsed[name] = sources
    return parsed


def check_headers(response: httpx.Response, socket_origin: str) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, f"{response.request.url}: {name} is {response.headers.get(name)}"
    permissions = dict(item.strip().split("=", 1) for item in response.headers["permissions-policy"].split(","))
    assert permissions["microphone"] == permissions["camera"] == "(self)"
    assert permissions["geolocation"] == permissions["display-capture"] == permissions["usb"] == "()"
    assert "strict-transport-security" not in response.headers
    csp = policy(response)
    assert {name: csp[name] for name in DIRECTIVES} == DIRECTIVES
    assert csp["connect-src"] == ["'self'", socket_origin]
    assert set(csp) == {*DIRECTIVES, "connect-src"}, f"unexpected directives: {sorted(csp)}"


@pytest.mark.parametrize(("method", "path", "status"), PATHS)
def test_every_kind_of_response_carries_the_headers(server: Server, method: str, path: str, status: int) -> None:
    with server.client() as client:
        response = client.request(method, path)
    assert response.status_code == status, response.text
    check_headers(response, "ws://" + server.base_url.split("://", 1)[1])


def test_https_responses_name_the_secure_socket_and_the_ca_certificate_has_them(https_server: Server) -> None:
    host = https_server.base_url.split("://", 1)[1]
    with https_server.client() as client:
        for path in ("/", "/ca.crt", "/healthz", "/api/nope"):
            check_headers(client.get(path), f"wss://{host}")


@pytest.mark.parametrize("host", ["opencall.local:8443", "192.168.1.20:8443", "box", "localhost"])
def test_the_socket_origin_is_the_requested_host(server: Server, host: str) -> None:
    with server.client() as client:
        response = client.get("/", headers={"Host": host})
    assert policy(response)["connect-src"] == ["'self'", f"ws://{host}"]


# An IPv6 literal is no CSP source (Chromium reports it as invalid): 'self' covers the socket there.
@pytest.mark.parametrize("host", ["evil.example; script-src *", "a b", "x'y", "host/path", "[::1]x", "[fd00::20]:8443",
                                  "box.local.", "a..b"])
def test_a_host_that_is_not_plain_stays_out_of_the_policy(server: Server, host: str) -> None:
    with server.client() as client:
        response = client.get("/", headers={"Host": host})
    assert policy(response)["connect-src"] == ["'self'"]
    assert policy(response)["script-src"] == ["'self'"]
