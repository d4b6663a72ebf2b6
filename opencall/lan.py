"""Facts about this host's network: the LAN addresses ``turn.advertise: auto`` stands for."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from turn.netinfo import host_interfaces

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

# What `auto` falls back to when the box has no LAN address at all (the relay then serves this host only).
NO_LAN_ADDRESS = "127.0.0.1"


def routed_address() -> str | None:
    """The IPv4 source address the kernel picks for a LAN destination, or None when no route leads there.

    Connecting a UDP socket sends no packet: the kernel only picks the route and source address.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 9))
            address = probe.getsockname()[0]
        except OSError:  # ENETUNREACH: no default route and no route to 10/8 (internet down, LAN up)
            return None
    return None if ipaddress.ip_address(address).is_unspecified else str(address)


def is_lan_address(address: IPAddress) -> bool:
    """Whether phones on the LAN can reach ``address``: RFC 1918, ULA (RFC 4193) and global addresses are;
    loopback, link-local (169.254/16, fe80::/10; RFC 3927, RFC 4291 §2.5.6), unspecified, multicast and
    reserved (240/4) addresses are not."""
    return not (address.is_loopback or address.is_link_local or address.is_unspecified
                or address.is_multicast or address.is_reserved)


def lan_addresses(interfaces: Iterable[str | IPAddress | IPInterface], routed: str | None) -> tuple[str, ...]:
    """The LAN addresses to advertise: ``routed`` (the route's pick) first, then the other LAN addresses of
    ``interfaces``, IPv4 before IPv6, each once, in interface order. Pure: give it any interface list.

    ``interfaces`` holds addresses with or without a prefix (``192.168.50.2/24``, ``fd42:50::2``); an IPv6
    zone (``fe80::1%eth0``) is allowed. Returns ``()`` when there is no LAN address.
    """
    lan: list[IPAddress] = []
    for address in map(_address, interfaces):
        if is_lan_address(address) and address not in lan:
            lan.append(address)
    head = [_address(routed)] if routed is not None else []
    head = [address for address in head if is_lan_address(address)]
    rest = [address for address in lan if address not in head]
    ordered = head + [a for a in rest if a.version == 4] + [a for a in rest if a.version == 6]
    return tuple(str(address) for address in ordered)


def auto_addresses() -> tuple[str, ...]:
    """What ``turn.advertise: auto`` resolves to on this host: :func:`lan_addresses` of its interfaces and
    its route, or ``(NO_LAN_ADDRESS,)`` when it has no LAN address."""
    return lan_addresses(host_interfaces(), routed_address()) or (NO_LAN_ADDRESS,)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this host only: 127.0.0.0/8, ::1, or ``localhost`` (RFC 6761 §6.3)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        name = host.lower().rstrip(".")
        return name == "localhost" or name.endswith(".localhost")


def url_host(host: str) -> str:
    """``host`` as it goes into a URL: IPv6 literals in brackets."""
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def _address(item: str | IPAddress | IPInterface) -> IPAddress:
    """The address of an interface entry: ``192.168.1.2/24``, ``fe80::1%eth0``, or an ipaddress object."""
    if isinstance(item, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return item.ip
    if isinstance(item, str):
        return ipaddress.ip_address(item.split("/", 1)[0].split("%", 1)[0])
    return item
