"""Field rules shared by the services (api.md's tables)."""

from __future__ import annotations

import re
from typing import Any

from opencall.services.errors import InvalidInput

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{2,32}$")
# A practical address check (RFC 5321 lengths, one @, a dotted domain); delivery is not our job.
EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
MIN_PASSWORD = 6
MAX_PASSWORD = 1024


def required_text(body: dict[str, Any], name: str) -> str:
    """``body[name]`` as a string, or InvalidInput naming the field."""
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput(f"{name} is required")
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string")
    return value


def storable(value: str, name: str) -> str:
    """``value`` if UTF-8 can encode it: JSON may carry a lone surrogate (``"\\ud800"``), which no column or log
    line can hold."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidInput(f"{name} must be valid Unicode text") from None
    return value


def username(value: str) -> str:
    value = value.strip()
    if not USERNAME_RE.match(value):
        raise InvalidInput("username must be 2-32 characters: letters, numbers, _ . - only")
    return value


def email(value: str) -> str:
    value = value.strip().lower()
    if len(value) > 254 or not EMAIL_RE.match(value) or len(value.split("@", 1)[0]) > 64:
        raise InvalidInput("email must be a valid email address")
    return value


def password(value: str) -> str:
    if len(value) < MIN_PASSWORD:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD} characters")
    if len(value) > MAX_PASSWORD:
        raise InvalidInput(f"password must be at most {MAX_PASSWORD} characters")
    return value
