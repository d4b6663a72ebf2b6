"""The one config file: YAML loaded into typed, frozen objects with the embedded defaults of design.md.

Every key is checked; an unknown key or a bad value raises :class:`ConfigError` whose message names the key
(``server.port: must be an integer from 1 to 65535``). Relative paths are resolved against the config
file's folder, or the current directory when there is no config file.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from turn.framing import MAX_FRAME, MIN_STREAM_FRAME
from turn.listen import is_wildcard

ENV_CONFIG = "OPENCALL_CONFIG"
SYSTEM_CONFIG = Path("/etc/opencall/opencall.yaml")  # the .deb's config


class ConfigError(Exception):
    """A config file that cannot be used; the message names the key and why."""


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
    connection_idle_timeout: int = 30
    tls_handshake_timeout: int = 10
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


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
PEER_POLICIES = ("call", "subnets")
DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")  # RFC 1123 host name label, lower case

# ---------------------------------------------------------------------------------------------------------
# Value checkers: each takes (key, raw value) and returns the typed value or raises ConfigError.


def _fail(key: str, why: str) -> ConfigError:
    return ConfigError(f"{key}: {why}")


def _int(low: int, high: int) -> Callable[[str, Any], int]:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _fail(key, f"must be an integer from {low} to {high}, got {value!r}")
        return value

    return check


def _port(key: str, value: Any) -> int:
    return _int(1, 65535)(key, value)


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    def wrapped(key: str, value: Any) -> Any:
        return None if value is None else check(key, value)

    return wrapped


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, f"must be true or false, got {value!r}")
    return value


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, f"must be a non-empty string, got {value!r}")
    return value


def _ip(key: str, value: Any) -> str:
    try:
        return str(ipaddress.ip_address(_text(key, value)))
    except ValueError:
        raise _fail(key, f"must be an IP address, got {value!r}") from None


def _host(key: str, value: Any) -> str:
    text = _text(key, value)
    if any(ch.isspace() for ch in text) or "/" in text:
        raise _fail(key, f"must be a host name or IP address, got {value!r}")
    return text


def _url(schemes: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        text = _text(key, value)
        parts = urlsplit(text)
        if parts.scheme not in schemes or not parts.netloc:
            raise _fail(key, f"must be a {' or '.join(schemes)} URL, got {value!r}")
        return text.rstrip("/")

    return check


def _database_url(key: str, value: Any) -> str:
    text = _text(key, value)
    scheme = text.split("://", 1)[0] if "://" in text else ""
    if scheme not in ("sqlite", "postgres", "postgresql", "asyncpg", "psycopg"):
        raise _fail(key, f"must be a sqlite:// or postgres:// URL, got {value!r}")
    return text


def _peer_policy(key: str, value: Any) -> str:
    if value not in PEER_POLICIES:
        raise _fail(key, f"must be one of {', '.join(PEER_POLICIES)}, got {value!r}")
    return str(value)


def _log_level(key: str, value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in LOG_LEVELS:
        raise _fail(key, f"must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return value.lower()


def _port_range(key: str, value: Any) -> tuple[int, int]:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(text, str) and "-" in text:
        low_text, _, high_text = text.partition("-")
        if low_text.strip().isdigit() and high_text.strip().isdigit():
            low, high = int(low_text), int(high_text)
            if 1024 <= low <= high <= 65535:
                return low, high
    raise _fail(key, f"must be a port range like 49152-65535 within 1024-65535, got {value!r}")


def _cidr_list(allow_auto: bool) -> Callable[[str, Any], tuple[str, ...]]:
    def check(key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise _fail(key, f"must be a list of CIDRs, got {value!r}")
        result = []
        for item in value:
            if allow_auto and item == "auto":
                result.append("auto")
                continue
            try:
                result.append(str(ipaddress.ip_network(str(item), strict=False)))
            except ValueError:
                raise _fail(key, f"{item!r} is not a CIDR such as 192.168.1.0/24") from None
        return tuple(result)

    return check


def _ice_servers(key: str, value: Any) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(value, list):
        raise _fail(key, f"must be a list of ICE servers, got {value!r}")
    servers = []
    for index, server in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(server, dict) or set(server) - {"urls", "username", "credential"}:
            raise _fail(where, "must be a mapping with urls and optional username, credential")
        urls = server.get("urls")
        url_list = urls if isinstance(urls, list) else [urls]
        if not url_list or not all(
            isinstance(u, str) and u.split(":", 1)[0] in ("stun", "stuns", "turn", "turns") for u in url_list
        ):
            raise _fail(where, f"urls must be stun:, stuns:, turn: or turns: URLs, got {urls!r}")
        servers.append(dict(server))
    return tuple(servers)


def _tls(key: str, value: Any) -> TlsConfig:
    if value is False or value == "off":
        return TlsConfig(mode="off")
    if value == "auto":
        return TlsConfig(mode="auto")
    if isinstance(value, dict) and set(value) == {"cert", "key"}:
        return TlsConfig(mode="files", cert=Path(_text(f"{key}.cert", value["cert"])),
                         key=Path(_text(f"{key}.key", value["key"])))
    raise _fail(key, f"must be auto, off, or {{cert: PATH, key: PATH}}, got {value!r}")


def _token(key: str, value: Any) -> str:
    text = _text(key, value)
    if len(text) < 16 or any(ch.isspace() for ch in text):
        raise _fail(key, "must be at least 16 characters without spaces (e.g. from `openssl rand -hex 16`)")
    return text


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _mdns_name(key: str, value: Any) -> str:
    text = value.lower() if isinstance(value, str) else value
    if text == "auto" or (isinstance(text, str) and DNS_LABEL.match(text)):
        return str(text)
    raise _fail(key, f"must be auto or one DNS label (a-z, 0-9 and '-', at most 63 characters, "
                     f"without .local), got {value!r}")


def _path(key: str, value: Any) -> Path:
    return Path(_text(key, value))


# Each section: key -> checker. The dataclass field of the same name receives the checked value.
SERVER_KEYS: dict[str, Callable[[str, Any], Any]] = {
    "host": _ip,
    "port": _port,
    "public_url": _optional(_url(("http", "https"))),
    "tls": _tls,
    "max_connections": _int(16, 1_000_000),
    "max_connections_per_ip": _int(1, 1_000_000),
    "operator_connections": _int(0, 10_000),
    "request_timeout": _int(1, 3600),
    "keep_alive_timeout": _int(1, 3600),
    "response_timeout": _int(30, 3600),
    "tls_handshake_timeout": _int(1, 300),
    "max_request_size": _int(64 << 10, 100 << 20),
}
TURN_KEYS: dict[str, Callable[[str, Any], Any]] = {
    "enabled": _bool,
    "listen": _ip,
    "port": _port,
    "tls_port": _optional(_port),
    "advertise": _host,
    "relay_ip": _optional(_ip),
    "relay_ports": _port_range,
    "realm": _text,
    "secret": _optional(_text),
    "credential_ttl": _int(60, 30 * 86400),
    "max_allocations": _int(1, 1_000_000),
    "max_allocations_per_user": _int(1, 1_000_000),
    "max_allocations_per_ip": _int(1, 1_000_000),
    "peer_policy": _peer_policy,
    "allowed_peers": _cidr_list(allow_auto=True),
    "denied_peers": _cidr_list(allow_auto=False),
    "max_connections": _int(1, 1_000_000),
    "max_connections_per_ip": _int(1, 1_000_000),
    "connection_idle_timeout": _int(1, 3600),
    "tls_handshake_timeout": _int(1, 300),
    "max_stream_frame": _int(MIN_STREAM_FRAME, MAX_FRAME),
    "stream_write_buffer": _int(4096, 16 << 20),
}
ICE_KEYS: dict[str, Callable[[str, Any], Any]] = {"extra_servers": _ice_servers}
RATE_LIMIT_KEYS: dict[str, Callable[[str, Any], Any]] = {
    name.name: _int(0, 1_000_000) for name in fields(RateLimits)
}
# Keys of earlier versions still read, under their new name: (section, old key) → new key.
RENAMED_KEYS = {("rate_limits", "calls_per_socket"): "calls_per_caller"}
CLIENT_LOG_KEYS: dict[str, Callable[[str, Any], Any]] = {
    "bytes_per_minute": _int(16 << 10, 64 << 20),  # at least one 2000-character line of any script
    "max_bytes": _int(64 << 10, 1 << 30),
    "backups": _int(1, 100),
}


def _redis_url(key: str, value: Any) -> None:
    """Reserved: call state lives in one process, so a shared Socket.IO bus alone would split calls."""
    _url(("redis", "rediss"))(key, value)
    raise _fail(key, "signaling across several nodes is not available in this version; leave it null")


SIGNALING_KEYS: dict[str, Callable[[str, Any], Any]] = {
    "redis_url": _optional(_redis_url),
    "resume_grace": _int(0, 300),
}
METRICS_KEYS: dict[str, Callable[[str, Any], Any]] = {
    "enabled": _bool,
    "token": _optional(_token),
    "allow": _cidr_list(allow_auto=False),
}
MDNS_KEYS: dict[str, Callable[[str, Any], Any]] = {"enabled": _bool, "name": _mdns_name}
SECTIONS: dict[str, tuple[type, dict[str, Callable[[str, Any], Any]]]] = {
    "server": (ServerConfig, SERVER_KEYS),
    "turn": (TurnConfig, TURN_KEYS),
    "ice": (IceConfig, ICE_KEYS),
    "rate_limits": (RateLimits, RATE_LIMIT_KEYS),
    "client_log": (ClientLogConfig, CLIENT_LOG_KEYS),
    "signaling": (SignalingConfig, SIGNALING_KEYS),
    "metrics": (MetricsConfig, METRICS_KEYS),
    "mdns": (MdnsConfig, MDNS_KEYS),
}
TOP_KEYS: dict[str, Callable[[str, Any], Any]] = {
    "data_dir": _path,
    "database_url": _optional(_database_url),
    "log_file": _path,
    "log_level": _log_level,
    "invite_ttl": _int(60, 365 * 86400),
    "ring_timeout": _int(5, 600),
}


def _section(name: str, raw: Any) -> Any:
    cls, checkers = SECTIONS[name]
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise _fail(name, f"must be a mapping, got {raw!r}")
    values = {}
    for key, value in raw.items():
        new = RENAMED_KEYS.get((name, key))
        if new is not None and new in raw:
            raise _fail(f"{name}.{key}", f"was renamed {new}; give only {name}.{new}")
        key = new or key
        if key not in checkers:
            raise _fail(f"{name}.{key}", "unknown key")
        values[key] = checkers[key](f"{name}.{key}", value)
    return cls(**values)


def parse_config(raw: Any, base_dir: Path, source: Path | None = None) -> Config:
    """Check a parsed YAML document and build the :class:`Config`; relative paths resolve to base_dir."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("config: the file must be a YAML mapping of keys")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECTIONS:
            values[key] = _section(key, value)
        elif key in TOP_KEYS:
            values[key] = TOP_KEYS[key](key, value)
        else:
            raise _fail(str(key), "unknown key")
    config = Config(**values, source=source)
    server = config.server
    tls = server.tls
    if tls.mode == "files":
        tls = TlsConfig(mode="files", cert=_resolve(base_dir, tls.cert), key=_resolve(base_dir, tls.key))
        server = replace(server, tls=tls)
    for section, limits in (("server", server), ("turn", config.turn)):
        if limits.max_connections_per_ip > limits.max_connections:
            raise _fail(f"{section}.max_connections_per_ip",
                        f"must be at most {section}.max_connections ({limits.max_connections})")
    turn = config.turn
    if turn.enabled and turn.port == server.port:
        raise _fail("turn.port", f"must differ from server.port ({server.port})")
    if turn.enabled and turn.relay_ip is None and not _is_ip(turn.advertise) and turn.advertise != "auto" \
            and is_wildcard(turn.listen):
        raise _fail("turn.relay_ip", "must be set when turn.advertise is a host name and turn.listen is 0.0.0.0")
    return replace(
        config,
        server=server,
        data_dir=_resolve(base_dir, config.data_dir),
        log_file=_resolve(base_dir, config.log_file),
    )


