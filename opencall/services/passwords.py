"""Password hashing with scrypt (cryptography's Scrypt KDF), run off the event loop."""

from __future__ import annotations

import asyncio
import base64
import hmac
import secrets

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

# scrypt N=2^15, r=8, p=1: 32 MiB and ~0.1 s per hash on a small home server (RFC 7914 §2 parameters).
N, R, P, LENGTH = 2**15, 8, 1, 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=LENGTH, n=n, r=r, p=p).derive(password.encode("utf-8"))


def hash_password_sync(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` for a new random salt."""
    salt = secrets.token_bytes(16)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(_derive(password, salt, N, R, P))}"


def verify_password_sync(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; constant-time comparison."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        derived = _derive(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(derived, base64.b64decode(digest))


# Verified when the username does not exist, so a miss takes as long as a wrong password.
DUMMY_HASH = hash_password_sync(secrets.token_hex(8))


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(hash_password_sync, password)


async def verify_password(password: str, stored: str | None) -> bool:
    return await asyncio.to_thread(verify_password_sync, password, stored or DUMMY_HASH) and bool(stored)
