"""The IP addresses a party announces through signaling: the ``c=`` and ``a=candidate`` lines of its SDP
(RFC 8866 §5.7, RFC 8839 §5.1) and its trickled candidate strings. The relay policy lets the other party relay
to them (relay/policy.py). mDNS names (``….local``, RFC 8839 §5.1 allows FQDNs) name no address and
are left out, as are the unspecified addresses of ``c=IN IP4 0.0.0.0`` placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from turn.policy import canonical_ip

MAX_ADDRESSES = 64  # per party and ICE session: a browser gathers a handful; more is ignored


def ip_of(text: str) -> str | None:
    """``text`` as a canonical IP address (IPv4-mapped IPv6 as IPv4, zone dropped); None for a host name
    (an mDNS ``.local`` name among them), the unspecified address, or anything else."""
    try:
        address = canonical_ip(text)
    except ValueError:
        return None
    return None if address.is_unspecified else str(address)


def candidate_address(candidate: str) -> str | None:
    """The connection address of an ICE candidate, given as ``candidate:…`` or ``a=candidate:…``:
    ``foundation component transport priority address port typ type …`` (RFC 8839 §5.1)."""
    text = candidate.strip().removeprefix("a=")
    if not text.startswith("candidate:"):
        return None
    fields = text.split()
    if len(fields) < 8 or fields[6] != "typ":
        return None
    return ip_of(fields[4])


def sdp_addresses(sdp: str) -> set[str]:
    """The addresses of every ``c=IN IP4|IP6 address[/ttl]`` line and every ``a=candidate`` line of ``sdp``."""
    found: set[str] = set()
    for line in sdp.splitlines():
        address = None
        if line.startswith("c="):
            parts = line[2:].split()
            if len(parts) == 3 and parts[0] == "IN":
                address = ip_of(parts[2].split("/", 1)[0])
        elif line.startswith("a=candidate:"):
            address = candidate_address(line)
        if address is not None:
            found.add(address)
    return found


def ice_ufrags(sdp: str) -> frozenset[str]:
    """The ``a=ice-ufrag`` values of ``sdp``: new ones mean an ICE restart (RFC 8839 §4.4.1.1.1)."""
    return frozenset(line[len("a=ice-ufrag:"):].strip() for line in sdp.splitlines()
                     if line.startswith("a=ice-ufrag:"))


@dataclass
class Announced:
    """What one party announced in its current call: its ICE session and the addresses in it."""

    ufrags: frozenset[str] = frozenset()
    addresses: set[str] = field(default_factory=set)

    def clear(self) -> None:
        """A new call: nothing announced yet."""
        self.ufrags = frozenset()
        self.addresses = set()

    def description(self, sdp: str) -> None:
        """An offer or answer. One that starts a new ICE session (an ICE restart) replaces the addresses;
        one that keeps the session adds its addresses to those already known."""
        ufrags = ice_ufrags(sdp)
        if ufrags != self.ufrags:
            self.ufrags = ufrags
            self.addresses = set()
        self._add(sdp_addresses(sdp))

    def candidate(self, candidate: str) -> None:
        """A trickled candidate string."""
        address = candidate_address(candidate)
        if address is not None:
            self._add({address})

    def _add(self, addresses: set[str]) -> None:
        for address in addresses:
            if len(self.addresses) >= MAX_ADDRESSES:
                return
            self.addresses.add(address)
