"""Open, migrate and close the database with Tortoise's built-in migrations.

Opening never hangs: the connection is made first, within :data:`CONNECT_TIMEOUT` seconds, and a database that
cannot be used raises :class:`DatabaseError` with one line naming it and the fix. (Tortoise 1.1 opens its
connection lazily under a lock that it does not release when connecting fails; the migration recorder swallows
that error and the next statement then waits for the lock forever. Connecting first avoids that path.)
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tortoise import Tortoise
from tortoise.connection import get_connection
from tortoise.migrations.executor import MigrationExecutor

MODELS_MODULE = "opencall.db.models"
MIGRATIONS_MODULE = "opencall.db.migrations"
CONNECT_TIMEOUT = 5.0  # seconds for a database server to accept a connection

# SQLite runs in WAL mode with synchronous=FULL: the appliance writes a handful of rows per call, so an
# fsync per commit costs nothing noticeable, and a home server that loses power keeps every account,
# key rotation and call record that was acknowledged (NORMAL could drop the last commits).
# busy_timeout comes first: the journal_mode pragma itself waits for a lock another process holds.
SQLITE_PRAGMAS = {"busy_timeout": 5000, "journal_mode": "WAL", "synchronous": "FULL", "foreign_keys": "ON"}
OWNER_FIX = "make it the service user's (sudo chown -R opencall:opencall {folder}) or run as its owner"


class DatabaseError(Exception):
    """The database cannot be used; ``str()`` is one line naming it and the fix."""


def redacted(url: str) -> str:
    """``url`` with its password hidden."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def sqlite_path(database_url: str) -> Path | None:
    """The file of a ``sqlite://`` URL, else None."""
    return Path(database_url.removeprefix("sqlite://")) if database_url.startswith("sqlite://") else None


def tortoise_config(database_url: str) -> dict[str, Any]:
    """The Tortoise config for ``database_url`` (sqlite:// or postgres://)."""
    connection: str | dict[str, Any] = database_url
    path = sqlite_path(database_url)
    if path is not None:
        connection = {
            "engine": "tortoise.backends.sqlite",
            "credentials": {"file_path": str(path), **SQLITE_PRAGMAS},
        }
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": [MODELS_MODULE],
                "migrations": MIGRATIONS_MODULE,
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def check_sqlite_file(path: Path) -> None:
    """Raise :class:`DatabaseError` when this process cannot create or write the SQLite file ``path``
    (and its -wal/-shm files beside it)."""
    folder = path.parent
    if not folder.is_dir():
        why = "is not a folder" if folder.exists() else "does not exist"
        raise DatabaseError(f"database folder {folder} {why}; fix: check data_dir (or database_url) in the config, "
                            f"or start the service once: it creates data_dir")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatabaseError(f"database folder {folder} is not writable by this user; fix: "
                            + OWNER_FIX.format(folder=folder))
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise DatabaseError(f"database {path} is read-only for this user; fix: " + OWNER_FIX.format(folder=folder))


def _explain(url: str, exc: BaseException) -> DatabaseError:
    shown = redacted(url)
    path = sqlite_path(url)
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return DatabaseError(f"database {shown} did not answer within {CONNECT_TIMEOUT:g} s; fix: check database_url "
                             f"and that the database server runs and accepts connections")
    if path is not None and "locked" in text:
        return DatabaseError(f"database {path} is locked by another process; fix: stop that process (find it with: "
                             f"fuser -v {path}) and try again")
    if path is not None and "readonly" in text.replace(" ", "").replace("-", ""):
        return DatabaseError(f"database {path} is read-only for this user; fix: "
                             + OWNER_FIX.format(folder=path.parent))
    if path is not None:
        return DatabaseError(f"cannot open database {path}: {text}; fix: check data_dir and its permissions")
    return DatabaseError(f"cannot connect to database {shown}: {text}; fix: check database_url and that the "
                         f"database server runs")


async def connect(database_url: str) -> dict[str, Any]:
    """Set up Tortoise for ``database_url`` and make its connection now; returns the Tortoise config.

    Raises :class:`DatabaseError` (connections closed) when the database cannot be reached or opened."""
    path = sqlite_path(database_url)
    if path is not None:
        check_sqlite_file(path)
    config = tortoise_config(database_url)
    try:
        await Tortoise.init(config=config, _enable_global_fallback=True)
        # SQLite waits busy_timeout (5 s) for another process's lock and then says so: give it that long.
        timeout = CONNECT_TIMEOUT + (3 if path is not None else 0)
        await asyncio.wait_for(get_connection("default").create_connection(with_db=True), timeout)
    except Exception as exc:  # any driver error: one line, not a traceback
        await Tortoise.close_connections()
        raise _explain(database_url, exc) from None
    return config


async def open_database(database_url: str) -> None:
    """Connect, apply pending migrations and leave the connections open for the app."""
    config = await connect(database_url)
    try:
        await MigrationExecutor(get_connection("default"), config["apps"]).migrate(None)
    except Exception as exc:
        await Tortoise.close_connections()
        raise _explain(database_url, exc) from None


async def close_database() -> None:
    """Close every database connection."""
    await Tortoise.close_connections()
