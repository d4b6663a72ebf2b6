"""Facts about this host's network: its primary LAN address and its interface subnets."""

from __future__ import annotations

import ipaddress
import socket


def primary_lan_address() -> str:
    """The source address this host would use for the LAN; 127.0.0.1 when it has none.

    Connecting a UDP socket sends no packet: the kernel only picks the route and source address.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 9))
            address = probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"
    return address if not ipaddress.ip_address(address).is_unspecified else "127.0.0.1"


def url_host(host: str) -> str:
    """``host`` as it goes into a URL: IPv6 literals in brackets."""
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host
