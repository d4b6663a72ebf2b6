"""``opencall user add|remove|reset-password|list``: account administration on the configured database."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from opencall.config import Config
from opencall.db.models import User
from opencall.db.setup import close_database, open_database
from opencall.services.accounts import Accounts
from opencall.services.errors import ServiceError
from opencall.services.secrets_store import api_key_cipher
from opencall.signaling.revocation import SWEEP_INTERVAL

T = TypeVar("T")
_SOCKETS_CLOSE = f"its connected sockets close within {SWEEP_INTERVAL:g} s"


class UserCommandError(Exception):
    """A user command that could not be carried out; the message is for the operator."""


def read_password(prompt: str = "Password") -> str:
    """A new password: asked twice on a terminal, else the first line of standard input."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise UserCommandError("no password on standard input")
        return line.rstrip("\r\n")
    first = getpass.getpass(f"{prompt}: ")
    if getpass.getpass(f"{prompt} (again): ") != first:
        raise UserCommandError("the passwords do not match")
    return first


async def _with_accounts(config: Config, action: Callable[[Accounts], Awaitable[T]]) -> T:
    if not config.data_dir.is_dir():  # it holds the key that encrypts API keys, and the SQLite database
        raise UserCommandError(f"data_dir {config.data_dir} does not exist; fix: pass the config of the running "
                               f"server (--config PATH), or start the service once: it creates data_dir")
    await open_database(config.resolved_database_url)
    try:
        return await action(Accounts(api_key_cipher(config.data_dir)))
    except ServiceError as exc:
        raise UserCommandError(str(exc)) from None
    finally:
        await close_database()


async def add(config: Config, username: str, email: str, password: str) -> str:
    """Create an account; returns the line to print (with its API key)."""

    async def action(accounts: Accounts) -> str:
        user = await accounts.register({"username": username, "email": email, "password": password})
        return f"user {user.username} added; API key: {await accounts.read_api_key(user)}"

    return await _with_accounts(config, action)


async def remove(config: Config, username: str) -> str:
    """Delete an account; a running server closes its sockets within the credential sweep's interval."""

    async def action(accounts: Accounts) -> str:
        user = await accounts.remove(username)
        return f"user {user.username} removed; {_SOCKETS_CLOSE}"

    return await _with_accounts(config, action)


async def reset_password(config: Config, username: str, password: str, rotate_key: bool = False) -> str:
    """Set a new password and sign out every session (with ``rotate_key``, replace the API key too); a running
    server closes every socket of the account within the credential sweep's interval."""

    async def action(accounts: Accounts) -> str:
        user, key = await accounts.reset_password(username, password, rotate_key=rotate_key)
        kept = f"new API key: {key}" if key else "its API key keeps working (--rotate-key replaces it)"
        return f"password of {user.username} changed; its sessions were signed out and {_SOCKETS_CLOSE}; {kept}"

    return await _with_accounts(config, action)


def _row(user: User) -> str:
    created = f"{user.created_at:%Y-%m-%d %H:%M}" if user.created_at else "-"
    return f"{user.username:<32} {user.email:<40} {user.call_id or '-':<8} {created}"


async def list_users(config: Config) -> str:
    async def action(accounts: Accounts) -> str:
        users = await accounts.list_users()
        header = f"{'USERNAME':<32} {'EMAIL':<40} {'CALL ID':<8} CREATED (UTC)"
        return "\n".join([header, *map(_row, users), f"{len(users)} user(s)"])

    return await _with_accounts(config, action)
