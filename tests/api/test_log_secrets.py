"""Secrets never reach the log file or stderr, even at log_level debug."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest

from tests.api.helpers import SESSION_COOKIE, as_key, log_text, register_body, stderr_text
from tests.support import Server, api_key


@pytest.mark.slow  # seconds of its own: left out of the quick loop
def test_no_password_key_session_or_turn_credential_in_logs(make_server: Callable[..., Server]) -> None:
    server = make_server({"log_level": "debug"})
    password = "pw-" + secrets.token_hex(10)
    wrong_password = "wrong-" + secrets.token_hex(10)
    client = server.client()
    body = register_body(password=password)
    assert client.post("/api/auth/register", json=body).status_code == 200
    username = str(body["username"])
    assert client.post("/api/auth/login", json={"username": username, "password": wrong_password}
                       ).status_code == 401
    assert client.post("/api/auth/login", json={"username": username, "password": password}).status_code == 200
    first_key = api_key(client)
    second_key = client.post("/api/key/regenerate").json()["apiKey"]
    third_key = server.client().post("/api/key/regenerate", headers=as_key(second_key)).json()["apiKey"]
    ice = server.client().get("/api/ice-config", headers=as_key(third_key)).json()["iceServers"]
    anon_ice = server.client().get("/api/ice-config").json()["iceServers"]
    session = client.cookies[SESSION_COOKIE]
    client.post("/api/auth/logout")
    server.stop()  # flush everything

    log, stderr = log_text(server), stderr_text(server)
    assert f"account registered: {username}" in log  # the log is really written
    assert f"account registered: {username}" in stderr  # ... and mirrored to stderr
    turn_secret = (server.data_dir / "turn-secret").read_text().strip()
    encryption_key = (server.data_dir / "api-key-encryption.key").read_text().strip()
    leaks = {
        "password": password, "wrong password": wrong_password, "first key": first_key,
        "second key": second_key, "third key": third_key, "session": session,
        "turn credential": ice[1]["credential"], "anonymous turn credential": anon_ice[1]["credential"],
        "turn secret": turn_secret, "api key encryption key": encryption_key,
    }
    for what, secret in leaks.items():
        assert secret not in log, f"{what} in the log file"
        assert secret not in stderr, f"{what} on stderr"
