"""Storage: restart persistence, scrypt password hashes, hashed/encrypted API keys and sessions, WAL."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable

import pytest
from cryptography.fernet import Fernet

from tests.api.helpers import SESSION_COOKIE, as_key, register_body, user_id
from tests.support import Server, api_key, database, register

SCRYPT_RE = re.compile(r"^scrypt\$32768\$8\$1\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


def _database_bytes(server: Server) -> bytes:
    """The SQLite file and its WAL (and shared-memory index), as they are on disk now."""
    files = sorted(server.data_dir.glob("opencall.db*"))
    assert server.data_dir / "opencall.db" in files
    return b"".join(path.read_bytes() for path in files)


@pytest.mark.slow  # seconds of its own: left out of the quick loop
def test_restart_loses_nothing(make_server: Callable[..., Server]) -> None:
    server = make_server()
    client, username = register(server, password="persist-me-123")
    old_key = api_key(client)
    new_key = client.post("/api/key/regenerate").json()["apiKey"]
    token = client.post("/api/invite/generate").json()["token"]
    viewer, _ = register(server)
    assert viewer.get(f"/api/invite/{token}").status_code == 200  # claimed before the restart
    assert server.client().post("/api/contact", json={"subject": "Persist", "email": "p@example.com",
                                                      "message": "kept across restarts"}).status_code == 200
    session = client.cookies[SESSION_COOKIE]

    server.restart()

    fresh = server.client()
    login = fresh.post("/api/auth/login", json={"username": username, "password": "persist-me-123"})
    assert login.json() == {"ok": True, "username": username}
    assert server.client().get("/api/key", headers=as_key(new_key)).json() == {"apiKey": new_key}
    assert server.client().get("/api/key", headers=as_key(old_key)).status_code == 401
    assert api_key(fresh) == new_key
    lookup = fresh.get(f"/api/invite/{token}")
    assert lookup.status_code == 200
    assert lookup.json()["creatorUsername"] == username
    assert viewer.get(f"/api/invite/{token}").status_code == 200  # still the claimant's
    third, _ = register(server)
    assert third.get(f"/api/invite/{token}").json() == {"error": "Invite already used"}
    # Sessions are server-side records: the browser stays signed in across the restart.
    assert server.client(cookies={SESSION_COOKIE: session}).get("/api/auth/me").json()["username"] == username
    with database(server) as db:
        assert db.execute("SELECT count(*) FROM contact_messages WHERE subject = 'Persist'").fetchone() == (1,)


def test_passwords_are_salted_scrypt_hashes(server: Server) -> None:
    password = "plain-" + secrets.token_hex(8)
    _, first = register(server, password=password)
    _, second = register(server, password=password)
    with database(server) as db:
        hashes = [db.execute("SELECT password_hash FROM users WHERE id = ?", (user_id(server, name),)).fetchone()[0]
                  for name in (first, second)]
    for stored in hashes:
        match = SCRYPT_RE.match(stored)
        assert match, stored
        assert len(base64.b64decode(match.group(1))) == 16
        assert len(base64.b64decode(match.group(2))) == 32
        assert password not in stored
    assert hashes[0] != hashes[1]  # a fresh salt per password
    assert password.encode() not in _database_bytes(server)


def test_api_keys_are_stored_only_as_sha256_and_an_encrypted_copy(server: Server) -> None:
    client, username = register(server)
    first = api_key(client)
    second = client.post("/api/key/regenerate").json()["apiKey"]
    with database(server) as db:
        rows = db.execute("SELECT lookup_hash, encrypted_key FROM api_keys WHERE user_id = ?",
                          (user_id(server, username),)).fetchall()
    assert len(rows) == 1  # one key per account; the rotated one is gone
    lookup_hash, encrypted = rows[0]
    assert lookup_hash == hashlib.sha256(second.encode()).hexdigest()
    cipher = Fernet((server.data_dir / "api-key-encryption.key").read_bytes().strip())
    assert cipher.decrypt(encrypted.encode()).decode() == second
    assert (server.data_dir / "api-key-encryption.key").stat().st_mode & 0o777 == 0o600
    stored = _database_bytes(server)
    for key in (first, second):
        assert key.encode() not in stored
        assert key[3:].encode() not in stored  # nor its hex part alone


def test_session_tokens_are_stored_only_as_sha256(server: Server) -> None:
    client = server.client()
    client.post("/api/auth/register", json=register_body())
    token = client.cookies[SESSION_COOKIE]
    with database(server) as db:
        found = db.execute("SELECT count(*) FROM sessions WHERE token_hash = ?",
                           (hashlib.sha256(token.encode()).hexdigest(),)).fetchone()
    assert found == (1,)
    assert token.encode() not in _database_bytes(server)


def test_sqlite_runs_in_wal_mode_in_data_dir(server: Server) -> None:
    # data_dir "data" is relative in the config: it resolves against the config file's folder, not the
    # server's working directory (support.py starts it in /).
    assert server.data_dir == server.config_path.parent / "data"
    assert (server.data_dir / "opencall.db").is_file()
    assert server.log_file.is_file()
    with database(server) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"users", "api_keys", "sessions", "invites", "calls", "contact_messages"} <= tables
