"""What each key of the config file accepts, and :func:`parse_config`, which checks a parsed document into a
:class:`~opencall.config.model.Config`.

Every key is checked; an unknown key or a bad value raises :class:`ConfigError` whose message names the key
(``server.port: must be an integer from 1 to 65535``). The ``turn:`` keys the relay takes are checked by the
relay's own rules (:data:`turn.config.SCHEMA`), named ``turn.<key>``; the generic checkers (integers, ports,
IP addresses, CIDR lists) are the relay's too. Relative paths are resolved against the config file's folder,
or the current directory when there is no config file.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opencall.config import model
from opencall.config.model import Config
from turn import config as relay
from turn.config import cidrs, integer, ip_address, optional, port
from turn.config import text as _text
from turn.listen import is_wildcard

Check = Callable[[str, Any], Any]  # (key, raw value) -> the typed value; ConfigError or ValueError naming the key


class ConfigError(Exception):
    """A config file that cannot be used; the message names the key and why."""


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
PEER_POLICIES = ("call", "subnets")
DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")  # RFC 1123 host name label, lower case

# ---------------------------------------------------------------------------------------------------------
# The app's own value checkers (the generic ones are turn.config's): (key, raw value) -> the typed value.


def _fail(key: str, why: str) -> ConfigError:
    return ConfigError(f"{key}: {why}")


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, f"must be true or false, got {value!r}")
    return value


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


def _tls(key: str, value: Any) -> model.TlsConfig:
    if value is False or value == "off":
        return model.TlsConfig(mode="off")
    if value == "auto":
        return model.TlsConfig(mode="auto")
    if isinstance(value, dict) and set(value) == {"cert", "key"}:
        return model.TlsConfig(mode="files", cert=Path(_text(f"{key}.cert", value["cert"])),
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
SERVER_KEYS: dict[str, Check] = {
    "host": ip_address,
    "port": port,
    "public_url": optional(_url(("http", "https"))),
    "tls": _tls,
    "max_connections": integer(16, 1_000_000),
    "max_connections_per_ip": integer(1, 1_000_000),
    "operator_connections": integer(0, 10_000),
    "request_timeout": integer(1, 3600),
    "keep_alive_timeout": integer(1, 3600),
    "response_timeout": integer(30, 3600),
    "tls_handshake_timeout": integer(1, 300),
    "max_request_size": integer(64 << 10, 100 << 20),
}
# The relay's keys (turn.config.SCHEMA) that the app passes on to it, checked by the relay's own rules.
RELAY_KEYS = ("listen", "port", "tls_port", "relay_ip", "relay_ports", "realm", "secret", "max_allocations",
              "max_allocations_per_user", "max_allocations_per_ip", "allowed_peers", "denied_peers",
              "max_connections", "max_connections_per_ip", "connection_idle_timeout", "tls_handshake_timeout",
              "max_stream_frame", "stream_write_buffer")
TURN_KEYS: dict[str, Check] = {
    **{key: relay.SCHEMA[key] for key in RELAY_KEYS},
    "secret": optional(_text),  # generated into data_dir when null
    "enabled": _bool,
    "advertise": _host,
    "credential_ttl": integer(60, 30 * 86400),
    "peer_policy": _peer_policy,
}
ICE_KEYS: dict[str, Check] = {"extra_servers": _ice_servers}
RATE_LIMIT_KEYS: dict[str, Check] = {
    name.name: integer(0, 1_000_000) for name in fields(model.RateLimits)
}
# Keys of earlier versions still read, under their new name: (section, old key) → new key.
RENAMED_KEYS = {("rate_limits", "calls_per_socket"): "calls_per_caller"}
CLIENT_LOG_KEYS: dict[str, Check] = {
    "bytes_per_minute": integer(16 << 10, 64 << 20),  # at least one 2000-character line of any script
    "max_bytes": integer(64 << 10, 1 << 30),
    "backups": integer(1, 100),
}


def _redis_url(key: str, value: Any) -> None:
    """Reserved: call state lives in one process, so a shared Socket.IO bus alone would split calls."""
    _url(("redis", "rediss"))(key, value)
    raise _fail(key, "signaling across several nodes is not available in this version; leave it null")


SIGNALING_KEYS: dict[str, Check] = {
    "redis_url": optional(_redis_url),
    "resume_grace": integer(0, 300),
}
METRICS_KEYS: dict[str, Check] = {
    "enabled": _bool,
    "token": optional(_token),
    "allow": cidrs(allow_auto=False),
}
MDNS_KEYS: dict[str, Check] = {"enabled": _bool, "name": _mdns_name}
SECTIONS: dict[str, tuple[type, dict[str, Check]]] = {
    "server": (model.ServerConfig, SERVER_KEYS),
    "turn": (model.TurnConfig, TURN_KEYS),
    "ice": (model.IceConfig, ICE_KEYS),
    "rate_limits": (model.RateLimits, RATE_LIMIT_KEYS),
    "client_log": (model.ClientLogConfig, CLIENT_LOG_KEYS),
    "signaling": (model.SignalingConfig, SIGNALING_KEYS),
    "metrics": (model.MetricsConfig, METRICS_KEYS),
    "mdns": (model.MdnsConfig, MDNS_KEYS),
}
TOP_KEYS: dict[str, Check] = {
    "data_dir": _path,
    "database_url": optional(_database_url),
    "log_file": _path,
    "log_level": _log_level,
    "invite_ttl": integer(60, 365 * 86400),
    "ring_timeout": integer(5, 600),
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
    try:
        return _parse(raw, base_dir, source)
    except ValueError as exc:  # the relay's rules (turn.config) raise ValueError("<key>: <reason>")
        raise ConfigError(str(exc)) from None


def _parse(raw: Any, base_dir: Path, source: Path | None) -> Config:
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
    if server.tls.mode == "files":
        tls = replace(server.tls, cert=_resolve(base_dir, server.tls.cert), key=_resolve(base_dir, server.tls.key))
        server = replace(server, tls=tls)
    relay.check_caps(server, "server.")
    turn = config.turn
    relay.check_caps(turn, "turn.")
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
