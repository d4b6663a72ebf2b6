"""One handler per STUN method (RFC 8489 Binding; RFC 8656 Allocate, Refresh, CreatePermission, ChannelBind,
Send). Handlers decide; they touch no socket. Relay sockets are opened and released through
:class:`RelaySockets`, which the server implements.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aioice.stun import Message, Method

from turn import stun
from turn.allocation import Address, Allocation, AllocationTable, FiveTuple
from turn.auth import Authenticator, Verdict
from turn.config import RelayConfig
from turn.counters import Counters
from turn.framing import CHANNEL_MAX, CHANNEL_MIN
from turn.policy import PeerAuthorizer, PeerPolicy, canonical_ip
from turn.relay import RESERVATION_LIFETIME, CapacityError, ClientSend

logger = logging.getLogger("turn")


@dataclass(frozen=True, slots=True, eq=False)
class Client:
    """Where a request came from: its 5-tuple (RFC 8656 §2) and how to send to it."""

    five_tuple: FiveTuple
    address: Address  # the client's (host, port), as XOR-MAPPED-ADDRESS reports it
    sendto: ClientSend  # sendto(data, reply_to) reaches the client
    reply_to: Any  # the address argument for ``sendto``, as the socket gave it
    spoofable: bool  # UDP: the source address is unverified, so unauthenticated replies are limited


@dataclass(slots=True)
class Reply:
    """A response to send; ``key`` signs it with MESSAGE-INTEGRITY (None: an unauthenticated reply)."""

    message: Message
    key: bytes | None = None


class RelaySockets(Protocol):
    """The server's side of allocations: binding relay sockets and letting them go."""

    async def open(self, allocation: Allocation, client: Client, even_port: bool | None,
                   token: bytes | None) -> None:
        """Bind the relay socket (EVEN-PORT ``even_port``, or the one reserved under ``token``) and set
        ``allocation.relay``, ``relayed`` and ``reservation_token``; raise CapacityError when it cannot."""

    def release(self, allocation: Allocation) -> None:
        """Close the relay socket of an allocation that is gone."""

    def set_dont_fragment(self, allocation: Allocation) -> None:
        """Make the relay socket send with the DF bit from now on (RFC 8656 §11.2)."""


