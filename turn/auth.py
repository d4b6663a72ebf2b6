"""Long-term credentials (RFC 8489 §9.2) with the time-limited usernames of :mod:`turn.credentials`.

Nothing is stored per client. The password of a username is recomputed from the shared secret, its expiry is
read from the username and checked on every request, and nonces are HMAC-signed timestamps bound to the
client's IP address, so any node holding the secret can check them and none has to remember them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from turn.credentials import credential_for, parse_username
from turn.stun import Decoded, check_integrity

_NONCE_TIME = struct.Struct("!I")
_NONCE_TAG = 8  # bytes of HMAC kept in a nonce: 64 bits cannot be guessed in a nonce's lifetime


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of checking a request: an error code to answer with, or the key and username."""

    code: int | None = None  # 400, 401 or 438 (RFC 8489 §9.2.4); None when the request is authentic
    key: bytes | None = None  # the MESSAGE-INTEGRITY key, for the response too
    username: str = ""
    user: str = ""


class Authenticator:
    """Checks MESSAGE-INTEGRITY, the username's expiry and the nonce of each request (RFC 8489 §9.2.4)."""

    def __init__(
        self,
        secret: str,
        realm: str,
        nonce_lifetime: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret
        self.realm = realm
        self.nonce_lifetime = nonce_lifetime
        self.clock = clock  # wall-clock seconds: usernames carry a Unix expiry time
        self._nonce_key = hmac.new(secret.encode(), b"turn nonce", hashlib.sha256).digest()

    def nonce(self, client_ip: str) -> str:
        """A fresh nonce for ``client_ip``: its expiry time and an HMAC over both (RFC 8489 §9.2)."""
        expiry = _NONCE_TIME.pack(int(self.clock()) + self.nonce_lifetime)
        tag = hmac.new(self._nonce_key, expiry + client_ip.encode(), hashlib.sha256).digest()[:_NONCE_TAG]
        return base64.urlsafe_b64encode(expiry + tag).decode("ascii")

    def nonce_is_valid(self, nonce: bytes, client_ip: str) -> bool:
        """Whether ``nonce`` was made by :meth:`nonce` for ``client_ip`` and has not expired."""
        try:
            raw = base64.urlsafe_b64decode(nonce)
        except (ValueError, binascii.Error):
            return False
        if len(raw) != _NONCE_TIME.size + _NONCE_TAG:
            return False
        expiry = raw[: _NONCE_TIME.size]
        tag = hmac.new(self._nonce_key, expiry + client_ip.encode(), hashlib.sha256).digest()[:_NONCE_TAG]
        return hmac.compare_digest(tag, raw[_NONCE_TIME.size :]) and (
            _NONCE_TIME.unpack(expiry)[0] > self.clock()
        )

    def key_for(self, username: str) -> bytes:
        """The long-term key MD5(username:realm:password) of RFC 8489 §9.2.2, password from the secret."""
        password = credential_for(self.secret, username)
        return hashlib.md5(f"{username}:{self.realm}:{password}".encode(), usedforsecurity=False).digest()

    def check(self, request: Decoded, client_ip: str) -> Verdict:
        """Authenticate ``request`` in the order of RFC 8489 §9.2.4."""
        attributes = request.attributes
        if "MESSAGE-INTEGRITY" not in attributes:
            return Verdict(401)
        username = attributes.get("USERNAME")
        if username is None or "REALM" not in attributes or "NONCE" not in attributes:
            return Verdict(400)
        if not self.nonce_is_valid(attributes["NONCE"], client_ip):
            return Verdict(438)
        parsed = parse_username(username)
        if attributes["REALM"] != self.realm or parsed is None or parsed[0] < self.clock():
            return Verdict(401, username=username)
        key = self.key_for(username)
        if not check_integrity(request, key):
            return Verdict(401, username=username)
        return Verdict(None, key, username, parsed[1])
