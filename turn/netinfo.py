"""This host's interface addresses and subnets, for ``allowed_peers: [auto]`` and the own-endpoint rule.

Read with ifaddr, which aioice already depends on for its own host candidates.
"""

from __future__ import annotations

import ipaddress

import ifaddr


def host_interfaces() -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    """Every address of every interface, with its prefix length (loopback and link-local included)."""
    found: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            host = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            found.append(ipaddress.ip_interface(f"{host.split('%', 1)[0]}/{ip.network_prefix}"))
    return found

