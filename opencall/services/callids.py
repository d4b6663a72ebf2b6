"""Call IDs: 8 characters from an alphabet without I, O, 0 or 1 (api.md "Conventions")."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

from tortoise.exceptions import IntegrityError

from opencall.db.models import User

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CALL_ID_RE = re.compile(r"^[A-HJ-NP-Z2-9]{8}$")
LENGTH = 8


def new_call_id() -> str:
    """A random Call ID from ``secrets`` (32^8 ≈ 1.1e12 possibilities)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def is_call_id(value: object) -> bool:
    return isinstance(value, str) and CALL_ID_RE.match(value) is not None


async def is_assigned(call_id: str) -> bool:
    """Whether an account owns ``call_id`` as its permanent Call ID."""
    return await User.filter(call_id=call_id).exists()


async def permanent_call_id(user: User, in_use: Callable[[str], bool]) -> str:
    """The account's permanent Call ID, assigned on first use; the unique index keeps it one account's.
    ``in_use`` tells which IDs live anonymous sockets hold, so a new permanent ID never collides with one."""
    if user.call_id:
        return user.call_id
    while True:
        candidate = new_call_id()
        if in_use(candidate):
            continue
        try:
            updated = await User.filter(id=user.id, call_id=None).update(call_id=candidate)
        except IntegrityError:
            continue  # another account holds it: draw again
        if not updated:  # assigned concurrently by another connection of the same account
            await user.refresh_from_db(fields=["call_id"])
            assert user.call_id is not None
            return user.call_id
        user.call_id = candidate
        return candidate
