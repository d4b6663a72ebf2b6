"""Allocations, permissions and channel bindings (RFC 8656 §6, §9, §12): state only, no I/O, no clock.

Every method that depends on time takes ``now``; the caller owns the clock. The relay's hot path reads
:attr:`Allocation.to_peer` and :attr:`Allocation.to_client` directly, so they always hold exactly the channels
whose binding *and* permission are live, and are mutated in place, never replaced.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from turn.counters import Counters

Address = tuple[str, int]
FiveTuple = tuple[str, Any, Any]  # (transport, server address, client address), RFC 8656 §2
MAX_PERMISSIONS = 128  # per allocation; more is refused with 508 (RFC 8656 §10.2)


class RelaySocket(Protocol):
    """What the state keeps of an allocation's relay socket: the server sends through it and closes it."""

    def sendto(self, data: bytes, addr: Address) -> None: ...

    def set_dont_fragment(self) -> None: ...

    def prune(self) -> None: ...

    def close(self) -> None: ...


@dataclass(slots=True, eq=False)
class Channel:
    number: int
    peer: Address
    expires_at: float


class Allocation:
    """One client's allocation, identified by its 5-tuple (RFC 8656 §2, §6)."""

    __slots__ = (
        "channel_by_peer",
        "channels",
        "counters",
        "dont_fragment",
        "expires_at",
        "family",
        "five_tuple",
        "permissions",
        "refusal_logged",
        "relay",
        "relayed",
        "reservation_token",
        "source",
        "to_client",
        "to_peer",
        "transaction_id",
        "user",
        "username",
    )

    def __init__(
        self,
        five_tuple: FiveTuple,
        username: str,
        user: str,
        transaction_id: bytes,
        family: int,
        expires_at: float,
        counters: Counters,
        source: str,
    ) -> None:
        self.five_tuple = five_tuple
        self.source = source  # the client's IP address, for the per-address quota
        self.username = username  # requests on this allocation must use it (441 otherwise, RFC 8656 §5)
        self.user = user  # the user id inside the username, for the per-user quota
        self.transaction_id = transaction_id  # of the Allocate, to recognise its retransmissions
        self.family = family
        self.expires_at = expires_at
        self.counters = counters
        self.relayed: Address | None = None  # set once the relay socket is bound
        self.relay: RelaySocket | None = None
        self.dont_fragment = False
        self.reservation_token: bytes | None = None
        self.refusal_logged = False  # a refused peer is logged once per allocation, then only counted
        self.permissions: dict[str, float] = {}  # peer IP -> expiry (RFC 8656 §9)
        self.channels: dict[int, Channel] = {}
        self.channel_by_peer: dict[Address, Channel] = {}
        self.to_peer: dict[int, Address] = {}  # live channel number -> peer
        self.to_client: dict[Address, int] = {}  # peer -> live channel number

    def refresh(self, now: float, lifetime: float) -> None:
        """Set the time-to-expiry to ``lifetime`` seconds from ``now`` (RFC 8656 §8.2)."""
        self.expires_at = now + lifetime

    def has_room_for(self, ips: set[str]) -> bool:
        """Whether permissions for all of ``ips`` fit under MAX_PERMISSIONS."""
        return len(self.permissions) + len(ips - self.permissions.keys()) <= MAX_PERMISSIONS

    def permit(self, ip: str, until: float) -> bool:
        """Install or refresh the permission for ``ip`` (RFC 8656 §9); False when at MAX_PERMISSIONS."""
        if ip not in self.permissions:
            if len(self.permissions) >= MAX_PERMISSIONS:
                return False
            self.counters.permissions += 1
            self.permissions[ip] = until
            for channel in self.channels.values():
                if channel.peer[0] == ip:
                    self._route(channel)
        else:
            self.permissions[ip] = max(self.permissions[ip], until)
        return True

    def can_bind(self, number: int, peer: Address) -> bool:
        """Whether ``number`` may be bound to ``peer``: neither is bound to something else (RFC 8656 §12.2)."""
        channel = self.channels.get(number)
        if channel is not None:
            return channel.peer == peer
        return peer not in self.channel_by_peer

    def bind(self, number: int, peer: Address, until: float) -> None:
        """Bind or refresh channel ``number`` to ``peer`` until ``until``; check :meth:`can_bind` first."""
        channel = self.channels.get(number)
        if channel is None:
            channel = Channel(number, peer, until)
            self.channels[number] = channel
            self.channel_by_peer[peer] = channel
            self.counters.channels += 1
            if peer[0] in self.permissions:
                self._route(channel)
        else:
            channel.expires_at = until

    def expire(self, now: float) -> None:
        """Drop the permissions and channels whose time has come (RFC 8656 §9, §12)."""
        for number in [n for n, ch in self.channels.items() if ch.expires_at <= now]:
            channel = self.channels.pop(number)
            del self.channel_by_peer[channel.peer]
            self._unroute(channel)
            self.counters.channels -= 1
        for ip in [ip for ip, until in self.permissions.items() if until <= now]:
            del self.permissions[ip]
            self.counters.permissions -= 1
            for channel in self.channels.values():
                if channel.peer[0] == ip:
                    self._unroute(channel)

    def clear(self) -> None:
        """Forget every permission and channel (the allocation is going away)."""
        self.counters.permissions -= len(self.permissions)
        self.counters.channels -= len(self.channels)
        self.permissions.clear()
        self.channels.clear()
        self.channel_by_peer.clear()
        self.to_peer.clear()
        self.to_client.clear()

    def _route(self, channel: Channel) -> None:
        self.to_peer[channel.number] = channel.peer
        self.to_client[channel.peer] = channel.number

    def _unroute(self, channel: Channel) -> None:
        self.to_peer.pop(channel.number, None)
        self.to_client.pop(channel.peer, None)


