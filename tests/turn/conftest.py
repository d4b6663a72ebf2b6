"""Fixtures: a relay in the test's event loop, on free ports of 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.turn.support import start_relay
from turn import TurnServer


@pytest.fixture
async def relay() -> AsyncIterator[TurnServer]:
    server = await start_relay()
    yield server
    await server.stop()
