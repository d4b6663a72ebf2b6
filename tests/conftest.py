"""Fixtures: real OpenCall servers on 127.0.0.1, each in its own temporary folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.support import Server, configured_server, serve

TESTS = Path(__file__).resolve().parent
# What the quick loop (`pytest -m "not slow"`, under a minute) leaves out: browsers, network namespaces, the
# .deb, coturn, PostgreSQL, Node.js, the CLI's subprocesses, and the tests that wait out grace periods, timeouts,
# rate-limit windows and batched writes (each of these files takes 5 s or more); a test of its own that takes
# seconds in a quick file carries @pytest.mark.slow.
SLOW = ("lan/", "web/", "appliance/test_deb.py", "appliance/test_systemd_container.py", "appliance/test_upgrade.py",
        "appliance/test_arm64_emulation.py", "appliance/test_install_scripts.py", "appliance/test_cli.py",
        "appliance/test_observability.py",
        "turn/test_interop_", "turn/test_fuzz.py", "turn/test_hostile_serve.py",
        "turn/test_relay_fairness.py", "api/test_postgres.py",
        "api/test_rate_limits.py", "signaling/test_node_client.py", "signaling/test_resume.py",
        "signaling/test_shutdown.py", "signaling/test_history.py", "signaling/test_timeouts_and_limits.py",
        "signaling/test_calls.py", "test_cli.py", "test_cli_failures.py", "test_connection_limits.py",
        "api/test_schema_fuzz.py", "signaling/test_event_fuzz.py", "turn/test_connection_limits.py",
        "appliance/test_doctor.py", "test_dual_stack.py", "appliance/test_ca_constraints.py",
        "signaling/test_who_may_ring.py", "signaling/test_revocation.py", "signaling/test_auth.py")
# What needs root (`pytest -m "not root"` leaves it out): network namespaces (tests/lan), installing the .deb on
# this host, and booting containers (systemd-nspawn); a test of its own that needs root carries @pytest.mark.root.
ROOT = ("lan/", "appliance/test_deb.py", "appliance/test_systemd_container.py", "appliance/test_upgrade.py",
        "appliance/test_install_scripts.py", "appliance/test_arm64_emulation.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in tests/lan is marked ``lan``; those of :data:`SLOW` ``slow``, those of :data:`ROOT` ``root``."""
    for item in items:
        where = Path(str(item.fspath)).relative_to(TESTS).as_posix()
        if where.startswith("lan/"):
            item.add_marker(pytest.mark.lan)
        if where.startswith(SLOW):
            item.add_marker(pytest.mark.slow)
        if where.startswith(ROOT):
            item.add_marker(pytest.mark.root)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One shared server for tests that do not change server-wide state."""
    yield from serve(tmp_path_factory, "server")


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``make_server(overrides, name=…, **options)``: a dedicated server (:func:`tests.support.configured_server`),
    started now and stopped at the end of the test."""
    with ExitStack() as started:

        def start(overrides: dict[str, Any] | None = None, name: str = "srv", **options: Any) -> Server:
            return started.enter_context(configured_server(tmp_path / name, overrides, **options))

        yield start
