"""The relay's counters, for metrics: live gauges and running totals, read as plain attributes."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class Counters:
    """Updated in place by the relay; read any field at any time, or take :meth:`snapshot`."""

    allocations: int = 0  # live allocations
    permissions: int = 0  # live permissions, over all allocations
    channels: int = 0  # live channel bindings, over all allocations
    peer_links: int = 0  # connected sockets for peers (turn.relay.PeerLink), at most max_allocations in all
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
    # TCP and TLS connections (turn.stream.StreamConnection): open now, refused at accept, closed by the relay.
    connections: int = 0
    connections_refused_global: int = 0  # over max_connections
    connections_refused_per_ip: int = 0  # over max_connections_per_ip
    connections_closed_handshake: int = 0  # TLS handshake not done within tls_handshake_timeout, or failed
    connections_closed_idle: int = 0  # no allocation within connection_idle_timeout
    connections_closed_oversized: int = 0  # a message longer than max_stream_frame
    connections_closed_malformed: int = 0  # bytes that are neither STUN nor ChannelData
    connections_paused: int = 0  # times reading stopped because the client did not read its replies
    stream_drops: int = 0  # messages to a TCP/TLS client dropped because its queue was full
    peers_unauthorized: int = 0  # of those, permissions and channels refused by the owner's may_relay callback
    # Input refused (issue 12): before decoding, and error responses by code (RFC 8489 §6.3, RFC 8656).
    budget_drops: int = 0  # messages not decoded: their source IP spent its unauthenticated input budget
    allocation_budget_drops: int = 0  # messages not decoded: their allocation spent its input budget
    malformed_drops: int = 0  # messages discarded as not well-formed STUN (RFC 8489 §6.3)
    bad_requests: int = 0  # 400 responses
    unknown_attributes: int = 0  # 420 responses
    allocation_mismatches: int = 0  # 437 responses
    wrong_credentials: int = 0  # 441 responses
    input_budget_rate: int = 0  # the per-source budget (config), so /metrics shows it beside what it refused
    input_budget_burst: int = 0

    @property
    def packets_relayed(self) -> int:
        return self.packets_to_peers + self.packets_to_clients

    @property
    def bytes_relayed(self) -> int:
        return self.bytes_to_peers + self.bytes_to_clients

    def snapshot(self) -> dict[str, int]:
        """Every counter, with the relayed totals, as a new dict."""
        return {**asdict(self), "packets_relayed": self.packets_relayed, "bytes_relayed": self.bytes_relayed}
