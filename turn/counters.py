"""The relay's counters, for metrics: live gauges and running totals, read as plain attributes."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class Counters:
    """Updated in place by the relay; read any field at any time, or take :meth:`snapshot`."""

    allocations: int = 0  # live allocations
    permissions: int = 0  # live permissions, over all allocations
    channels: int = 0  # live channel bindings, over all allocations
    allocations_created: int = 0
    packets_to_peers: int = 0  # payloads relayed client -> peer (ChannelData and Send indications)
    bytes_to_peers: int = 0
    packets_to_clients: int = 0  # payloads relayed peer -> client (ChannelData and Data indications)
    bytes_to_clients: int = 0
    auth_failures: int = 0  # requests whose credentials were wrong, forged or expired
    stale_nonces: int = 0
    rate_limited: int = 0  # unauthenticated replies not sent because of the per-source rate limit
    amplification_drops: int = 0  # unauthenticated replies not sent because they would exceed 3x the request
    peers_denied: int = 0  # permissions, channels and Send indications refused by the peer policy

    @property
    def packets_relayed(self) -> int:
        return self.packets_to_peers + self.packets_to_clients

    @property
    def bytes_relayed(self) -> int:
        return self.bytes_to_peers + self.bytes_to_clients

    def snapshot(self) -> dict[str, int]:
        """Every counter, with the relayed totals, as a new dict."""
        return {**asdict(self), "packets_relayed": self.packets_relayed, "bytes_relayed": self.bytes_relayed}
