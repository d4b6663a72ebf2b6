"""Hypothesis sends malformed payloads for every client → server event to a real server (tests/signaling/event_fuzz.py):
each gets the contract's call-error, or is ignored where the contract says so; the log has no traceback, and the
server still answers /healthz and a normal register afterwards. test_bad_input.py holds the hand-picked cases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from tests.signaling.clients import CALL_ID_RE
from tests.signaling.conftest import Connector
from tests.signaling.event_fuzz import Fuzzer, inputs, judge
from tests.support import NO_CALL_LIMITS, Server, serve

EXAMPLES = 300


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own (its log holds only what the fuzzer caused), without the per-socket call limit."""
    yield from serve(tmp_path_factory, "event-fuzz", NO_CALL_LIMITS)


@pytest.fixture(scope="module")
async def fuzzer(fuzz_server: Server) -> AsyncIterator[Fuzzer]:
    client = Fuzzer(fuzz_server.base_url)
    yield client
    await client.close()


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(item=inputs)
async def test_malformed_events_get_the_contracts_answer(fuzzer: Fuzzer, item: tuple[str, Any]) -> None:
    event, payload = item
    answered = await fuzzer.send(event, payload)
    problem = judge(event, payload, answered)
    assert problem is None, (problem, event, payload, answered)


async def test_the_server_is_unharmed(fuzz_server: Server, fuzzer: Fuzzer, connect_ws: Connector) -> None:
    """Runs after the fuzzing above (same module, in order)."""
    assert fuzzer.sent >= EXAMPLES
    async with httpx.AsyncClient(base_url=fuzz_server.base_url) as http:
        assert (await http.get("/healthz")).status_code == 200
    peer = await connect_ws(fuzz_server, "after-fuzz")
    assert CALL_ID_RE.fullmatch(await peer.register("After"))
    log = fuzz_server.stderr_path.read_text(errors="replace")
    assert "Traceback" not in log and "Internal server error" not in log and " failed" not in log, log[-4000:]
