"""The schema is created and upgraded by Tortoise's migrations when the server starts."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import Server, configured_server, database, query_db

MIGRATE_TO_FIRST = """
import asyncio, sys
from tortoise import Tortoise
from tortoise.migrations.api import migrate
from opencall.db.setup import tortoise_config

async def main():
    await migrate(config=tortoise_config("sqlite://" + sys.argv[1]), target="models.0001_initial")
    await Tortoise.close_connections()

asyncio.run(main())
"""


def _columns(server: Server, table: str) -> set[str]:
    return {row[1] for row in query_db(server, f"PRAGMA table_info({table})")}


@pytest.mark.slow  # seconds of its own: left out of the quick loop
def test_server_upgrades_a_database_made_by_the_first_migration(tmp_path: Path) -> None:
    server = configured_server(tmp_path / "srv")
    db = server.data_dir / "opencall.db"
    db.parent.mkdir(parents=True)
    subprocess.run([sys.executable, "-c", MIGRATE_TO_FIRST, str(db)], check=True, timeout=60)
    assert "claimed_by_anon" not in _columns(server, "invites")
    with database(server) as conn:
        conn.execute(
            "INSERT INTO users (username, username_key, email, password_hash, created_at) "
            "VALUES ('old', 'old', 'old@example.com', 'x', '2026-01-01 00:00:00+00:00')"
        )
        conn.execute(
            "INSERT INTO calls (caller_id, caller_call_id, callee_call_id, status, started_at) "
            "VALUES (1, 'R4WTBN8C', 'K7XM2PQ9', 'missed', '2026-01-01 00:00:00+00:00')"
        )
    with server:
        assert "claimed_by_anon" in _columns(server, "invites")
        assert {"blocked", "caller_username", "callee_username", "caller_principal"} <= _columns(server, "calls")
        assert query_db(server, "SELECT username, block_strangers FROM users") == [("old", 0)]
        assert query_db(server, "SELECT blocked, caller_username FROM calls") == [(0, None)]
        applied = [row[0] for row in query_db(server, "SELECT name FROM tortoise_migrations ORDER BY id")]
        assert applied[-1].startswith("0003")


def test_sqlite_runs_in_wal_mode(server: Server) -> None:
    assert query_db(server, "PRAGMA journal_mode") == [("wal",)]
