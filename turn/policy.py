"""Which peers the relay may talk to, and how hard unauthenticated clients may push it (RFC 8656 §21).

Peer rule: an address is canonicalised first (IPv4-mapped IPv6 becomes IPv4), then

* it is refused when a ``denied_peers`` CIDR holds it;
* it is refused when it is one of the server's own listening endpoints (address *and* port), always;
* an address in a special-purpose block (loopback, unspecified, link-local, multicast, reserved,
  documentation, or IPv6 forms that embed such an IPv4 address) is allowed only when an ``allowed_peers`` CIDR
  that lies inside that block names it: ``127.0.0.0/8`` allows 127.0.0.1, ``0.0.0.0/0`` does not;
* any other address is allowed when an ``allowed_peers`` CIDR (or the networks ``auto`` stands for) holds it.

Where data is sent to a port (ChannelBind, Send), a port below :data:`MIN_PEER_PORT` is refused too. The
owner of the relay can replace the subnet rule (the last two points) with a :data:`PeerAuthorizer`; the
other refusals stand whatever it answers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# Asked before a permission or channel is installed (RFC 8656 §9, §12): may ``principal``, the user id inside
# the TURN username, relay to ``peer`` (canonical IP, port)? False is answered with 403.
PeerAuthorizer = Callable[[str, tuple[str, int]], bool]

# Browsers never use a port below this one for media; a relay that sends there reaches the LAN's services
# (DNS, NTP, SSDP's neighbours...). RFC 8656 §9 lets the server restrict peer ports (403).
MIN_PEER_PORT = 1024

SPECIAL_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network", including the unspecified 0.0.0.0 (RFC 791, RFC 6890)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, including 169.254.169.254 cloud metadata
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1, -2, -3)
        "198.51.100.0/24",
        "203.0.113.0/24",
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, including broadcast 255.255.255.255
        "::/128",  # unspecified
        "::1/128",  # loopback
        "::/96",  # IPv4-compatible (deprecated, RFC 4291 §2.5.5.1)
        "100::/64",  # discard-only
        "2001:db8::/32",  # documentation
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def canonical_ip(host: str) -> IPAddress:
    """Parse ``host`` as an IP address; an IPv4-mapped IPv6 address becomes the IPv4 address it maps."""
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def embedded_ipv4(address: IPAddress) -> list[IPv4Address]:
    """The IPv4 addresses an IPv6 address routes to through a translator: NAT64, 6to4, Teredo."""
    if isinstance(address, IPv4Address):
        return []
    found = []
    if any(address in net for net in _NAT64):
        found.append(IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def special_network(address: IPAddress) -> IPNetwork | None:
    """The special-purpose block holding ``address``, or None for an ordinary unicast address."""
    for network in SPECIAL_NETWORKS:
        if address.version == network.version and address in network:
            return network
    return None


def parse_networks(cidrs: Iterable[str]) -> list[IPNetwork]:
    """CIDR strings as networks (host bits allowed, as in ``192.168.1.10/24``)."""
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


class PeerPolicy:
    """Decides whether data may be relayed to a peer address (403 otherwise, RFC 8656 §21.3)."""

    def __init__(
        self,
        allowed: Iterable[IPNetwork],
        automatic: Iterable[IPNetwork] = (),
        denied: Iterable[IPNetwork] = (),
        own_endpoints: Iterable[tuple[IPNetwork, int]] = (),
    ) -> None:
        self.allowed = list(allowed)  # named in allowed_peers: may open special-purpose blocks
        self.automatic = list(automatic)  # what ``auto`` resolved to: ordinary addresses only
        self.denied = list(denied)
        self.own_endpoints = list(own_endpoints)  # (addresses, port) the server listens on
        self.own_ports = frozenset(port for _, port in self.own_endpoints)

    def allows_ip(self, host: str) -> bool:
        """Whether a permission may be installed for ``host`` (the port plays no part, RFC 8656 §9)."""
        return not self.refuses(host) and self._in_subnets(canonical_ip(host))

    def allows(self, peer: tuple[str, int]) -> bool:
        """Whether data may be sent to ``peer``, address and port."""
        return not self.refuses(*peer) and self._in_subnets(canonical_ip(peer[0]))

    def refuses(self, host: str, port: int | None = None) -> bool:
        """The refusals no authorizer lifts: an address that is no IP address or lies in ``denied_peers``;
        with a ``port``, also a port below MIN_PEER_PORT and the server's own listening endpoints."""
        try:
            address = canonical_ip(host)
        except ValueError:
            return True
        if self._within(address, self.denied):
            return True
        return port is not None and (port < MIN_PEER_PORT or self.is_own_endpoint(address, port))

    def is_own_endpoint(self, address: IPAddress, port: int) -> bool:
        """Whether ``address``:``port`` reaches one of the server's own listening sockets."""
        return port in self.own_ports and any(
            port == own_port and address.version == net.version and address in net
            for net, own_port in self.own_endpoints
        )

    def _in_subnets(self, address: IPAddress) -> bool:
        for candidate in (address, *embedded_ipv4(address)):
            block = special_network(candidate)
            if block is not None and not any(
                candidate in net and net.version == block.version and net.subnet_of(block)  # type: ignore[arg-type]
                for net in self.allowed
                if net.version == candidate.version
            ):
                return False
        return self._within(address, self.allowed) or self._within(address, self.automatic)

    @staticmethod
    def _within(address: IPAddress, networks: list[IPNetwork]) -> bool:
        return any(address.version == net.version and address in net for net in networks)

