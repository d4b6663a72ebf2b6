"""The app's side of the relay: where phones reach it, and a :class:`turn.RelayConfig` from the one config file."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterable

from opencall.config import Config
from opencall.config.schema import RELAY_KEYS
from opencall.fdlimit import current_limit, relay_share
from opencall.lan import auto_addresses, is_loopback
from turn import RelayConfig
from turn.listen import is_wildcard

LOOPBACK_FIX = ("set turn.advertise to this box's LAN address (e.g. 192.168.1.10), "
                "or bring up the LAN interface and restart OpenCall")


def advertised_hosts(config: Config) -> tuple[str, ...]:
    """The hosts /api/ice-config names: ``turn.advertise``, or for ``auto`` this host's LAN addresses
    (:func:`opencall.lan.auto_addresses`, read now)."""
    advertise = config.turn.advertise
    return auto_addresses() if advertise == "auto" else (advertise,)


def loopback_only(advertised: Iterable[str], binds: Iterable[str]) -> bool:
    """Whether the relay is advertised on loopback only (127.0.0.0/8, ::1, localhost) while one of ``binds``
    (server.host, turn.listen) is a wildcard: the box serves the LAN, but phones are told to reach the
    relay on themselves. Loopback advertised while listening on loopback is a consistent local setup."""
    hosts = list(advertised)
    wildcard = any(is_wildcard(bind) for bind in binds)
    return wildcard and bool(hosts) and all(is_loopback(host) for host in hosts)


def loopback_problem(config: Config, advertised: Iterable[str]) -> str | None:
    """Why the relay cannot be reached from the LAN as configured (see :func:`loopback_only`), or None."""
    hosts = tuple(advertised)
    turn, server = config.turn, config.server
    if not turn.enabled or not loopback_only(hosts, (server.host, turn.listen)):
        return None
    wildcards = [f"{key} is {bind}" for key, bind in (("server.host", server.host), ("turn.listen", turn.listen))
                 if is_wildcard(bind)]
    source = "resolves to" if turn.advertise == "auto" else "is"
    return (f"the relay is advertised on loopback only: turn.advertise: {turn.advertise} {source} "
            f"{', '.join(hosts)} while {' and '.join(wildcards)}; phones are told to reach STUN/TURN on "
            f"themselves, so calls that need the relay fail")


def relay_addresses(config: Config, advertised: Iterable[str]) -> tuple[str, str | None]:
    """(relay_ip, relay_ip6) of the relay sockets.

    ``turn.relay_ip`` when set (IPv4 or IPv6, one family). Otherwise the first advertised IPv4 address
    (docs/configuration.md: relay_ip defaults to advertise), and beside it the first advertised IPv6 address, so an
    IPv6 client can ask for an IPv6 relay (REQUESTED-ADDRESS-FAMILY, RFC 8656 §7.2, formerly RFC 6156); with
    no advertised IPv4 address, the first IPv6 one; with none at all (a host name), the listen address.
    """
    turn = config.turn
    if turn.relay_ip:
        return turn.relay_ip, None
    addresses = []
    for host in advertised:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            continue  # advertise is a host name: relay sockets need an address
        if not address.is_unspecified:
            addresses.append(address)
    ipv4 = next((str(a) for a in addresses if a.version == 4), None)
    ipv6 = next((str(a) for a in addresses if a.version == 6), None)
    if ipv4 is not None:
        return ipv4, ipv6
    if ipv6 is not None:
        return ipv6, None
    # config.parse_config refuses a host-name advertise with a wildcard listen and no relay_ip.
    assert not is_wildcard(turn.listen), "unreachable: no relay address"
    return turn.listen, None


def relay_config(config: Config, secret: str, advertised: Iterable[str],
                 context: ssl.SSLContext | None) -> RelayConfig:
    """The relay's settings: listeners from ``turn``, TLS with the HTTPS server's own certificate, caps that
    leave HTTPS its file descriptors (:func:`opencall.fdlimit.relay_share`)."""
    turn = config.turn
    share = relay_share(config, current_limit())
    tls_port = turn.tls_port if context is not None else None
    relay_ip, relay_ip6 = relay_addresses(config, advertised)
    passed_on = {key: getattr(turn, key) for key in RELAY_KEYS}  # as checked by the relay's own rules
    return RelayConfig(**{
        **passed_on,
        "secret": secret,
        "tls_port": tls_port,
        "ssl_context": context if tls_port is not None else None,
        "relay_ip": relay_ip,
        "relay_ip6": relay_ip6,
        "max_allocations": share.max_allocations,
        "max_connections": share.max_connections,
        "max_connections_per_ip": share.max_connections_per_ip,
    })
