"""The relay's config and its schema: the one set of rules for every relay key.

:data:`SCHEMA` gives each key's rule (type, range, canonical form) as a checker ``(key, value) -> value`` that
raises ``ValueError("<key>: <reason>")``. :class:`RelayConfig` (built by the app, or by tests) runs them on its
fields; :func:`config_from_mapping` on a file read by ``python -m turn``; OpenCall's config composes them for
its ``turn:`` section under the key ``turn.<key>`` (and uses the same checkers for its own keys).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from turn.framing import MAX_FRAME, MIN_STREAM_FRAME
from turn.listen import is_wildcard

Check = Callable[[str, Any], Any]  # (key, value) -> the typed value, or ValueError("<key>: <reason>")
LIMIT = 10**9  # the largest count or rate a key takes where nothing smaller is meaningful


def fail(key: str, why: str) -> ValueError:
    """The error of a bad value: ``<key>: <why>``."""
    return ValueError(f"{key}: {why}")


def integer(low: int, high: int) -> Check:
    """An integer from ``low`` to ``high`` (true and false are not integers here)."""
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise fail(key, f"must be an integer from {low} to {high}, got {value!r}")
        return value

    return check


def positive(high: float) -> Check:
    """A number (integer or not) more than 0 and at most ``high``: seconds, or a rate."""
    def check(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
            raise fail(key, f"must be a number more than 0 and at most {high}, got {value!r}")
        return value

    return check


def optional(check: Check) -> Check:
    """``check``, or None (null in a file)."""
    def wrapped(key: str, value: Any) -> Any:
        return None if value is None else check(key, value)

    return wrapped


def text(key: str, value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise fail(key, f"must be a non-empty string, got {value!r}")
    return value


def ip_address(key: str, value: Any) -> str:
    """An IPv4 or IPv6 address, in its canonical form."""
    address = text(key, value)
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise fail(key, f"must be an IP address, got {value!r}") from None


port = integer(1, 65535)


def port_range(key: str, value: Any) -> tuple[int, int]:
    """Relay ports: ``low-high`` (or a two-item list) within 1024-65535; RFC 8656 §7.2 suggests 49152-65535."""
    bounds: Any = None
    if isinstance(value, str) and "-" in value:
        low, _, high = value.partition("-")
        if low.strip().isdigit() and high.strip().isdigit():
            bounds = (int(low), int(high))
    elif isinstance(value, list | tuple) and len(value) == 2:
        bounds = tuple(value)
    if bounds is not None and all(type(bound) is int for bound in bounds) and 1024 <= bounds[0] <= bounds[1] <= 65535:
        return bounds[0], bounds[1]
    raise fail(key, f"must be a port range like 49152-65535 within 1024-65535, got {value!r}")


def cidrs(allow_auto: bool) -> Check:
    """A list of CIDRs (``auto`` too when ``allow_auto``), each in its canonical form."""
    def check(key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list | tuple):
            raise fail(key, f"must be a list of CIDRs, got {value!r}")
        result = []
        for item in value:
            if allow_auto and item == "auto":
                result.append("auto")
                continue
            try:
                result.append(str(ipaddress.ip_network(str(item), strict=False)))
            except ValueError:
                raise fail(key, f"{item!r} is not a CIDR such as 192.168.1.0/24") from None
        return tuple(result)

    return check


def file_path(key: str, value: Any) -> Path:
    """A file's path (a file's relative path is resolved by :func:`config_from_mapping`)."""
    return value if isinstance(value, Path) else Path(text(key, value))


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
    # TCP and TLS clients (turn.stream.StreamConnection). A client uses one connection per allocation
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
        for key, check in SCHEMA.items():
            check(key, getattr(self, key))
        _check(self.relay_ip6 is None or (":" in self.relay_ip6 and ":" not in self.relay_address),
               "relay_ip6", "must be an IPv6 address, beside an IPv4 relay_ip")
        _check(self.relay_ip is not None or not is_wildcard(self.listen), "relay_ip",
               "is required when listen is a wildcard address")
        _check(
            self.tls_port is None or self.ssl_context is not None or (self.tls_cert and self.tls_key),
            "tls_port", "needs ssl_context, or tls_cert and tls_key",
        )
        check_caps(self)
        _check(self.allocation_lifetime <= self.max_allocation_lifetime, "allocation_lifetime",
               "must be at most max_allocation_lifetime")

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
        raise fail(key, why)


def check_caps(config: Any, prefix: str = "") -> None:
    """A per-address connection cap within the global one (``max_connections_per_ip`` ≤ ``max_connections``);
    ``prefix`` names the section, e.g. ``turn.``."""
    if config.max_connections_per_ip > config.max_connections:
        raise fail(f"{prefix}max_connections_per_ip",
                   f"must be at most {prefix}max_connections ({config.max_connections})")


SECONDS = integer(1, 86400)
# Every key of RelayConfig but ssl_context (an object, given by code only), with its rule.
SCHEMA: dict[str, Check] = {
    "secret": text,
    "listen": ip_address,
    "port": port,
    "tls_port": optional(port),
    "tls_cert": optional(file_path),
    "tls_key": optional(file_path),
    "max_connections": integer(1, 1_000_000),
    "max_connections_per_ip": integer(1, 1_000_000),
    "connection_idle_timeout": positive(3600),
    "tls_handshake_timeout": positive(300),
    "max_stream_frame": integer(MIN_STREAM_FRAME, MAX_FRAME),
    "stream_write_buffer": integer(4096, 16 << 20),
    "relay_ip": optional(ip_address),
    "relay_ip6": optional(ip_address),
    "relay_ports": port_range,
    "realm": text,
    "max_allocations": integer(1, 1_000_000),
    "max_allocations_per_user": integer(1, 1_000_000),
    "max_allocations_per_ip": integer(1, 1_000_000),
    "allowed_peers": cidrs(allow_auto=True),
    "denied_peers": cidrs(allow_auto=False),
    "software": optional(text),
    "allocation_lifetime": SECONDS,
    "max_allocation_lifetime": SECONDS,
    "permission_lifetime": SECONDS,
    "channel_lifetime": SECONDS,
    "nonce_lifetime": SECONDS,
    "unauthenticated_rate": positive(LIMIT),
    "unauthenticated_burst": integer(1, LIMIT),
    "unauthenticated_input_rate": integer(1, LIMIT),
    "unauthenticated_input_burst": integer(1, LIMIT),
    "allocation_input_rate": integer(1, LIMIT),
    "allocation_input_burst": integer(1, LIMIT),
}
FILE_KEYS = tuple(SCHEMA)


def config_from_mapping(raw: Mapping[str, Any], base_dir: Path) -> RelayConfig:
    """Build a :class:`RelayConfig` from a parsed file; relative TLS paths resolve against ``base_dir``."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in SCHEMA:
            raise fail(key, f"unknown key (known: {', '.join(FILE_KEYS)})")
        values[key] = SCHEMA[key](key, value)
        if key in ("tls_cert", "tls_key") and values[key] is not None:
            values[key] = base_dir / values[key]
    if "secret" not in values:
        raise fail("secret", "is required")
    return RelayConfig(**values)


def load_config(path: Path) -> RelayConfig:
    """Read a YAML (or JSON, which is YAML) relay config file."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"config: {path} must hold a mapping of keys")
    return config_from_mapping(raw, path.parent)
