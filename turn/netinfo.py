"""This host's interface addresses and subnets, for ``allowed_peers: [auto]`` and the own-endpoint rule.

Read with ifaddr, which aioice already depends on for its own host candidates.
"""

from __future__ import annotations

import ipaddress

import ifaddr

from turn.policy import IPAddress, IPNetwork


def host_interfaces() -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    """Every address of every interface, with its prefix length (loopback and link-local included)."""
    found: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            host = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            found.append(ipaddress.ip_interface(f"{host.split('%', 1)[0]}/{ip.network_prefix}"))
    return found


def host_addresses() -> list[IPAddress]:
    """The addresses of this host's interfaces."""
    return [interface.ip for interface in host_interfaces()]


def host_networks() -> list[IPNetwork]:
    """The subnets of this host's interfaces: what ``auto`` in allowed_peers stands for, with the relay IP."""
    networks: list[IPNetwork] = []
    for interface in host_interfaces():
        if interface.network not in networks:
            networks.append(interface.network)
    return networks
