"""Who is online: the seam between the REST services and the live signaling registry."""

from __future__ import annotations

from typing import Protocol


class Presence(Protocol):
    """Answers whether an account has a connected, registered socket, and under which Call ID."""

    def online_call_id(self, user_id: int) -> str | None:
        """The Call ID the user is reachable at now, or None when offline."""
        ...

