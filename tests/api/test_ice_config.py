"""GET /api/ice-config: this box's STUN/TURN with fresh time-limited credentials (TURN REST API style)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from opencall.services.ice import IcePlan, ice_servers
from tests.api.conftest import CONFIGURED_TURN_SECRET, EXTRA_ICE_SERVERS
from tests.api.helpers import ANON_COOKIE, as_bearer
from tests.support import Server, api_key, register


def _expected_credential(secret: str, username: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def _secret_file(server: Server) -> str:
    return (server.data_dir / "turn-secret").read_text().strip()


def _check_relay_entries(servers: list[dict[str, Any]], host: str, port: int, tls_port: int | None,
                         secret: str, user: str, ttl: int) -> None:
    """stun:, turn:, turn:?transport=tcp (and turns: with TLS), one valid credential pair shared by all."""
    urls = [f"stun:{host}:{port}", f"turn:{host}:{port}", f"turn:{host}:{port}?transport=tcp"]
    if tls_port is not None:
        urls.append(f"turns:{host}:{tls_port}?transport=tcp")
    assert [entry["urls"] for entry in servers] == urls
    assert servers[0] == {"urls": urls[0]}
    username = servers[1]["username"]
    for entry in servers[1:]:
        assert set(entry) == {"urls", "username", "credential"}
        assert entry["username"] == username
        assert entry["credential"] == _expected_credential(secret, username)
    expiry, _, who = username.partition(":")
    assert who == user
    assert abs(int(expiry) - (time.time() + ttl)) <= 5


def test_anonymous_ice_config(server: Server) -> None:
    client = server.client()
    response = client.get("/api/ice-config")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert list(body) == ["iceServers"]
    anon = client.cookies[ANON_COOKIE].partition(".")[0]  # the server-signed id, without its signature
    port = server.config["turn"]["port"]
    # Loopback advertise, no TLS, no extra servers: no public STUN server and nothing off this box.
    _check_relay_entries(body["iceServers"], "127.0.0.1", port, None, _secret_file(server), anon, 86400)
    again = client.get("/api/ice-config").json()["iceServers"]
    assert again[1]["username"].split(":", 1)[1] == anon


def _account_principal(servers: list[dict[str, Any]]) -> str:
    """The user part of the credentials: an account's is ``user-<account id>``, which its owner cannot choose."""
    principal = servers[1]["username"].split(":", 1)[1]
    assert principal.startswith("user-") and principal[5:].isdigit(), principal
    return principal


def test_ice_config_for_an_account(server: Server) -> None:
    client, _ = register(server)
    other, _ = register(server)
    port = server.config["turn"]["port"]
    principals = set()
    for response in (client.get("/api/ice-config"),
                     server.client().get("/api/ice-config", headers=as_bearer(api_key(client)))):
        servers = response.json()["iceServers"]
        principals.add(_account_principal(servers))
        _check_relay_entries(servers, "127.0.0.1", port, None, _secret_file(server), principals.pop(), 86400)
        principals.add(_account_principal(servers))
        assert ANON_COOKIE not in response.cookies
    assert len(principals) == 1  # the same for the session cookie and the API key
    assert _account_principal(other.get("/api/ice-config").json()["iceServers"]) not in principals


def test_turns_is_listed_when_tls_is_on(https_server: Server) -> None:
    client, _ = register(https_server)
    servers = client.get("/api/ice-config").json()["iceServers"]
    _check_relay_entries(servers, "127.0.0.1", https_server.config["turn"]["port"],
                         https_server.config["turn"]["tls_port"], _secret_file(https_server),
                         _account_principal(servers), 86400)


def test_configured_secret_ttl_and_extra_servers(custom_server: Server) -> None:
    servers = custom_server.client().get("/api/ice-config").json()["iceServers"]
    own, extra = servers[:3], servers[3:]
    user = own[1]["username"].split(":", 1)[1]
    _check_relay_entries(own, "127.0.0.1", custom_server.config["turn"]["port"], None, CONFIGURED_TURN_SECRET,
                         user, 120)
    assert extra == EXTRA_ICE_SERVERS
    assert not (custom_server.data_dir / "turn-secret").exists()


def test_turn_disabled_lists_only_extra_servers(make_server: Any) -> None:
    extra = [{"urls": "stun:stun.example.org:3478"}]
    disabled = make_server({"turn": {"enabled": False}, "ice": {"extra_servers": extra}})
    assert disabled.client().get("/api/ice-config").json() == {"iceServers": extra}


def test_every_advertised_address_is_offered_first_address_first() -> None:
    """A box with several LAN addresses (turn.advertise: auto): each one's entries, in the plan's order,
    one credential pair for all, then the extra servers."""
    plan = IcePlan(enabled=True, hosts=("192.168.50.2", "[fd42:50::2]"), port=3478, tls_port=5349,
                   secret="two-address-secret", credential_ttl=600, extra_servers=tuple(EXTRA_ICE_SERVERS))
    servers = ice_servers(plan, "alice")
    first, second, extra = servers[:4], servers[4:8], servers[8:]
    _check_relay_entries(first, "192.168.50.2", 3478, 5349, "two-address-secret", "alice", 600)
    _check_relay_entries(second, "[fd42:50::2]", 3478, 5349, "two-address-secret", "alice", 600)
    assert second[1]["username"] == first[1]["username"]
    assert extra == EXTRA_ICE_SERVERS
    no_tls = ice_servers(IcePlan(enabled=True, hosts=("192.168.50.2", "[fd42:50::2]"), port=3478, tls_port=None,
                                 secret="s", credential_ttl=600, extra_servers=()), "bob")
    assert [entry["urls"] for entry in no_tls] == [
        "stun:192.168.50.2:3478", "turn:192.168.50.2:3478", "turn:192.168.50.2:3478?transport=tcp",
        "stun:[fd42:50::2]:3478", "turn:[fd42:50::2]:3478", "turn:[fd42:50::2]:3478?transport=tcp"]
