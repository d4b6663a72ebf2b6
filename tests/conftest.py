"""Fixtures: real OpenCall servers on 127.0.0.1, each in its own temporary folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Server, test_config

TESTS = Path(__file__).resolve().parent
# What the quick loop (`pytest -m "not slow"`, under a minute) leaves out: browsers, network namespaces, the
# .deb, coturn, PostgreSQL, Node.js, the CLI's subprocesses, and the tests that wait out grace periods, timeouts,
# rate-limit windows and batched writes (each of these files takes 5 s or more); a test of its own that takes
# seconds in a quick file carries @pytest.mark.slow.
SLOW = ("lan/", "web/", "appliance/test_deb.py", "appliance/test_systemd_container.py", "appliance/test_upgrade.py",
        "appliance/test_arm64_emulation.py", "appliance/test_install_scripts.py", "appliance/test_cli.py",
        "appliance/test_observability.py",
        "turn/test_interop_", "turn/test_fuzz.py", "turn/test_hostile_serve.py", "api/test_postgres.py",
        "api/test_rate_limits.py", "signaling/test_node_client.py", "signaling/test_resume.py",
        "signaling/test_shutdown.py", "signaling/test_history.py", "signaling/test_timeouts_and_limits.py",
        "signaling/test_calls.py", "test_cli.py", "test_cli_failures.py", "test_connection_limits.py",
        "api/test_schema_fuzz.py", "signaling/test_event_fuzz.py", "turn/test_connection_limits.py",
        "appliance/test_doctor.py", "test_dual_stack.py", "appliance/test_ca_constraints.py",
        "signaling/test_who_may_ring.py", "signaling/test_revocation.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in tests/lan is marked ``lan``; the slow ones of :data:`SLOW` are marked ``slow``."""
    for item in items:
        where = Path(str(item.fspath)).relative_to(TESTS).as_posix()
        if where.startswith("lan/"):
            item.add_marker(pytest.mark.lan)
        if where.startswith(SLOW):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One shared server for tests that do not change server-wide state."""
    workdir = tmp_path_factory.mktemp("server")
    running = Server(workdir, test_config(workdir)).start()
    yield running
    running.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start a dedicated server with config overrides; stopped at the end of the test."""
    started: list[Server] = []

    def start(overrides: dict[str, Any] | None = None, name: str = "srv") -> Server:
        workdir = tmp_path / name
        running = Server(workdir, test_config(workdir, overrides)).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
