"""Open, migrate and close the database with Tortoise's built-in migrations."""

from __future__ import annotations

from typing import Any

from tortoise import Tortoise
from tortoise.migrations.api import migrate

MODELS_MODULE = "opencall.db.models"
MIGRATIONS_MODULE = "opencall.db.migrations"

# SQLite runs in WAL mode with synchronous=FULL: the appliance writes a handful of rows per call, so an
# fsync per commit costs nothing noticeable, and a home server that loses power keeps every account,
# key rotation and call record that was acknowledged (NORMAL could drop the last commits).
SQLITE_PRAGMAS = {"journal_mode": "WAL", "synchronous": "FULL", "foreign_keys": "ON", "busy_timeout": 5000}


def tortoise_config(database_url: str) -> dict[str, Any]:
    """The Tortoise config for ``database_url`` (sqlite:// or postgres://)."""
    connection: str | dict[str, Any] = database_url
    if database_url.startswith("sqlite://"):
        connection = {
            "engine": "tortoise.backends.sqlite",
            "credentials": {"file_path": database_url.removeprefix("sqlite://"), **SQLITE_PRAGMAS},
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


async def open_database(database_url: str) -> None:
    """Apply pending migrations, then open the connections for the app."""
    config = tortoise_config(database_url)
    await migrate(config=config)
    await Tortoise.close_connections()
    await Tortoise.init(config=config, _enable_global_fallback=True)


async def close_database() -> None:
    """Close every database connection."""
    await Tortoise.close_connections()
