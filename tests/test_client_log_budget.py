"""The client log's global byte budget (opencall.services.client_log.ClientLog), on its own clock."""

from __future__ import annotations

import logging

import pytest

from opencall.services.client_log import LINE_OVERHEAD, NOTICE_EVERY, ClientLog

WHO = "anon-0123456789ab"
LINE = "x" * 1000
SIZE = len(f"[CLIENT {WHO}] {LINE}") + LINE_OVERHEAD  # what one line costs
BUDGET = 10 * SIZE


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_minute_of_bytes_at_once_then_the_rate_refills() -> None:
    clock = Clock()
    budget = ClientLog(BUDGET, clock)
    assert budget.record(WHO, [LINE] * 12) == 10  # the first ten; the rest of the request is dropped
    assert budget.record("someone-else", ["short"]) == 0  # one budget for every client
    clock.now += 60 / 10 * 3  # three lines' worth of refill
    assert budget.record(WHO, [LINE] * 5) == 3
    clock.now += 3600  # a quiet hour refills one minute's worth, no more
    assert budget.record(WHO, [LINE] * 11) == 10
    assert budget.counters() == {"written_lines": 23, "dropped_lines": 2 + 1 + 2 + 1,
                                 "written_bytes": 23 * SIZE,
                                 "dropped_bytes": 5 * SIZE + len("[CLIENT someone-else] short") + LINE_OVERHEAD}


def test_escapes_count_as_what_is_written() -> None:
    budget = ClientLog(BUDGET, Clock())
    assert budget.record(WHO, ["\x00" * 1000] * 3) == 2  # written as \x00: four bytes each
    assert budget.counters()["written_bytes"] == 2 * (len(f"[CLIENT {WHO}] ") + 4000 + LINE_OVERHEAD)


def test_exhaustion_is_noted_at_most_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    budget = ClientLog(BUDGET, clock)
    with caplog.at_level(logging.INFO):
        for _ in range(5):
            budget.record(WHO, [LINE] * 20)
            clock.now += 10
        clock.now += NOTICE_EVERY
        budget.record(WHO, [LINE] * 20)
    notices = [r for r in caplog.records if r.levelno == logging.WARNING]
    # Each time: one in the server log (opencall.logs) and one in client.log (opencall.client).
    assert [r.name for r in notices] == ["opencall.logs", "opencall.client"] * 2
    assert "client-log budget of" in notices[0].getMessage()