@dataclass(frozen=True, slots=True)
class Reservation:
    """A port held for a later Allocate by EVEN-PORT's R bit (RFC 8656 §7.2): it counts like an allocation."""

    user: str
    source: str
    expires_at: float


class AllocationTable:
    """Every allocation by 5-tuple, with the quotas of the config (486, RFC 8656 §7.2): in all, per user and
    per client IP address. A port reserved by EVEN-PORT counts against them as an allocation does."""

    def __init__(self, counters: Counters, max_allocations: int, max_per_user: int, max_per_ip: int) -> None:
        self.counters = counters
        self.max_allocations = max_allocations
        self.max_per_user = max_per_user
        self.max_per_ip = max_per_ip
        self._by_five_tuple: dict[FiveTuple, Allocation] = {}
        self._per_user: dict[str, int] = {}
        self._per_ip: dict[str, int] = {}
        self._reservations: dict[bytes, Reservation] = {}

    def __len__(self) -> int:
        return len(self._by_five_tuple)

    def __iter__(self) -> Iterator[Allocation]:
        return iter(list(self._by_five_tuple.values()))

    def get(self, five_tuple: FiveTuple) -> Allocation | None:
        """The allocation of ``five_tuple``, if any."""
        return self._by_five_tuple.get(five_tuple)

    def has_room_for(self, user: str, source: str) -> bool:
        """Whether one more allocation for ``user`` from the IP address ``source`` fits under the quotas."""
        return (
            len(self._by_five_tuple) + len(self._reservations) < self.max_allocations
            and self._per_user.get(user, 0) < self.max_per_user
            and self._per_ip.get(source, 0) < self.max_per_ip
        )

    def add(self, allocation: Allocation) -> None:
        """Register ``allocation``; check :meth:`has_room_for` first."""
        assert allocation.five_tuple not in self._by_five_tuple
        self._by_five_tuple[allocation.five_tuple] = allocation
        self._count(allocation.user, allocation.source, 1)
        self.counters.allocations += 1
        self.counters.allocations_created += 1

    def remove(self, allocation: Allocation) -> None:
        """Forget ``allocation`` and its permissions and channels; nothing when it is already gone."""
        if self._by_five_tuple.get(allocation.five_tuple) is not allocation:
            return
        del self._by_five_tuple[allocation.five_tuple]
        self._count(allocation.user, allocation.source, -1)
        allocation.clear()
        self.counters.allocations -= 1

    def reserve(self, token: bytes, user: str, source: str, until: float) -> None:
        """Count the port reserved under ``token`` for ``user`` at ``source`` until ``until``."""
        self._reservations[token] = Reservation(user, source, until)
        self._count(user, source, 1)

    def unreserve(self, token: bytes) -> None:
        """Stop counting the reservation of ``token`` (claimed by an Allocate); nothing when there is none."""
        reservation = self._reservations.pop(token, None)
        if reservation is not None:
            self._count(reservation.user, reservation.source, -1)

    def _count(self, user: str, source: str, step: int) -> None:
        for counts, key in ((self._per_user, user), (self._per_ip, source)):
            left = counts.get(key, 0) + step
            if left:
                counts[key] = left
            else:
                del counts[key]

    def expire(self, now: float) -> list[Allocation]:
        """Expire reservations, permissions and channels everywhere; remove and return the allocations that
        expired."""
        for token in [t for t, reservation in self._reservations.items() if reservation.expires_at <= now]:
            self.unreserve(token)
        gone = []
        for allocation in list(self._by_five_tuple.values()):
            if allocation.expires_at <= now:
                self.remove(allocation)
                gone.append(allocation)
            else:
                allocation.expire(now)
        return gone
