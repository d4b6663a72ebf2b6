"""The config file: embedded defaults, typed frozen values, relative paths, and a ConfigError naming the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from opencall.config import ENV_CONFIG, Config, ConfigError, TlsConfig, load_config, parse_config
from opencall.config.schema import RELAY_KEYS
from opencall.relay.settings import relay_config
from turn.config import config_from_mapping

REPO = Path(__file__).resolve().parent.parent


def _write(folder: Path, document: Any, name: str = "opencall.yaml") -> Path:
    path = folder / name
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_CONFIG, raising=False)


def test_embedded_defaults_match_the_design(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_env: None) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config.source is None
    assert (config.server.host, config.server.port, config.server.public_url) == ("0.0.0.0", 8443, None)
    assert config.server.tls == TlsConfig(mode="auto")
    assert config.tls_enabled
    assert config.data_dir == tmp_path / "data"
    assert config.log_file == tmp_path / "logs" / "opencall.log"
    assert config.database_url is None
    assert config.resolved_database_url == f"sqlite://{tmp_path / 'data' / 'opencall.db'}"
    assert (config.log_level, config.invite_ttl, config.ring_timeout) == ("info", 86400, 45)
    turn = config.turn
    assert (turn.enabled, turn.listen, turn.port, turn.tls_port, turn.advertise) == (
        True, "0.0.0.0", 3478, 5349, "auto")
    assert (turn.relay_ip, turn.relay_ports, turn.realm, turn.secret, turn.credential_ttl) == (
        None, (49152, 65535), "opencall", None, 86400)
    assert (turn.max_allocations, turn.max_allocations_per_user) == (1000, 10)
    assert (turn.allowed_peers, turn.denied_peers) == (("auto",), ())
    assert config.ice.extra_servers == ()  # no public STUN server by default
    assert dataclasses.asdict(config.rate_limits) == {
        "login_per_ip": 30, "login_failures_per_user": 10, "register_per_ip": 10, "contact_per_ip": 5,
        "client_log_per_ip": 120, "calls_per_caller": 30, "calls_per_ip": 60, "rings_per_callee": 5,
    }
    assert config.signaling.redis_url is None
    assert config.signaling.resume_grace == 15
    assert (config.mdns.enabled, config.mdns.name) == (False, "auto")  # a developer's machine stays quiet


def test_the_designs_calls_per_socket_is_read_as_calls_per_caller(tmp_path: Path) -> None:
    """Earlier versions named the call limit ``calls_per_socket``; it now counts per caller, across reconnects."""
    assert parse_config({"rate_limits": {"calls_per_socket": 7}}, tmp_path).rate_limits.calls_per_caller == 7
    with pytest.raises(ConfigError, match=r"rate_limits.calls_per_socket: was renamed calls_per_caller"):
        parse_config({"rate_limits": {"calls_per_socket": 7, "calls_per_caller": 8}}, tmp_path)


def test_the_example_file_holds_exactly_the_defaults(tmp_path: Path) -> None:
    example = yaml.safe_load((REPO / "opencall.yaml.example").read_text())
    documented = parse_config(example, tmp_path)
    assert documented == parse_config({}, tmp_path)
    # ... and documents every key of every section.
    sections = [f.name for f in dataclasses.fields(Config) if dataclasses.is_dataclass(getattr(documented, f.name))]
    assert {"server", "turn", "ice", "rate_limits", "signaling"} <= set(sections)
    for section in sections:
        field_names = {f.name for f in dataclasses.fields(getattr(documented, section))}
        assert set(example.get(section) or {}) == field_names, f"opencall.yaml.example, section {section}"
    top = {f.name for f in dataclasses.fields(Config)} - {"source"}
    assert set(example) == top


def test_config_objects_are_frozen(tmp_path: Path) -> None:
    config = parse_config({}, tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.log_level = "debug"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.port = 1  # type: ignore[misc]


@pytest.mark.parametrize("value", ["off", False])
def test_tls_off_and_false_are_both_accepted(tmp_path: Path, value: object) -> None:
    config = load_config(_write(tmp_path, f"server:\n  tls: {'off' if value == 'off' else 'false'}\n"))
    assert config.server.tls.mode == "off"
    assert not config.tls_enabled


def test_tls_files_resolve_against_the_config_folder(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, {"server": {"tls": {"cert": "certs/c.pem", "key": "/etc/k.pem"}}}))
    assert config.server.tls == TlsConfig(mode="files", cert=tmp_path / "certs" / "c.pem", key=Path("/etc/k.pem"))


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "etc" / "opencall"
    folder.mkdir(parents=True)
    path = _write(folder, {"data_dir": "state", "log_file": "../log/oc.log"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config("../etc/opencall/opencall.yaml")  # relative to the current directory
    assert config.source == path
    assert config.data_dir == folder / "state"
    assert config.log_file == tmp_path / "etc" / "log" / "oc.log"
    assert config.resolved_database_url == f"sqlite://{folder / 'state' / 'opencall.db'}"
    absolute = load_config(_write(folder, {"data_dir": str(tmp_path / "abs")}, name="abs.yaml"))
    assert absolute.data_dir == tmp_path / "abs"


def test_opencall_config_env_var_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from_env = _write(tmp_path, {"server": {"port": 9443}}, name="env.yaml")
    explicit = _write(tmp_path, {"server": {"port": 7443}}, name="explicit.yaml")
    monkeypatch.setenv(ENV_CONFIG, str(from_env))
    assert load_config().server.port == 9443
    assert load_config().source == from_env
    assert load_config(explicit).server.port == 7443  # --config wins over the environment
    monkeypatch.setenv(ENV_CONFIG, "")
    assert load_config().source is None


def test_empty_file_and_empty_sections_mean_defaults(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, "")).server.port == 8443
    config = load_config(_write(tmp_path, "server:\nturn:\nrate_limits:\n", name="sections.yaml"))
    assert (config.server.port, config.turn.port, config.rate_limits.login_per_ip) == (8443, 3478, 30)


def test_valid_values_are_typed(tmp_path: Path) -> None:
    config = parse_config({
        "server": {"host": "127.0.0.1", "port": 8080, "public_url": "https://box.local:8443/", "tls": "auto"},
        "database_url": "postgres://u:p@db:5432/opencall",
        "log_level": "DEBUG",
        "turn": {"relay_ports": "50000-50100", "allowed_peers": ["auto", "192.168.1.7/24"], "advertise": "::1",
                 "tls_port": None, "enabled": False, "port": 8080},
        "ice": {"extra_servers": [{"urls": ["stun:a.example:3478", "turn:a.example"], "username": "u",
                                   "credential": "c"}]},
        "signaling": {"resume_grace": 0},
    }, tmp_path)
    assert config.server.public_url == "https://box.local:8443"
    assert config.resolved_database_url == "postgres://u:p@db:5432/opencall"
    assert config.log_level == "debug"
    assert config.turn.relay_ports == (50000, 50100)
    assert config.turn.allowed_peers == ("auto", "192.168.1.0/24")
    assert config.turn.tls_port is None
    assert config.ice.extra_servers[0]["username"] == "u"
    assert config.signaling.resume_grace == 0  # a disconnect ends the call at once


def test_mdns_name_is_one_lower_case_label(tmp_path: Path) -> None:
    config = parse_config({"mdns": {"enabled": True, "name": "CallBox-2"}}, tmp_path)
    assert (config.mdns.enabled, config.mdns.name) == (True, "callbox-2")


BAD_VALUES = [
    ({"bogus": 1}, "bogus: unknown key"),
    ({"server": {"bogus": 1}}, "server.bogus: unknown key"),
    ({"turn": {"secrets": "x"}}, "turn.secrets: unknown key"),
    ({"server": {"port": 70000}}, "server.port: "),
    ({"server": {"port": 0}}, "server.port: "),
    ({"server": {"port": "8443"}}, "server.port: "),
    ({"server": {"port": True}}, "server.port: "),
    ({"server": {"host": "localhost"}}, "server.host: "),
    ({"server": {"public_url": "ftp://x"}}, "server.public_url: "),
    ({"server": {"tls": "garbage"}}, "server.tls: "),
    ({"server": {"tls": True}}, "server.tls: "),
    ({"server": {"tls": {"cert": "a.pem"}}}, "server.tls: "),
    ({"server": "not a mapping"}, "server: must be a mapping"),
    ({"turn": {"allowed_peers": ["300.1.2.0/24"]}}, "turn.allowed_peers: "),
    ({"turn": {"allowed_peers": "10.0.0.0/8"}}, "turn.allowed_peers: "),
    ({"turn": {"denied_peers": ["auto"]}}, "turn.denied_peers: "),
    ({"turn": {"relay_ports": "100-200"}}, "turn.relay_ports: "),
    ({"turn": {"relay_ports": "60000-50000"}}, "turn.relay_ports: "),
    ({"turn": {"listen": "not-an-ip"}}, "turn.listen: "),
    ({"turn": {"enabled": "yes please"}}, "turn.enabled: "),
    ({"turn": {"credential_ttl": 10}}, "turn.credential_ttl: "),
    ({"turn": {"secret": ""}}, "turn.secret: "),
    ({"turn": {"port": 8443}}, "turn.port: must differ from server.port"),
    ({"server": {"port": 3478}}, "turn.port: must differ from server.port"),
    ({"log_level": "loud"}, "log_level: "),
    ({"invite_ttl": 59}, "invite_ttl: "),
    ({"ring_timeout": 0}, "ring_timeout: "),
    ({"database_url": "mysql://x/y"}, "database_url: "),
    ({"data_dir": ""}, "data_dir: "),
    ({"rate_limits": {"login_per_ip": -1}}, "rate_limits.login_per_ip: "),
    ({"ice": {"extra_servers": [{"urls": "http://x"}]}}, "ice.extra_servers[0]: "),
    ({"ice": {"extra_servers": [{"url": "stun:x"}]}}, "ice.extra_servers[0]: "),
    ({"signaling": {"redis_url": "http://x"}}, "signaling.redis_url: "),
    ({"mdns": {"enabled": "on"}}, "mdns.enabled: must be true or false"),
    ({"mdns": {"name": "box.local"}}, "mdns.name: must be auto or one DNS label"),
    ({"mdns": {"name": "-box"}}, "mdns.name: "),
    ({"mdns": {"name": "my_box"}}, "mdns.name: "),
    ({"mdns": {"name": "x" * 64}}, "mdns.name: "),
    ({"mdns": {"name": ""}}, "mdns.name: "),
    ({"mdns": {"name": 7}}, "mdns.name: "),
    ({"mdns": {"port": 5353}}, "mdns.port: unknown key"),
    ({"signaling": {"redis_url": "redis://127.0.0.1:6379/0"}}, "signaling.redis_url: signaling across several"),
    ({"signaling": {"resume_grace": -1}}, "signaling.resume_grace: "),
    ({"signaling": {"resume_grace": 301}}, "signaling.resume_grace: "),
    ({"signaling": {"resume_grace": 2.5}}, "signaling.resume_grace: "),
    ({"signaling": {"resume_grace": "15"}}, "signaling.resume_grace: "),
    (["a", "list"], "config: the file must be a YAML mapping"),
    ("just text", "config: the file must be a YAML mapping"),
]


@pytest.mark.parametrize(("raw", "message"), BAD_VALUES)
def test_bad_values_name_the_key(tmp_path: Path, raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, tmp_path)
    text = str(caught.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_turn_port_may_equal_server_port_when_turn_is_off(tmp_path: Path) -> None:
    config = parse_config({"server": {"port": 3478}, "turn": {"enabled": False}}, tmp_path)
    assert config.server.port == config.turn.port == 3478


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config: cannot read .*missing\.yaml"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"^config: cannot read "):
        load_config(tmp_path)  # a directory
    with pytest.raises(ConfigError, match=r"^config: .*bad\.yaml is not valid YAML at line 2$"):
        load_config(_write(tmp_path, "server:\n\tport: 8443\n", name="bad.yaml"))


@pytest.mark.parametrize("key", RELAY_KEYS)
def test_relay_keys_are_checked_by_the_relays_own_rules(tmp_path: Path, key: str) -> None:
    """One validator: ``turn.<key>`` gets exactly the reason ``python -m turn`` gives for ``<key>``."""
    bad = {"not": "a value"}
    with pytest.raises(ValueError) as relay:
        config_from_mapping({"secret": "x", "listen": "127.0.0.1", key: bad}, tmp_path)
    with pytest.raises(ConfigError) as app:
        parse_config({"turn": {key: bad}}, tmp_path)
    assert str(relay.value).startswith(f"{key}: ")
    assert str(app.value) == f"turn.{relay.value}"


def test_relay_rules_seen_through_the_app(tmp_path: Path) -> None:
    config = parse_config({"turn": {"connection_idle_timeout": 0.5, "relay_ports": [50000, 50100]}}, tmp_path)
    assert (config.turn.connection_idle_timeout, config.turn.relay_ports) == (0.5, (50000, 50100))
    with pytest.raises(ConfigError, match=r"^turn.tls_handshake_timeout: must be a number more than 0 and at most 300"):
        parse_config({"turn": {"tls_handshake_timeout": 301}}, tmp_path)
    with pytest.raises(ConfigError, match=r"^turn.max_connections_per_ip: must be at most turn.max_connections \(4\)$"):
        parse_config({"turn": {"max_connections": 4, "max_connections_per_ip": 5}}, tmp_path)


def test_the_relay_gets_every_turn_key_it_takes(tmp_path: Path) -> None:
    config = parse_config({"turn": {
        "listen": "127.0.0.1", "port": 3479, "tls_port": 5350, "relay_ports": "50000-50100", "realm": "home",
        "max_allocations": 40, "max_allocations_per_user": 3, "max_allocations_per_ip": 4,
        "allowed_peers": ["127.0.0.0/8"], "denied_peers": ["10.0.0.0/8"], "max_connections": 30,
        "max_connections_per_ip": 5, "connection_idle_timeout": 0.5, "tls_handshake_timeout": 2,
        "max_stream_frame": 2000, "stream_write_buffer": 8192,
    }}, tmp_path)
    settings = relay_config(config, "s3cret", ["127.0.0.1"], None)
    for key in set(RELAY_KEYS) - {"secret", "tls_port", "relay_ip"}:
        assert getattr(settings, key) == getattr(config.turn, key), key
    assert (settings.secret, settings.tls_port, settings.relay_ip) == ("s3cret", None, "127.0.0.1")  # no TLS context
