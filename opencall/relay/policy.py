"""Who may relay where: OpenCall's answer to the relay's ``may_relay`` question (turn.policy.PeerAuthorizer)
under ``turn.peer_policy: call``.

The principal is the user id inside the relay credentials /api/ice-config minted: ``user-<account id>`` or an
anonymous browser's server-signed id (services/anonymous.py), the same identity its socket has. It may relay

* while one of its sockets is ringing or in a call, to the addresses the *other* party of that call can be
  reached at: the address that party's socket connects from and the addresses it announced in its SDP and
  candidates (services/announced.py); and to this box's own relay addresses (relay to relay);
* as ``opencall doctor``'s relay self-test, to this box's own relay addresses only.

An announced address in a special-purpose block (loopback, link-local, …: turn.policy.SPECIAL_NETWORKS) counts
only when that party's socket connects from the same block: a phone on the LAN cannot point the relay at
127.0.0.1 or 169.254.169.254 by announcing them; a party on this very box (as in tests) can.

Refusals are logged once per call, and once per principal outside any call; the relay counts every one.

The relay runs on a thread of its own (relay/thread.py): it asks through :class:`OnAppLoop`, which has
:class:`CallRelayPolicy` answer on the app's event loop, the one thread that changes what it reads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import weakref
from collections.abc import Iterable

from opencall.services.announced import ip_of
from opencall.signaling.live import LiveCall, Peer
from opencall.signaling.registry import Registry
from turn.policy import PeerAuthorizer, embedded_ipv4, special_network

log = logging.getLogger("opencall.relay")

SELF_TEST_PRINCIPAL = "opencall-doctor"  # opencall doctor's relay self-test (commands/relayprobe.py)
_LOGGED_PRINCIPALS_MAX = 1024  # strangers retrying must not grow the memory of who was logged
ANSWER_TIMEOUT = 2.0  # seconds the relay's thread waits for the app's loop to answer may_relay


def reachable(party: Peer, ip: str) -> bool:
    """Whether ``party`` can be reached at the canonical address ``ip``: its socket's address, or one it
    announced (an address in a special-purpose block only when its socket's address is in that block too)."""
    socket_ip = ip_of(party.ip)
    if ip == socket_ip:
        return True
    if ip not in party.announced.addresses:
        return False
    address = ipaddress.ip_address(ip)
    blocks = [block for each in (address, *embedded_ipv4(address)) if (block := special_network(each))]
    if not blocks:
        return True
    if socket_ip is None:
        return False
    own = ipaddress.ip_address(socket_ip)
    return all(own.version == block.version and own in block for block in blocks)


class CallRelayPolicy:
    """``may_relay(principal, peer)`` from the live calls of :class:`Registry`'s sockets."""

    def __init__(self, registry: Registry, relay_addresses: Iterable[str]) -> None:
        self.registry = registry
        self.relay_addresses = frozenset(ip for ip in map(ip_of, relay_addresses) if ip is not None)
        self._logged_calls: weakref.WeakSet[LiveCall] = weakref.WeakSet()
        self._logged_principals: set[str] = set()

    def __call__(self, principal: str, peer: tuple[str, int]) -> bool:
        """Whether ``principal`` may relay to ``peer`` (canonical IP, port) now."""
        ip = peer[0]
        if principal == SELF_TEST_PRINCIPAL:
            return ip in self.relay_addresses
        calls = self._calls_of(principal)
        if not calls:
            self._log_stranger(principal, ip)
            return False
        if ip in self.relay_addresses:
            return True
        if any(reachable(other, ip) for party, call in calls for other in call.other_side(party)):
            return True
        for party, call in calls:
            if call not in self._logged_calls:
                self._logged_calls.add(call)
                log.info("relay refused %s (socket %s, %s) to %s: not an address of the other party of its call "
                         "%s -> %s; further refusals in this call are not logged", principal, party.sid,
                         party.call_id, ip, call.caller.call_id, call.callee_call_id)
        return False

    def _calls_of(self, principal: str) -> list[tuple[Peer, LiveCall]]:
        """The principal's sockets that are ringing or in a call, each with its call."""
        return [(peer, call) for peer in self.registry.sockets_of_principal(principal)
                if (call := peer.call) is not None and call.state != "ended"]

    def _log_stranger(self, principal: str, ip: str) -> None:
        if principal in self._logged_principals:
            return
        if len(self._logged_principals) >= _LOGGED_PRINCIPALS_MAX:
            self._logged_principals.clear()
        self._logged_principals.add(principal)
        log.info("relay refused %s to %s: it is in no call; further refusals are not logged", principal, ip)


class OnAppLoop:
    """``may_relay`` for a relay on its own thread: each question is answered by ``policy`` on the app's event
    loop (:meth:`bind`), while the relay's thread waits for the answer.

    Why ask the app's loop rather than read from the relay's thread: :class:`CallRelayPolicy` reads the
    registry's sockets, each call's parties and the addresses each party announced, which signaling changes in
    many places on the app's loop. Read from another thread, those dicts and sets can change size mid-iteration.
    A lock would have to be taken, and an immutable snapshot republished, at every one of those places, and
    before the other party hears of the change (its browser asks the relay for a permission right after).
    Answering on the owner's loop reads the state as it is, with no change to signaling and no lock.

    The cost is a round trip through the app's loop, only on CreatePermission and ChannelBind (a handful per
    call and refresh, never per relayed packet); the app's loop stays responsive under relay load, which is what
    the relay's thread is for. A question not answered within ``ANSWER_TIMEOUT`` (the app's loop blocked, or
    closed) is refused and logged: the client sees a 403, as for any refusal, and may retry.
    """

    def __init__(self, policy: PeerAuthorizer, timeout: float = ANSWER_TIMEOUT) -> None:
        self.policy = policy
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Answer on ``loop`` (the app's running loop), before the relay starts."""
        self._loop = loop

    def __call__(self, principal: str, peer: tuple[str, int]) -> bool:
        """The policy's answer, computed on the app's loop; called from the relay's thread."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("OnAppLoop asked before bind()")
        answer: concurrent.futures.Future[bool] = concurrent.futures.Future()

        def decide() -> None:
            if not answer.set_running_or_notify_cancel():
                return  # the relay's thread gave up waiting
            try:
                answer.set_result(self.policy(principal, peer))
            except Exception as exc:
                answer.set_exception(exc)

        try:
            loop.call_soon_threadsafe(decide)
        except RuntimeError:  # the app's loop is closed: the app is stopping
            log.warning("relay refused %s to %s: the app is stopping", principal, peer[0])
            return False
        try:
            return answer.result(self.timeout)
        except TimeoutError:
            answer.cancel()
            log.warning("relay refused %s to %s: the app's loop did not answer may_relay within %.1f s",
                        principal, peer[0], self.timeout)
            return False
