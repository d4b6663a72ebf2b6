"""database_url: postgres://… against a real PostgreSQL server started on 127.0.0.1 for this test."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.api.helpers import as_key
from tests.support import Server, api_key, free_port, register

PG_USER = "postgres"
MISSING = ("PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian package "
           "`postgresql` (scripts/test does)")


def _pg_bin_dir() -> Path:
    """The folder of initdb/pg_ctl: Debian keeps them in /usr/lib/postgresql/<version>/bin."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                        if Path(p).parent.name.isdigit() else 0, reverse=True)
    for folder in candidates:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    pytest.fail(MISSING)


def _as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        pytest.fail(f"running as root but there is no `{PG_USER}` user: install the Debian package postgresql")
    return ["runuser", "-u", PG_USER, "--"]


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (socket in its own folder); yields a database URL."""
    bin_dir = _pg_bin_dir()
    prefix = _as_postgres_user()
    # Not under pytest's tmp_path: that is private to root and the postgres user must own its data dir.
    root = Path(tempfile.mkdtemp(prefix="opencall-pg-"))
    if prefix:
        entry = pwd.getpwnam(PG_USER)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data, port = root / "data", free_port()
    try:
        _run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER, "-E", "UTF8",
              "--no-sync"])
        _run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "postgres.log"), "-w",
              "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off", "start"])
        try:
            _run([*prefix, str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER,
                  "opencall"])
            yield f"postgres://{PG_USER}@127.0.0.1:{port}/opencall"
        finally:
            _run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _psql(url: str, sql: str) -> str:
    psql = shutil.which("psql") or str(_pg_bin_dir() / "psql")
    result = subprocess.run([psql, url, "-At", "-c", sql], capture_output=True, text=True, timeout=30,
                            check=True)
    return result.stdout.strip()


def test_postgresql_database_url(make_server: Callable[..., Server]) -> None:
    with postgres_server() as url:
        server = make_server({"database_url": url})
        client, username = register(server, password="pg-secret-1")
        key = api_key(client)
        token = client.post("/api/invite/generate").json()["token"]
        assert server.client().post("/api/auth/login", json={"username": username, "password": "pg-secret-1"}
                                    ).json() == {"ok": True, "username": username}

        server.restart()

        login = server.client().post("/api/auth/login", json={"username": username, "password": "pg-secret-1"})
        assert login.json() == {"ok": True, "username": username}
        assert server.client().get("/api/key", headers=as_key(key)).json() == {"apiKey": key}
        assert server.client().get(f"/api/invite/{token}", headers=as_key(key)).json()["creatorUsername"] == username
        # The rows really live in PostgreSQL, and no SQLite file was made.
        assert _psql(url, f"SELECT username FROM users WHERE username_key = '{username.lower()}'") == username
        assert _psql(url, "SELECT count(*) FROM invites") == "1"
        assert not (server.data_dir / "opencall.db").exists()
        server.stop()
