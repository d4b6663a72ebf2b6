"""Key material kept in data_dir: created once with 0600 permissions, read on every start."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

API_KEY_ENCRYPTION_FILE = "api-key-encryption.key"
TURN_SECRET_FILE = "turn-secret"  # noqa: S105 - a file name, not a secret


def _load_or_create(path: Path, make: bytes) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(make + b"\n")
    return make


def api_key_cipher(data_dir: Path) -> Fernet:
    """The Fernet cipher that encrypts the displayable copy of each API key."""
    return Fernet(_load_or_create(data_dir / API_KEY_ENCRYPTION_FILE, Fernet.generate_key()))


def turn_secret(data_dir: Path, configured: str | None) -> str:
    """``turn.secret`` when set, else the secret generated once into data_dir."""
    if configured:
        return configured
    return _load_or_create(data_dir / TURN_SECRET_FILE, secrets.token_hex(32).encode()).decode()
