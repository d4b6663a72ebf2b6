"""/api/auth/register, /login, /logout, /me: shapes, field rules and errors of api.md."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.api.helpers import SESSION_COOKIE, register_body, session_token
from tests.support import Server, register, unique_name


def test_register_returns_ok_and_signs_in(server: Server) -> None:
    client = server.client()
    body = register_body()
    response = client.post("/api/auth/register", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"ok": True, "username": body["username"]}
    assert client.cookies.get(SESSION_COOKIE) == session_token(response)
    assert client.get("/api/auth/me").json() == {
        "authenticated": True, "username": body["username"], "email": body["email"],
    }


def test_register_keeps_username_case_and_lowercases_email(server: Server) -> None:
    username = "Mixed_" + unique_name()[-6:]
    client = server.client()
    response = client.post("/api/auth/register", json=register_body(
        username, email=f"  {username}.Name@Example.COM "))
    assert response.json() == {"ok": True, "username": username}
    me = client.get("/api/auth/me").json()
    assert me == {"authenticated": True, "username": username, "email": f"{username.lower()}.name@example.com"}


@pytest.mark.parametrize("make_name", [
    lambda: "q7",  # 2 characters, the shortest allowed
    lambda: ("L" + unique_name() * 4)[:32],  # 32 characters, the longest allowed
    lambda: "x.y-z_" + unique_name(),  # every allowed punctuation mark
])
def test_register_accepts_usernames_within_the_rules(server: Server, make_name: Callable[[], str]) -> None:
    username = make_name()
    response = server.client().post("/api/auth/register", json=register_body(username))
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "username": username}


@pytest.mark.parametrize(("overrides", "error"), [
    ({"username": ...}, "username is required"),
    ({"username": ""}, "username is required"),
    ({"username": "   "}, "username is required"),
    ({"username": None}, "username is required"),
    ({"username": 12345}, "username must be a string"),
    ({"username": ["alice"]}, "username must be a string"),
    ({"username": "a"}, "username must be 2-32 characters: letters, numbers, _ . - only"),
    ({"username": "a" * 33}, "username must be 2-32 characters: letters, numbers, _ . - only"),
    ({"username": "bad name"}, "username must be 2-32 characters: letters, numbers, _ . - only"),
    ({"username": "al!ce"}, "username must be 2-32 characters: letters, numbers, _ . - only"),
    ({"username": "ali@ce"}, "username must be 2-32 characters: letters, numbers, _ . - only"),
    ({"username": "élodie"}, "username must be 2-32 characters: letters, numbers, _ . - only"),
    ({"email": ...}, "email is required"),
    ({"email": ""}, "email is required"),
    ({"email": 7}, "email must be a string"),
    ({"email": "not-an-email"}, "email must be a valid email address"),
    ({"email": "a@b"}, "email must be a valid email address"),
    ({"email": "a@@example.com"}, "email must be a valid email address"),
    ({"email": "a b@example.com"}, "email must be a valid email address"),
    ({"email": "@example.com"}, "email must be a valid email address"),
    ({"password": ...}, "password is required"),
    ({"password": ""}, "password is required"),
    ({"password": 123456}, "password must be a string"),
    ({"password": "12345"}, "password must be at least 6 characters"),
])
def test_register_rejects_each_missing_or_invalid_field(
    server: Server, overrides: dict[str, object], error: str
) -> None:
    body = register_body(**overrides)
    response = server.client().post("/api/auth/register", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": error}
    assert SESSION_COOKIE not in response.cookies


def test_register_accepts_a_six_character_password(server: Server) -> None:
    body = register_body(password="123456")
    assert server.client().post("/api/auth/register", json=body).status_code == 200
    login = server.client().post("/api/auth/login", json={"username": body["username"], "password": "123456"})
    assert login.status_code == 200


def test_register_conflicts_on_username_in_any_case(server: Server) -> None:
    username = "Case" + unique_name()
    assert server.client().post("/api/auth/register", json=register_body(username)).status_code == 200
    for variant in (username, username.lower(), username.upper()):
        response = server.client().post("/api/auth/register", json=register_body(
            variant, email=f"{unique_name()}@example.com"))
        assert response.status_code == 409
        assert response.json() == {"error": "Username already taken"}


def test_register_conflicts_on_email_in_any_case(server: Server) -> None:
    email = f"{unique_name()}@Example.org"
    assert server.client().post("/api/auth/register", json=register_body(email=email)).status_code == 200
    for variant in (email, email.lower(), email.upper(), f" {email} "):
        response = server.client().post("/api/auth/register", json=register_body(email=variant))
        assert response.status_code == 409
        assert response.json() == {"error": "Email already registered"}


def test_login_returns_ok_and_sets_session(server: Server) -> None:
    _, username = register(server, password="correct-horse")
    client = server.client()
    response = client.post("/api/auth/login", json={"username": username, "password": "correct-horse"})
    assert response.status_code == 200
    assert response.json() == {"ok": True, "username": username}
    assert client.cookies.get(SESSION_COOKIE) == session_token(response)
    assert client.get("/api/auth/me").json()["authenticated"] is True


def test_login_username_is_case_insensitive_and_answers_the_stored_name(server: Server) -> None:
    username = "Ca" + unique_name()
    register(server, username)
    response = server.client().post("/api/auth/login", json={"username": username.upper(), "password": "secret123"})
    assert response.status_code == 200
    assert response.json() == {"ok": True, "username": username}


@pytest.mark.parametrize("body", [
    {"password": "secret123"},
    {"username": "someone"},
    {"username": "", "password": "secret123"},
    {"username": "someone", "password": ""},
    {"username": 5, "password": "secret123"},
    {},
])
def test_login_missing_field_is_400(server: Server, body: dict[str, object]) -> None:
    response = server.client().post("/api/auth/login", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": "username and password are required"}


def test_login_wrong_password_or_unknown_user_is_401(server: Server) -> None:
    _, username = register(server)
    client = server.client()
    for body in ({"username": username, "password": "wrong-password"},
                 {"username": unique_name("nobody"), "password": "secret123"},
                 {"username": "x" * 33, "password": "secret123"},  # longer than any name (found by fuzzing)
                 {"username": "T\u0337\u0332o\u035e" * 20, "password": "secret123"}):
        response = client.post("/api/auth/login", json=body)
        assert response.status_code == 401
        assert response.json() == {"error": "Invalid username or password"}
        assert SESSION_COOKIE not in response.cookies
    assert client.get("/api/auth/me").json() == {"authenticated": False}


def test_logout_ends_the_session(server: Server) -> None:
    client, _ = register(server)
    response = client.post("/api/auth/logout")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert client.get("/api/auth/me").json() == {"authenticated": False}


def test_logout_without_a_session_is_ok(server: Server) -> None:
    response = server.client().post("/api/auth/logout")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_me_when_logged_out(server: Server) -> None:
    response = server.client().get("/api/auth/me")
    assert response.status_code == 200
    assert response.json() == {"authenticated": False}
    assert server.client(cookies={SESSION_COOKIE: "forged-session-id"}).get("/api/auth/me").json() == {
        "authenticated": False}
