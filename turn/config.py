"""The relay's own config: a frozen dataclass built by the app, or read from YAML/JSON by ``python -m turn``."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from turn.framing import MAX_FRAME, MIN_STREAM_FRAME
from turn.listen import is_wildcard


@dataclass(frozen=True, kw_only=True)
class RelayConfig:
    """Everything :class:`turn.server.TurnServer` needs. Lifetimes are in seconds (RFC 8656 §6, §9, §12)."""

    secret: str  # HMAC secret of the time-limited credentials (turn.credentials)
    listen: str = "0.0.0.0"  # noqa: S104 - STUN/TURN over UDP and TCP on this address
    port: int = 3478
    tls_port: int | None = None  # TURN over TLS; needs ssl_context or tls_cert + tls_key
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # TCP and TLS clients (turn.server.StreamConnection). A client uses one connection per allocation
    # (RFC 8656 §3.1, §5); each connection holds a file descriptor, so these caps bound the relay's descriptors.
    max_connections: int = 256  # TCP and TLS connections open at once, all clients together
    max_connections_per_ip: int = 16
    connection_idle_timeout: float = 30.0  # seconds a connection may stay without an allocation
    tls_handshake_timeout: float = 10.0  # seconds for a TLS client to finish its handshake
    max_stream_frame: int = 4096  # bytes: the longest STUN or ChannelData message read over TCP/TLS
    stream_write_buffer: int = 65536  # bytes queued to a client that does not read: reading from it pauses
    relay_ip: str | None = None  # relay sockets bind here; default: listen (required when listen is a wildcard)
    relay_ip6: str | None = None  # an IPv6 relay address besides an IPv4 relay_ip (REQUESTED-ADDRESS-FAMILY)
    relay_ports: tuple[int, int] = (49152, 65535)
    realm: str = "opencall"
    max_allocations: int = 1000
    max_allocations_per_user: int = 10
    max_allocations_per_ip: int = 20  # allocations and EVEN-PORT reservations per client IP address
    allowed_peers: tuple[str, ...] = ("auto",)  # CIDRs; auto = this host's subnets and the relay address
    denied_peers: tuple[str, ...] = ()
    software: str | None = "OpenCall TURN"  # the SOFTWARE attribute of responses; None leaves it out
    allocation_lifetime: int = 600  # default (RFC 8656 §6.2)
    max_allocation_lifetime: int = 3600
    permission_lifetime: int = 300  # RFC 8656 §9
    channel_lifetime: int = 600  # RFC 8656 §12
    nonce_lifetime: int = 600
    unauthenticated_rate: float = 50.0  # unauthenticated replies per second per client IP (UDP)
    unauthenticated_burst: int = 100
    # STUN/TURN messages per second per source IP (IPv6: per /64) read from sources that hold no allocation,
    # UDP and TCP/TLS, spent before decoding; over it, messages are dropped unread (turn.budget).
    unauthenticated_input_rate: int = 100
    unauthenticated_input_burst: int = 200
    # STUN/TURN messages per second per allocation (5-tuple) that miss the relay's fast path: requests (Refresh,
    # CreatePermission, ChannelBind, Binding) and indications other than the Send indications it relays at once;
    # ChannelData and those never spend it. Over it, messages are dropped unread. A browser sends a few a second
    # at most (refreshes every few minutes, a CreatePermission and a ChannelBind per remote candidate, a burst of
    # them at an ICE restart), so 50/s with a burst of 200 is over ten times what a call needs, while a client that
    # pipelines requests costs the relay no more than 50 handled messages a second (issue 12).
    allocation_input_rate: int = 50
    allocation_input_burst: int = 200

    def __post_init__(self) -> None:
        _check(bool(self.secret), "secret", "must be a non-empty string")
        for name in ("listen", "relay_ip", "relay_ip6"):
            value = getattr(self, name)
            if value is not None:
                try:
                    ipaddress.ip_address(value)
                except ValueError:
                    raise ValueError(f"{name}: must be an IP address, got {value!r}") from None
        _check(self.relay_ip6 is None or (":" in self.relay_ip6 and ":" not in self.relay_address),
               "relay_ip6", "must be an IPv6 address, beside an IPv4 relay_ip")
        _check(self.relay_ip is not None or not is_wildcard(self.listen), "relay_ip",
               "is required when listen is a wildcard address")
        for name in ("port", "tls_port"):
            value = getattr(self, name)
            _check(value is None or 1 <= value <= 65535, name, "must be a port from 1 to 65535")
        low, high = self.relay_ports
        _check(1 <= low <= high <= 65535, "relay_ports", "must be a range low-high within 1-65535")
        _check(
            self.tls_port is None or self.ssl_context is not None or (self.tls_cert and self.tls_key),
            "tls_port", "needs ssl_context, or tls_cert and tls_key",
        )
        _check(bool(self.realm), "realm", "must be a non-empty string")
        _check(1 <= self.max_connections_per_ip <= self.max_connections, "max_connections_per_ip",
               "must be from 1 to max_connections")
        for name in ("connection_idle_timeout", "tls_handshake_timeout"):
            _check(0 < getattr(self, name) <= 3600, name, "must be more than 0 and at most 3600 seconds")
        _check(MIN_STREAM_FRAME <= self.max_stream_frame <= MAX_FRAME, "max_stream_frame",
               f"must be from {MIN_STREAM_FRAME} to {MAX_FRAME} bytes")
        _check(self.stream_write_buffer >= 4096, "stream_write_buffer", "must be at least 4096 bytes")
        for name in ("max_allocations", "max_allocations_per_user", "max_allocations_per_ip",
                     "permission_lifetime", "channel_lifetime", "nonce_lifetime", "unauthenticated_burst",
                     "unauthenticated_input_rate", "unauthenticated_input_burst", "allocation_input_rate",
                     "allocation_input_burst"):
            _check(getattr(self, name) >= 1, name, "must be at least 1")
        _check(self.unauthenticated_rate > 0, "unauthenticated_rate", "must be positive")
        _check(1 <= self.allocation_lifetime <= self.max_allocation_lifetime, "allocation_lifetime",
               "must be from 1 to max_allocation_lifetime")
        for name in ("allowed_peers", "denied_peers"):
            for cidr in getattr(self, name):
                if cidr == "auto" and name == "allowed_peers":
                    continue
                try:
                    ipaddress.ip_network(cidr, strict=False)
                except ValueError:
                    raise ValueError(f"{name}: {cidr!r} is not a CIDR such as 192.168.1.0/24") from None

    @property
    def relay_address(self) -> str:
        """The address relay sockets bind to and XOR-RELAYED-ADDRESS names."""
        return self.relay_ip if self.relay_ip is not None else self.listen

    @property
    def relay_addresses(self) -> dict[int, str]:
        """The relay address of each address family served, by family code (1 IPv4, 2 IPv6; RFC 8656 §18.6)."""
        addresses = {2 if ":" in self.relay_address else 1: self.relay_address}
        if self.relay_ip6 is not None:
            addresses[2] = self.relay_ip6
        return addresses

    def tls_context(self) -> ssl.SSLContext | None:
        """The server-side TLS context for ``tls_port``: ``ssl_context``, or one loaded from the files."""
        if self.tls_port is None:
            return None
        if self.ssl_context is not None:
            return self.ssl_context
        assert self.tls_cert is not None and self.tls_key is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls_cert, self.tls_key)
        return context


def _check(ok: object, key: str, why: str) -> None:
    if not ok:
        raise ValueError(f"{key}: {why}")


FILE_KEYS = tuple(f.name for f in fields(RelayConfig) if f.name != "ssl_context")


def config_from_mapping(raw: Mapping[str, Any], base_dir: Path) -> RelayConfig:
    """Build a :class:`RelayConfig` from a parsed file; relative TLS paths resolve against ``base_dir``."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in FILE_KEYS:
            raise ValueError(f"{key}: unknown key (known: {', '.join(FILE_KEYS)})")
        if key in ("tls_cert", "tls_key") and value is not None:
            value = base_dir / Path(value)
        elif key == "relay_ports":
            value = _port_range(value)
        elif key in ("allowed_peers", "denied_peers"):
            if not isinstance(value, list):
                raise ValueError(f"{key}: must be a list of CIDRs")
            value = tuple(str(item) for item in value)
        elif value is not None or key not in _OPTIONAL:
            _check_type(key, value)
        values[key] = value
    if "secret" not in values:
        raise ValueError("secret: is required")
    try:
        return RelayConfig(**values)
    except TypeError as exc:
        raise ValueError(f"config: {exc}") from None


_OPTIONAL = {"tls_port", "tls_cert", "tls_key", "relay_ip", "relay_ip6", "software"}
_NUMBERS = {"unauthenticated_rate", "connection_idle_timeout", "tls_handshake_timeout"}


def _check_type(key: str, value: Any) -> None:
    """The file's value for ``key`` has the type of the RelayConfig field: int, number or string."""
    if key in _NUMBERS:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        kind = "a number"
    elif key == "tls_port" or isinstance(getattr(RelayConfig, key, None), int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        kind = "an integer"
    else:
        ok = isinstance(value, str)
        kind = "a string"
    if not ok:
        raise ValueError(f"{key}: must be {kind}, got {value!r}")


def _port_range(value: Any) -> tuple[int, int]:
    if isinstance(value, str) and "-" in value:
        low, _, high = value.partition("-")
        if low.strip().isdigit() and high.strip().isdigit():
            return int(low), int(high)
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return value[0], value[1]
    raise ValueError(f"relay_ports: must be like 49152-65535, got {value!r}")


def load_config(path: Path) -> RelayConfig:
    """Read a YAML (or JSON, which is YAML) relay config file."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"config: {path} must hold a mapping of keys")
    return config_from_mapping(raw, path.parent)
