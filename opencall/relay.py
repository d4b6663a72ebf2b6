"""The app's side of the relay: a :class:`turn.RelayConfig` from the one config file."""

from __future__ import annotations

import ipaddress
import ssl

from opencall.config import Config
from turn import RelayConfig


def _relay_ip(config: Config, advertised: str) -> str:
    """``turn.relay_ip``, else the advertised address (design.md), else the listen address."""
    turn = config.turn
    if turn.relay_ip:
        return turn.relay_ip
    for candidate in (advertised, turn.listen):
        try:
            if not ipaddress.ip_address(candidate).is_unspecified:
                return candidate
        except ValueError:
            continue  # advertise is a host name: relay sockets need an address
    # config.parse_config refuses a host-name advertise with a wildcard listen and no relay_ip.
    raise AssertionError("unreachable: no relay address")


def relay_config(config: Config, secret: str, advertised: str, context: ssl.SSLContext | None) -> RelayConfig:
    """The relay's settings: listeners from ``turn``, TLS with the HTTPS server's own certificate."""
    turn = config.turn
    tls_port = turn.tls_port if context is not None else None
    return RelayConfig(
        secret=secret,
        listen=turn.listen,
        port=turn.port,
        tls_port=tls_port,
        ssl_context=context if tls_port is not None else None,
        relay_ip=_relay_ip(config, advertised),
        relay_ports=turn.relay_ports,
        realm=turn.realm,
        max_allocations=turn.max_allocations,
        max_allocations_per_user=turn.max_allocations_per_user,
        allowed_peers=turn.allowed_peers,
        denied_peers=turn.denied_peers,
    )
