"""Resume tokens: how a new socket takes over the session of one that dropped (docs/api.md "Session resume").

A phone that changes network (Wi-Fi roaming to another subnet) loses its Socket.IO connection; its new
connection presents the token it was given in ``session`` to keep its Call ID and its place in a call. Tokens are
single-use and random (``secrets.token_urlsafe(24)``); only their SHA-256 is kept, so a look-up by dictionary
key compares no secret text. A token stays valid while its socket is connected and for the grace after the
socket went away.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import deque
from collections.abc import Callable

from opencall.signaling.live import Peer

TOKEN_BYTES = 24
TOKEN_MAX = 128  # longer than any token we issue: not worth hashing


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ResumeTokens:
    """The live resume token of each session, by SHA-256."""

    def __init__(self, grace: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._grace = grace
        self._clock = clock
        self._peers: dict[str, Peer] = {}
        # (expiry, key) of the sockets that went away, in expiry order (the grace is the same for all).
        self._expiring: deque[tuple[float, str]] = deque()

    def __len__(self) -> int:
        return len(self._peers)

    def issue(self, peer: Peer) -> str:
        """A new token for ``peer``'s session; its previous one, if any, stops working."""
        self._prune()
        self.revoke(peer)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        peer.resume_key = _key(token)
        self._peers[peer.resume_key] = peer
        return token

    def find(self, token: str) -> Peer | None:
        """The session ``token`` resumes, if it is still valid; the token is not used up (see :meth:`revoke`)."""
        self._prune()
        if not token or len(token) > TOKEN_MAX:
            return None
        return self._peers.get(_key(token))

    def revoke(self, peer: Peer) -> None:
        """``peer``'s token stops working (it was used, or the session may not be resumed)."""
        if peer.resume_key is not None:
            self._peers.pop(peer.resume_key, None)
            peer.resume_key = None

    def gone(self, peer: Peer) -> None:
        """``peer``'s socket went away: its token works for the grace, then expires."""
        if peer.resume_key is not None:
            self._expiring.append((self._clock() + self._grace, peer.resume_key))

    def _prune(self) -> None:
        now = self._clock()
        while self._expiring and self._expiring[0][0] <= now:
            _, key = self._expiring.popleft()
            peer = self._peers.pop(key, None)
            if peer is not None:
                peer.resume_key = None
