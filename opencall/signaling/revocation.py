"""Revocation that reaches the socket: a socket whose credential stopped working is closed.

A socket authenticates once, at connect (signaling/sockets.py), with a session cookie or an API key; its
:class:`~opencall.signaling.registry.Peer` keeps the SHA-256 of that credential and a stamp of the account's
password. What this process changes acts at once (a logout or a new login ends a session:
``CallService.session_ended``; a key rotation: ``CallService.key_rotated``). What another writer of the database
changes — ``opencall user reset-password|remove`` in another process, another node, an operator's SQL — is found by
the sweep: every :data:`SWEEP_INTERVAL` seconds two queries look up the credentials of the connected (and held)
authenticated sockets, and the sockets whose session ended or expired, whose key was rotated, whose account was
removed (its sessions and key go with it) or whose password was reset are revoked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence

from opencall.db.models import ApiKey, Session
from opencall.services.accounts import password_stamp
from opencall.services.clock import utcnow
from opencall.services.tasks import cancel
from opencall.signaling.calls import CallService
from opencall.signaling.live import Peer

log = logging.getLogger("opencall.signaling")

# The longest a socket outlives a credential revoked by another process (docs/security.md).
SWEEP_INTERVAL = 2.0
# Bound parameters per query: SQLite builds before 3.32 allow no more than 999.
CHUNK = 500
# (user id, password stamp) of a credential that is still valid, by its hash.
Holders = dict[str, tuple[int, str]]


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield list(items[start:start + CHUNK])


async def _live_sessions(hashes: Sequence[str]) -> Holders:
    now = utcnow()
    found: Holders = {}
    for chunk in _chunks(hashes):
        rows = await Session.filter(token_hash__in=chunk, expires_at__gt=now).values_list(
            "token_hash", "user_id", "user__password_hash")
        found.update((token, (user_id, password_stamp(password))) for token, user_id, password in rows)
    return found


async def _live_keys(hashes: Sequence[str]) -> Holders:
    found: Holders = {}
    for chunk in _chunks(hashes):
        rows = await ApiKey.filter(lookup_hash__in=chunk).values_list("lookup_hash", "user_id", "user__password_hash")
        found.update((key, (user_id, password_stamp(password))) for key, user_id, password in rows)
    return found


async def revoked(peers: Sequence[Peer]) -> list[tuple[Peer, str]]:
    """The authenticated ``peers`` whose credential is no longer valid in the database, each with the reason:
    one query for the sessions and one for the API keys (per :data:`CHUNK` sockets), each joined to its account."""
    sessions = await _live_sessions(sorted({peer.session_hash for peer in peers if peer.session_hash}))
    keys = await _live_keys(sorted({peer.api_key_hash for peer in peers if peer.api_key_hash}))
    stale = []
    for peer in peers:
        if peer.session_hash:
            holder, gone = sessions.get(peer.session_hash), "its session expired or was ended by another process"
        else:  # an authenticated socket without either hash cannot exist; were it to, it is revoked
            holder, gone = keys.get(peer.api_key_hash or ""), "its API key was rotated or removed by another process"
        if holder is None:
            stale.append((peer, gone))
        elif holder != (peer.user_id, peer.password_stamp):
            stale.append((peer, "its account's password was reset"))
    return stale


class CredentialSweep:
    """Every ``interval`` seconds, revokes the sockets whose credential another writer of the database revoked."""

    def __init__(self, signaling: CallService, interval: float = SWEEP_INTERVAL) -> None:
        self._signaling = signaling
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="credential-sweep")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def sweep(self) -> int:
        """One pass over the authenticated sockets; returns how many it revoked."""
        peers = self._signaling.credentialed()
        if not peers:
            return 0
        stale = await revoked(peers)
        for peer, reason in stale:
            await self._signaling.revoke([peer], reason)
        return len(stale)

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sweep()
            except Exception:
                if not failing:  # once per outage, not every interval
                    log.exception("credential sweep failed; retrying every %ss", self._interval)
                failing = True
            else:
                if failing:
                    log.info("credential sweep works again")
                failing = False