def _resolve(base_dir: Path, path: Path | None) -> Path:
    assert path is not None
    return path if path.is_absolute() else (base_dir / path).resolve()


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read the config file at ``path`` (or ``$OPENCALL_CONFIG``); the embedded defaults when neither is set."""
    chosen = path if path is not None else os.environ.get(ENV_CONFIG) or None
    if chosen is None:
        return parse_config({}, Path.cwd())
    file = Path(chosen).expanduser().resolve()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config: cannot read {file}: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config: {file} is not valid YAML{where}") from None
    return parse_config(raw, file.parent, source=file)


@dataclass(frozen=True)
class ConfigChoice:
    """Which config a command reads: ``path`` (None: the embedded defaults) and where that choice came from."""

    path: Path | None
    origin: str  # "--config", "$OPENCALL_CONFIG", "the installed config" or "" for the embedded defaults


def choose_config(cli_value: str | os.PathLike[str] | None, env: Mapping[str, str],
                  system_config_exists: bool) -> ConfigChoice:
    """The lookup order of every command: ``--config``, else ``$OPENCALL_CONFIG``, else
    /etc/opencall/opencall.yaml when it exists, else the embedded defaults."""
    if cli_value is not None:
        return ConfigChoice(Path(cli_value), "--config")
    if env.get(ENV_CONFIG):
        return ConfigChoice(Path(env[ENV_CONFIG]), f"${ENV_CONFIG}")
    if system_config_exists:
        return ConfigChoice(SYSTEM_CONFIG, "the installed config")
    return ConfigChoice(None, "")


def find_config(cli_value: str | os.PathLike[str] | None) -> tuple[Config, str]:
    """The config a command uses (:func:`choose_config` on this host) and the line that names it, e.g.
    ``config: /etc/opencall/opencall.yaml (the installed config)``."""
    choice = choose_config(cli_value, os.environ, SYSTEM_CONFIG.exists())
    if choice.path is None:
        return (parse_config({}, Path.cwd()),
                f"config: embedded defaults (no --config, no ${ENV_CONFIG}, no {SYSTEM_CONFIG})")
    config = load_config(choice.path)
    return config, f"config: {config.source} ({choice.origin})"


def check_files(config: Config) -> None:
    """Raise ConfigError naming the key when a file the config points at cannot be read (the operator's
    certificate and key); the rest of the config is checked when it is parsed."""
    tls = config.server.tls
    if tls.mode != "files":
        return
    for key, path in (("server.tls.cert", tls.cert), ("server.tls.key", tls.key)):
        assert path is not None
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
