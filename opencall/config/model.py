"""What the config holds: typed, frozen sections with the embedded defaults (docs/configuration.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class TlsConfig:
    """``server.tls``: ``auto`` (certificate made in data_dir), ``off``, or the operator's own files."""

    mode: Literal["auto", "off", "files"] = "auto"
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True)
class ServerConfig:
    host: str = "0.0.0.0"  # noqa: S104 - an appliance serves its LAN by default
    port: int = 8443
    public_url: str | None = None
    tls: TlsConfig = field(default_factory=TlsConfig)
    # HTTPS limits (opencall.httplimits): connections, Sanic's timeouts in seconds, request size in bytes.
    max_connections: int = 256
    max_connections_per_ip: int = 64
    operator_connections: int = 16  # beyond max_connections, for clients in metrics.allow only
    request_timeout: int = 15  # to receive a whole request, headers and body
    keep_alive_timeout: int = 30  # an idle kept-alive connection
    response_timeout: int = 60  # to answer; above Engine.IO's 25 s long-poll
    tls_handshake_timeout: int = 10
    max_request_size: int = 1 << 20  # Engine.IO long-polling carries SDP; the REST API has its own 64 KiB


@dataclass(frozen=True)
class TurnConfig:
    enabled: bool = True
    listen: str = "0.0.0.0"  # noqa: S104
    port: int = 3478
    tls_port: int | None = 5349
    advertise: str = "auto"
    relay_ip: str | None = None
    relay_ports: tuple[int, int] = (49152, 65535)
    realm: str = "opencall"
    secret: str | None = None
    credential_ttl: int = 86400
    max_allocations: int = 1000
    max_allocations_per_user: int = 10
    max_allocations_per_ip: int = 20
    peer_policy: str = "call"  # call: the other party of a live call only | subnets: allowed_peers
    allowed_peers: tuple[str, ...] = ("auto",)
    denied_peers: tuple[str, ...] = ()
    # TCP/TLS client connections (turn.RelayConfig); the caps are checked against RLIMIT_NOFILE (opencall.fdlimit).
    max_connections: int = 256
    max_connections_per_ip: int = 16
    connection_idle_timeout: float = 30  # seconds (turn.config.SCHEMA holds the rules of these keys)
    tls_handshake_timeout: float = 10
    max_stream_frame: int = 4096
    stream_write_buffer: int = 65536


@dataclass(frozen=True)
class IceConfig:
    extra_servers: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class RateLimits:
    """Requests per minute (``rings_per_callee``: per ten minutes); 0 turns that limit off."""

    login_per_ip: int = 30
    login_failures_per_user: int = 10
    register_per_ip: int = 10
    contact_per_ip: int = 5
    client_log_per_ip: int = 120
    calls_per_caller: int = 30  # per account or anonymous browser, whatever socket it uses
    calls_per_ip: int = 60  # per source address (IPv6: per /64)
    rings_per_callee: int = 5  # unanswered rings of one Call ID by one caller in ten minutes


@dataclass(frozen=True)
class ClientLogConfig:
    """``client_log``: the browsers' lines (POST /api/client-log) in ``client.log`` beside ``log_file``."""

    bytes_per_minute: int = 256 * 1024  # all clients together; lines beyond it are dropped and counted
    max_bytes: int = 10 * 1024 * 1024  # client.log rolls over at this size
    backups: int = 2  # rolled-over files kept (client.log.1 ...)


@dataclass(frozen=True)
class SignalingConfig:
    redis_url: str | None = None
    # Seconds an active call waits for a party whose socket went away to come back (docs/api.md "Session
    # resume"); 0 ends the call at the disconnect, as the contract's table says.
    resume_grace: int = 15


@dataclass(frozen=True)
class MetricsConfig:
    """``/metrics``: served to clients in ``allow``, or to anyone presenting ``Authorization: Bearer <token>``."""

    enabled: bool = True
    token: str | None = None
    allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class MdnsConfig:
    """``mdns``: announce ``<name>.local`` and an ``_https._tcp`` service on the LAN (multicast DNS)."""

    enabled: bool = False  # off on a developer's machine; the .deb's installed config turns it on
    name: str = "auto"  # auto = this host's name as a DNS label


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    data_dir: Path = Path("data")
    database_url: str | None = None
    log_file: Path = Path("logs/opencall.log")
    log_level: str = "info"
    invite_ttl: int = 86400
    ring_timeout: int = 45
    turn: TurnConfig = field(default_factory=TurnConfig)
    ice: IceConfig = field(default_factory=IceConfig)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    client_log: ClientLogConfig = field(default_factory=ClientLogConfig)
    signaling: SignalingConfig = field(default_factory=SignalingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    mdns: MdnsConfig = field(default_factory=MdnsConfig)
    source: Path | None = None  # the file this was read from; None for the embedded defaults

    @property
    def resolved_database_url(self) -> str:
        """``database_url``, or the SQLite file in data_dir."""
        return self.database_url or f"sqlite://{self.data_dir / 'opencall.db'}"

    @property
    def tls_enabled(self) -> bool:
        return self.server.tls.mode != "off"
