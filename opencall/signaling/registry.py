"""Who is connected: each socket's identity, and which sockets answer to which Call ID."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from opencall.services.identity import Identity, verified_label
from opencall.signaling.live import Peer


class Registry:
    """Connected sockets by sid and registered sockets by Call ID; also the Presence the REST API reads."""

    def __init__(self) -> None:
        self.peers: dict[str, Peer] = {}
        self._by_call_id: dict[str, set[str]] = defaultdict(set)
        self._by_user: dict[int, set[str]] = defaultdict(set)
        self._by_principal: dict[str, set[str]] = defaultdict(set)

    def connect(self, peer: Peer) -> None:
        self.peers[peer.sid] = peer
        if peer.user_id is not None:
            self._by_user[peer.user_id].add(peer.sid)
        if peer.principal is not None:
            self._by_principal[peer.principal].add(peer.sid)

    def register(self, peer: Peer, call_id: str) -> None:
        if peer.call_id and peer.call_id != call_id:
            self._discard(self._by_call_id, peer.call_id, peer.sid)
        peer.call_id = call_id
        self._by_call_id[call_id].add(peer.sid)

    def disconnect(self, sid: str) -> Peer | None:
        peer = self.peers.pop(sid, None)
        if peer is None:
            return None
        if peer.call_id:
            self._discard(self._by_call_id, peer.call_id, sid)
        if peer.user_id is not None:
            self._discard(self._by_user, peer.user_id, sid)
        if peer.principal is not None:
            self._discard(self._by_principal, peer.principal, sid)
        return peer

    def sockets_of(self, call_id: str) -> list[Peer]:
        """The registered sockets that answer to ``call_id`` (several for an account with many tabs)."""
        return [self.peers[sid] for sid in self._by_call_id.get(call_id, ())]

    def sockets_of_user(self, user_id: int) -> list[Peer]:
        return [self.peers[sid] for sid in self._by_user.get(user_id, ())]

    def sockets_of_principal(self, principal: str) -> list[Peer]:
        """The connected sockets of the account or anonymous browser that relay credentials name."""
        return [self.peers[sid] for sid in self._by_principal.get(principal, ())]

    def identity_of(self, call_id: str) -> Identity | None:
        """Who uses ``call_id`` now: the relay principal and the name others are shown (blocks.py)."""
        peers = self.sockets_of(call_id)
        if not peers:
            return None
        peer = peers[0]
        return Identity(peer.principal, verified_label(peer.username, peer.display_name, call_id))

    def live_calls(self) -> dict[str, int]:
        """Calls in progress by state (``ringing``, ``active``), counted once however many sockets share them."""
        calls = {id(peer.call): peer.call for peer in self.peers.values() if peer.call is not None}
        counts = {"ringing": 0, "active": 0}
        for call in calls.values():
            if call.state in counts:
                counts[call.state] += 1
        return counts

    def online_call_id(self, user_id: int) -> str | None:
        """Presence: the Call ID of a registered socket of this account, or None."""
        for peer in self.sockets_of_user(user_id):
            if peer.call_id:
                return peer.call_id
        return None

    @staticmethod
    def _discard(index: dict[Any, set[str]], key: object, sid: str) -> None:
        sids = index.get(key)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del index[key]
