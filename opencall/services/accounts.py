"""Accounts, their API keys and website sessions."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from cryptography.fernet import Fernet
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from opencall.db.models import ApiKey, Session, User
from opencall.services import passwords, validation
from opencall.services.clock import utcnow
from opencall.services.errors import Conflict, NotAuthenticated, NotFound

log = logging.getLogger("opencall.accounts")

API_KEY_PREFIX = "oc_"
SESSION_TTL = timedelta(days=30)
INVALID_LOGIN = "Invalid username or password"
USERNAME_KEY_MAX = 32  # User.username_key's length; validation.USERNAME_RE allows no longer name


def token_hash(text: str) -> str:
    """SHA-256 (hex) of a session token or API key: the only form in which the database holds them."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def password_stamp(password_hash: str) -> str:
    """A short digest of an account's password hash: a socket keeps it to notice a password reset."""
    return token_hash(password_hash)[:32]


def new_api_key() -> str:
    """``oc_`` + 32 hex characters from ``secrets``."""
    return API_KEY_PREFIX + secrets.token_hex(16)


async def _by_name(username: str) -> User | None:
    """The account named ``username`` in any case; None for a name no account can have (the column would refuse
    it, a 500 until fuzzing found it)."""
    key = username.strip().lower()
    return await User.get_or_none(username_key=key) if len(key) <= USERNAME_KEY_MAX else None


class Accounts:
    """Registration, login, API keys and sessions. Keys and session tokens are stored only as hashes."""

    def __init__(self, key_cipher: Fernet) -> None:
        self._cipher = key_cipher
        # Called with the user id after a key rotation (signaling disconnects sockets using the old key).
        self.key_rotation_listeners: list[Callable[[int], Awaitable[None]]] = []
        # Called with the token hash of an ended session (signaling disconnects the sockets it authenticated).
        self.session_end_listeners: list[Callable[[str], Awaitable[None]]] = []

    async def register(self, body: dict[str, Any]) -> User:
        """Create an account from api.md's register fields, with its first API key."""
        username = validation.username(validation.required_text(body, "username"))
        email = validation.email(validation.required_text(body, "email"))
        password = validation.password(validation.required_text(body, "password"))
        if await User.filter(username_key=username.lower()).exists():
            raise Conflict("Username already taken")
        if await User.filter(email=email).exists():
            raise Conflict("Email already registered")
        password_hash = await passwords.hash_password(password)
        try:
            async with in_transaction():
                user = await User.create(
                    username=username, username_key=username.lower(), email=email, password_hash=password_hash
                )
                await self._store_key(user, new_api_key())
        except IntegrityError:
            # Two registrations raced past the checks above; the unique index decided.
            raise Conflict("Username already taken or email already registered") from None
        log.info("account registered: %s", username)
        return user

    async def authenticate(self, username: str, password: str) -> User:
        """The account for this username and password, or NotAuthenticated; misses take as long as hits."""
        user = await _by_name(username)
        if not await passwords.verify_password(password, user.password_hash if user else None):
            raise NotAuthenticated(INVALID_LOGIN)
        assert user is not None
        return user

    async def user_for_api_key(self, key: str) -> User | None:
        """The owner of an API key, or None for an unknown or rotated key."""
        if not key.startswith(API_KEY_PREFIX) or len(key) > 64:
            return None
        record = await ApiKey.get_or_none(lookup_hash=token_hash(key)).prefetch_related("user")
        return record.user if record else None

    async def read_api_key(self, user: User) -> str:
        """The user's current API key, decrypted for the dashboard."""
        record = await ApiKey.get(user=user)
        return self._cipher.decrypt(record.encrypted_key.encode()).decode()

    async def regenerate_api_key(self, user: User) -> str:
        """Replace the user's API key; the old one stops working with this commit."""
        key = new_api_key()
        await self._store_key(user, key)
        log.info("api key rotated for %s", user.username)
        for listener in self.key_rotation_listeners:
            await listener(user.id)
        return key

    async def _store_key(self, user: User, key: str) -> None:
        encrypted = self._cipher.encrypt(key.encode()).decode()
        await ApiKey.update_or_create(
            defaults={"lookup_hash": token_hash(key), "encrypted_key": encrypted, "created_at": utcnow()},
            user=user,
        )

    async def start_session(self, user: User) -> str:
        """A new session token for ``user`` (a fresh id at every login)."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        await Session.create(token_hash=token_hash(token), user=user, created_at=now, expires_at=now + SESSION_TTL)
        await Session.filter(user=user, expires_at__lt=now).delete()
        return token

    async def user_for_session(self, token: str) -> User | None:
        """The user of a live session token, or None."""
        if not token or len(token) > 128:
            return None
        session = await Session.get_or_none(token_hash=token_hash(token)).prefetch_related("user")
        if session is None:
            return None
        if session.expires_at <= utcnow():
            await session.delete()
            return None
        return session.user

    async def end_session(self, token: str) -> None:
        """Destroy a session and disconnect the sockets it authenticated; unknown tokens are ignored."""
        if not token:
            return
        hashed = token_hash(token)
        await Session.filter(token_hash=hashed).delete()
        for listener in self.session_end_listeners:
            await listener(hashed)

    # -- administration (the ``opencall user`` commands) -------------------------------------------

    async def find(self, username: str) -> User:
        """The account named ``username`` (any case), or NotFound."""
        user = await _by_name(username)
        if user is None:
            raise NotFound(f"no user named {username.strip()!r}")
        return user

    async def list_users(self) -> list[User]:
        """Every account, oldest first."""
        return await User.all().order_by("id")

    async def remove(self, username: str) -> User:
        """Delete an account with its API key, sessions and invites; its call records stay, unlinked. A running
        server closes the account's sockets at its next credential sweep (signaling/revocation.py)."""
        user = await self.find(username)
        await user.delete()
        log.info("account removed: %s", user.username)
        return user

    async def reset_password(self, username: str, password: str, *, rotate_key: bool = False
                             ) -> tuple[User, str | None]:
        """Set a new password and end every session of the account; with ``rotate_key`` also replace its API
        key. Returns the account and its new key (None when the old one keeps working). A running server closes
        every socket of the account at its next credential sweep (signaling/revocation.py)."""
        user = await self.find(username)
        user.password_hash = await passwords.hash_password(validation.password(password))
        key = new_api_key() if rotate_key else None
        async with in_transaction():
            await user.save(update_fields=["password_hash"])
            await Session.filter(user=user).delete()
            if key is not None:
                await self._store_key(user, key)
        log.info("password reset for %s%s", user.username, " and api key rotated" if key else "")
        return user, key