class Handlers:
    """The request and indication handlers, sharing the state, the credentials and the peer policy."""

    def __init__(
        self,
        config: RelayConfig,
        table: AllocationTable,
        auth: Authenticator,
        policy: PeerPolicy,
        sockets: RelaySockets,
        counters: Counters,
        clock: Callable[[], float] = time.monotonic,
        may_relay: PeerAuthorizer | None = None,
    ) -> None:
        self.config = config
        self.table = table
        self.auth = auth
        self.policy = policy
        self.sockets = sockets
        self.counters = counters
        self.clock = clock
        self.may_relay = may_relay  # when given, decides instead of the allowed_peers rule (turn.policy)
        self.families = set(config.relay_addresses)
        self.requests: dict[Method, Callable[[stun.Decoded, Client], Reply]] = {
            Method.BINDING: self.binding,
            Method.REFRESH: self.refresh,
            Method.CREATE_PERMISSION: self.create_permission,
            Method.CHANNEL_BIND: self.channel_bind,
        }  # Allocate, which must wait for a socket, is the coroutine :meth:`allocate`

    def unsupported(self, request: stun.Decoded, client: Client) -> Reply:
        """400 for a request of a method this server does not serve (RFC 8489 §6.3.1)."""
        return self._error(request, 400, None)

    # Binding (RFC 8489 §6.3.1): no credentials, answered on every transport.

    def binding(self, request: stun.Decoded, client: Client) -> Reply:
        """Answer with the client's reflexive address in XOR-MAPPED-ADDRESS."""
        if request.unknown:
            return self._unknown(request, None)
        return self._success(request, XOR_MAPPED_ADDRESS=client.address)

    # Allocate (RFC 8656 §7.2).

    async def allocate(self, request: stun.Decoded, client: Client) -> Reply | None:
        """Create the allocation of ``client``'s 5-tuple; None for a retransmission still being served."""
        verdict = self._authenticate(request, client)
        if isinstance(verdict, Reply):
            return verdict
        key = verdict.key
        existing = self.table.get(client.five_tuple)
        if existing is not None:
            if existing.transaction_id != request.message.transaction_id:
                return self._error(request, 437, key)
            if existing.relayed is None:
                return None  # the first copy of this request is still being served
            return self._allocated(request, existing, client, key)
        attributes = request.attributes
        transport = attributes.get("REQUESTED-TRANSPORT")
        if transport is None:
            return self._error(request, 400, key)
        if transport >> 24 != stun.UDP:
            return self._error(request, 442, key)
        token = attributes.get("RESERVATION-TOKEN")
        even_port = attributes.get("EVEN-PORT")
        family = attributes.get("REQUESTED-ADDRESS-FAMILY")
        additional = attributes.get("ADDITIONAL-ADDRESS-FAMILY")
        if token is not None and (even_port is not None or family is not None):
            return self._error(request, 400, key)
        if additional is not None and (family is not None or additional != stun.IPV6):
            return self._error(request, 400, key)
        family = family or stun.IPV4  # the default; with a token, the reservation's family wins (§7.2)
        if token is None and family not in self.families:
            return self._error(request, 440, key)
        source = client.address[0]
        if token is not None:
            self.table.unreserve(token)  # the reserved port becomes this allocation's, and counts as it
        if not self.table.has_room_for(verdict.user, source):
            return self._error(request, 486, key)
        now = self.clock()
        allocation = Allocation(
            client.five_tuple, verdict.username, verdict.user, request.message.transaction_id,
            family, now + self._lifetime(attributes.get("LIFETIME")), self.counters, source,
        )
        allocation.dont_fragment = "DONT-FRAGMENT" in attributes
        self.table.add(allocation)  # before the await: counts for quotas, and marks retransmissions
        try:
            await self.sockets.open(allocation, client, even_port, token)
        except CapacityError:
            self.table.remove(allocation)
            return self._error(request, 508, key)
        except BaseException:
            self.table.remove(allocation)
            raise
        if self.table.get(client.five_tuple) is not allocation:  # the client went away meanwhile
            self.sockets.release(allocation)
            return None
        if allocation.reservation_token is not None:  # EVEN-PORT's R bit: the next port counts too (§7.2)
            self.table.reserve(allocation.reservation_token, verdict.user, source, now + RESERVATION_LIFETIME)
        logger.info("allocation %s for %s: relay %s", client.five_tuple, verdict.username, allocation.relayed)
        return self._allocated(request, allocation, client, key)

    def _allocated(self, request: stun.Decoded, allocation: Allocation, client: Client,
                   key: bytes | None) -> Reply:
        return self._success(
            request,
            key,
            XOR_RELAYED_ADDRESS=allocation.relayed,
            LIFETIME=max(0, round(allocation.expires_at - self.clock())),
            RESERVATION_TOKEN=allocation.reservation_token,
            # A second family was asked for: this relay makes no dual allocations (RFC 8656 §7.2).
            ADDRESS_ERROR_CODE=(stun.IPV6, 440, stun.REASONS[440])
            if "ADDITIONAL-ADDRESS-FAMILY" in request.attributes else None,
            XOR_MAPPED_ADDRESS=client.address,
        )

    def _lifetime(self, requested: int | None) -> int:
        """min(requested, maximum), but never below the default (RFC 8656 §7.2, §8.2)."""
        default = self.config.allocation_lifetime
        if requested is None:
            return default
        return max(default, min(requested, self.config.max_allocation_lifetime))

    # Refresh (RFC 8656 §8.2).

    def refresh(self, request: stun.Decoded, client: Client) -> Reply:
        """Extend the allocation, or delete it when LIFETIME is 0."""
        checked = self._owned_allocation(request, client)
        if isinstance(checked, Reply):
            return checked
        allocation, key = checked
        family = request.attributes.get("REQUESTED-ADDRESS-FAMILY")
        if family is not None and family != allocation.family:
            return self._error(request, 443, key)
        requested = request.attributes.get("LIFETIME")
        if requested == 0:
            self.delete(allocation)
            return self._success(request, key, LIFETIME=0)
        lifetime = self._lifetime(requested)
        allocation.refresh(self.clock(), lifetime)
        return self._success(request, key, LIFETIME=lifetime)

    def delete(self, allocation: Allocation) -> None:
        """Remove ``allocation`` and close its relay socket."""
        if self.table.get(allocation.five_tuple) is allocation:
            self.table.remove(allocation)
            self.sockets.release(allocation)
            logger.info("allocation %s deleted", allocation.five_tuple)

    # CreatePermission (RFC 8656 §10.2).

    def create_permission(self, request: stun.Decoded, client: Client) -> Reply:
        """Install or refresh a permission for every XOR-PEER-ADDRESS, or for none of them."""
        checked = self._owned_allocation(request, client)
        if isinstance(checked, Reply):
            return checked
        allocation, key = checked
        if not request.peers:
            return self._error(request, 400, key)
        refused = self._refuse_peers(request.peers, allocation, request, key, ports=False)
        if refused is not None:
            return refused
        ips = {peer[0] for peer in request.peers}
        if not allocation.has_room_for(ips):
            return self._error(request, 508, key)
        until = self.clock() + self.config.permission_lifetime
        for ip in ips:
            allocation.permit(ip, until)
        return self._success(request, key)

    # ChannelBind (RFC 8656 §12.2).

    def channel_bind(self, request: stun.Decoded, client: Client) -> Reply:
        """Bind a channel number to a peer, refreshing it and the peer's permission."""
        checked = self._owned_allocation(request, client)
        if isinstance(checked, Reply):
            return checked
        allocation, key = checked
        number = request.attributes.get("CHANNEL-NUMBER")
        if number is None or not request.peers or not CHANNEL_MIN <= number <= CHANNEL_MAX:
            return self._error(request, 400, key)
        peer = request.peers[0]
        refused = self._refuse_peers([peer], allocation, request, key, ports=True)
        if refused is not None:
            return refused
        if not allocation.can_bind(number, peer):
            return self._error(request, 400, key)
        if not allocation.has_room_for({peer[0]}):
            return self._error(request, 508, key)
        now = self.clock()
        allocation.permit(peer[0], now + self.config.permission_lifetime)
        allocation.bind(number, peer, now + self.config.channel_lifetime)
        return self._success(request, key)

    # Send indication (RFC 8656 §11.2): never answered, silently dropped when anything is wrong.

    def send(self, request: stun.Decoded, client: Client) -> None:
        """Relay the DATA of a Send indication to its peer, if the client holds a permission for it."""
        allocation = self.table.get(client.five_tuple)
        data = request.attributes.get("DATA")
        if allocation is None or allocation.relay is None or data is None or not request.peers:
            return
        if request.unknown or 0x0012 in request.invalid:  # a malformed XOR-PEER-ADDRESS voids it
            self.counters.malformed_drops += 1
            return
        peer = request.peers[0]
        if peer[0] not in allocation.permissions:
            return
        if self.policy.refuses(*peer):
            self.counters.peers_denied += 1
            return
        if "DONT-FRAGMENT" in request.attributes and not allocation.dont_fragment:
            self.sockets.set_dont_fragment(allocation)
        allocation.relay.sendto(data, peer)
        self.counters.packets_to_peers += 1
        self.counters.bytes_to_peers += len(data)

    # Shared steps.

    def _authenticate(self, request: stun.Decoded, client: Client) -> Verdict | Reply:
        """Check credentials, then unknown and malformed attributes (RFC 8489 §6.3.1, §9.2.4)."""
        verdict = self.auth.check(request, client.address[0])
        if verdict.code is None:
            if request.unknown:
                return self._unknown(request, verdict.key)
            if request.invalid:
                return self._error(request, 400, verdict.key)
            return verdict
        if verdict.code == 400:
            return self._error(request, 400, None)
        if verdict.code == 438:
            self.counters.stale_nonces += 1
        elif "MESSAGE-INTEGRITY" in request.attributes:
            self.counters.auth_failures += 1
        return Reply(
            stun.error(
                request.message,
                verdict.code,
                REALM=self.auth.realm,
                NONCE=self.auth.nonce(client.address[0]).encode(),
                SOFTWARE=self.config.software,
            )
        )

    def _owned_allocation(self, request: stun.Decoded, client: Client) -> tuple[Allocation, bytes] | Reply:
        """Authenticate, then find the client's allocation: 437 without one, 441 for another user's."""
        verdict = self._authenticate(request, client)
        if isinstance(verdict, Reply):
            return verdict
        assert verdict.key is not None
        allocation = self.table.get(client.five_tuple)
        if allocation is None or allocation.relayed is None:
            return self._error(request, 437, verdict.key)
        if allocation.username != verdict.username:
            return self._error(request, 441, verdict.key)
        return allocation, verdict.key

    def _refuse_peers(self, peers: list[Address], allocation: Allocation, request: stun.Decoded,
                      key: bytes, ports: bool) -> Reply | None:
        """443 for a peer of the other address family, 403 for one the policy refuses (RFC 8656 §10.2)."""
        for peer in peers:
            if (stun.IPV6 if ":" in peer[0] else stun.IPV4) != allocation.family:
                return self._error(request, 443, key)
        for peer in peers:
            if not self._may_relay(allocation, peer, ports):
                self.counters.peers_denied += 1
                if not allocation.refusal_logged:  # a client retrying must not flood the log
                    allocation.refusal_logged = True
                    logger.info("peer %s refused for %s (further refusals on this allocation are only counted)",
                                peer, allocation.username)
                return self._error(request, 403, key)
        return None

    def _may_relay(self, allocation: Allocation, peer: Address, ports: bool) -> bool:
        """The peer policy for ``peer``; with ``ports`` (ChannelBind) its port is checked too (RFC 8656 §9)."""
        policy = self.policy
        if self.may_relay is None:
            return policy.allows(peer) if ports else policy.allows_ip(peer[0])
        if policy.refuses(peer[0], peer[1] if ports else None):
            return False
        if self.may_relay(allocation.user, (str(canonical_ip(peer[0])), peer[1])):
            return True
        self.counters.peers_unauthorized += 1
        return False

    def _unknown(self, request: stun.Decoded, key: bytes | None) -> Reply:
        return self._error(request, 420, key, UNKNOWN_ATTRIBUTES=request.unknown)

    def _error(self, request: stun.Decoded, code: int, key: bytes | None, **attributes: Any) -> Reply:
        counters = self.counters
        if code == 400:
            counters.bad_requests += 1
        elif code == 420:
            counters.unknown_attributes += 1
        elif code == 437:
            counters.allocation_mismatches += 1
        elif code == 441:
            counters.wrong_credentials += 1
        return Reply(stun.error(request.message, code, SOFTWARE=self.config.software, **attributes), key)

    def _success(self, request: stun.Decoded, key: bytes | None = None, **attributes: Any) -> Reply:
        return Reply(stun.success(request.message, SOFTWARE=self.config.software, **attributes), key)
