"""Per-minute rate limits → 429 with Retry-After, on dedicated servers with small limits."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.api.helpers import register_body
from tests.support import Server, register, serve, unique_name

TOO_MANY = {"error": "Too many requests, try again later"}
MakeServer = Callable[..., Server]
CONTACT = {"subject": "Hello", "email": "a@example.com", "message": "hello there"}


def _assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == TOO_MANY
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Small per-IP limits on register, contact and client-log; each test below spends only its own."""
    yield from serve(tmp_path_factory, "limited", {"rate_limits": {
        "register_per_ip": 2, "contact_per_ip": 2, "client_log_per_ip": 2}})


def test_register_per_ip(limited: Server) -> None:
    client = limited.client()
    assert client.post("/api/auth/register", json=register_body()).status_code == 200
    # Refused registrations count too.
    assert client.post("/api/auth/register", json=register_body(password="short")).status_code == 400
    body = register_body()
    _assert_limited(limited.client().post("/api/auth/register", json=body))
    # The refused registration created nothing.
    assert limited.client().post("/api/auth/login", json={"username": body["username"], "password": "secret123"}
                                 ).status_code == 401


def test_contact_per_ip(limited: Server) -> None:
    for _ in range(2):
        assert limited.client().post("/api/contact", json=CONTACT).status_code == 200
    _assert_limited(limited.client().post("/api/contact", json=CONTACT))


def test_client_log_per_ip(limited: Server) -> None:
    for _ in range(2):
        assert limited.client().post("/api/client-log", json={"lines": ["x"]}).status_code == 200
    _assert_limited(limited.client().post("/api/client-log", json={"lines": ["x"]}))


def test_login_per_ip_and_zero_turns_a_limit_off(make_server: MakeServer) -> None:
    server = make_server({"rate_limits": {"login_per_ip": 3, "contact_per_ip": 0}})
    _, username = register(server)
    client = server.client()
    # Any login attempt counts, right or wrong, for any username.
    assert client.post("/api/auth/login", json={"username": username, "password": "secret123"}).status_code == 200
    assert client.post("/api/auth/login", json={"username": username, "password": "wrong!!"}).status_code == 401
    assert client.post("/api/auth/login", json={"username": unique_name(), "password": "x" * 8}).status_code == 401
    _assert_limited(server.client().post("/api/auth/login", json={"username": username, "password": "secret123"}))
    # Other endpoints are not affected; contact_per_ip: 0 (default 5) never limits.
    assert server.client().post("/api/auth/register", json=register_body()).status_code == 200
    for _ in range(12):
        assert server.client().post("/api/contact", json=CONTACT).status_code == 200


def test_login_failures_per_user(make_server: MakeServer) -> None:
    server = make_server({"rate_limits": {"login_failures_per_user": 2}})
    _, victim = register(server)
    _, bystander = register(server)
    client = server.client()
    for _ in range(2):
        assert client.post("/api/auth/login", json={"username": victim, "password": "guess-1"}).status_code == 401
    # Even the right password waits now, under any spelling of the username.
    for name in (victim, victim.upper()):
        _assert_limited(client.post("/api/auth/login", json={"username": name, "password": "secret123"}))
    # The limit is per username: another account logs in from the same address, and successful logins
    # do not count as failures.
    for _ in range(3):
        assert client.post("/api/auth/login", json={"username": bystander, "password": "secret123"}
                           ).status_code == 200
