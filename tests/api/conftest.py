"""Dedicated servers shared by several API test modules (each started once per test session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Server, free_port, serve

CONFIGURED_TURN_SECRET = "configured-turn-secret-5b7f2a"
PUBLIC_URL = "https://calls.example.org"
EXTRA_ICE_SERVERS = [
    {"urls": "stun:stun.example.org:3478"},
    {"urls": ["turn:turn.example.org:3478"], "username": "fixed", "credential": "fixed-credential"},
]


@pytest.fixture(scope="session")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``tls: auto`` (self-signed certificate in data_dir) with TURN over TLS advertised."""
    yield from serve(tmp_path_factory, "https", {"server": {"tls": "auto"}, "turn": {"tls_port": free_port()}})


@pytest.fixture(scope="session")
def custom_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """public_url, a configured TURN secret, extra ICE servers and the shortest TTLs the config allows."""
    yield from serve(tmp_path_factory, "custom", {
        "server": {"public_url": PUBLIC_URL},
        "turn": {"secret": CONFIGURED_TURN_SECRET, "credential_ttl": 120},
        "ice": {"extra_servers": EXTRA_ICE_SERVERS},
        "invite_ttl": 60,
    })
