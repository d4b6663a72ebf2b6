"""Ids of anonymous browsers, minted by the server and signed, so that a browser cannot choose its own.

The id (``anon-`` and 12 hex digits) names the browser in logs, in invite claims and as the user of its relay
credentials; the cookie carries it with an HMAC tag: ``anon-0123456789ab.<16 hex digits>``. A cookie whose tag
does not match is ignored and a fresh id is minted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "anon-"
_ID_HEX = 12
_TAG_HEX = 16


class AnonymousIds:
    """Mints and checks anonymous ids under a server-side key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_secret(cls, secret: str) -> AnonymousIds:
        """Ids signed with a key derived from a server secret (the TURN secret of data_dir)."""
        return cls(hmac.new(secret.encode(), b"opencall anonymous id", hashlib.sha256).digest())

    def mint(self) -> str:
        """A cookie value holding a fresh id."""
        ident = PREFIX + secrets.token_hex(_ID_HEX // 2)
        return f"{ident}.{self._tag(ident)}"

    def verify(self, cookie: str | None) -> str | None:
        """The id inside a cookie value made by :meth:`mint`; None for anything else."""
        ident, _, tag = (cookie or "").partition(".")
        digits = ident[len(PREFIX):]
        if (not ident.startswith(PREFIX) or len(digits) != _ID_HEX or len(tag) != _TAG_HEX
                or not all(c in "0123456789abcdef" for c in digits)):
            return None
        return ident if hmac.compare_digest(tag, self._tag(ident)) else None

    def _tag(self, ident: str) -> str:
        return hmac.new(self._key, ident.encode(), hashlib.sha256).hexdigest()[:_TAG_HEX]
