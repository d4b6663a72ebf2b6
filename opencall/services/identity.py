"""How a party is named to others: verified by its account, or only by what it typed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    """Who is behind a Call ID, as far as the box knows: the relay principal (``user-<id>``, ``anon-<hex>``)
    and the name to list it under."""

    principal: str | None
    label: str | None


def verified_label(username: str | None, display_name: str | None, call_id: str) -> str:
    """The account name of a signed-in party, else ``Unverified: <typed name or Call ID>``."""
    return username or f"Unverified: {display_name or call_id}"


def account_principal(user_id: int) -> str:
    """The relay principal of an account: its id, which its owner cannot change."""
    return f"user-{user_id}"
