"""Fixtures: real OpenCall servers on 127.0.0.1, each in its own temporary folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Server, test_config


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
