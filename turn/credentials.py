"""Time-limited TURN credentials in the style of the TURN REST API (draft-uberti-behave-turn-rest-00).

``username = "<unix-expiry>:<user-id>"`` and ``credential = base64(HMAC-SHA1(secret, username))``. The relay
recomputes the credential from the username, so no per-user state is shared between app and relay.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import NamedTuple


class TurnCredentials(NamedTuple):
    username: str
    credential: str
    expires_at: int


def credential_for(secret: str, username: str) -> str:
    """The password that goes with ``username`` under ``secret``."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def make_credentials(secret: str, user: str, ttl: int, now: float | None = None) -> TurnCredentials:
    """Mint a username/credential pair for ``user`` that expires ``ttl`` seconds from ``now``."""
    if ":" in user:
        raise ValueError("user id must not contain ':'")
    expires_at = int(now if now is not None else time.time()) + ttl
    username = f"{expires_at}:{user}"
    return TurnCredentials(username, credential_for(secret, username), expires_at)


MAX_EXPIRY_DIGITS = 12  # a Unix time; far longer ones would hit int()'s digit limit (a ValueError)


def parse_username(username: str) -> tuple[int, str] | None:
    """Split a time-limited username into (expiry, user id); None when it is not of that shape.

    The expiry must be ASCII digits: ``str.isdigit`` alone also accepts digits such as ``²`` that ``int``
    refuses.
    """
    expiry, sep, user = username.partition(":")
    if not sep or not user or not expiry.isascii() or not expiry.isdigit() or len(expiry) > MAX_EXPIRY_DIGITS:
        return None
    return int(expiry), user
