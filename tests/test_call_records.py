"""The call recorder (opencall/services/call_records.py) on a real SQLite database: a batch that fails is retried row by
row; a call of a removed account is written unlinked; a row that cannot be written is logged and dropped alone.
(tests/signaling/test_revocation.py has the same through a real server, for an account removed mid-call.)"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from opencall.db.models import Call, User
from opencall.db.setup import close_database, open_database
from opencall.services.call_records import CallRecorder, FinishedCall
from opencall.services.clock import utcnow


def _finished(caller_id: int | None, callee_id: int | None, caller_call_id: str) -> FinishedCall:
    now = utcnow()
    return FinishedCall(caller_id=caller_id, callee_id=callee_id, caller_call_id=caller_call_id,
                        callee_call_id="CALLEE22", caller_name=None, callee_name=None, status="answered",
                        started_at=now - timedelta(seconds=30), answered_at=now - timedelta(seconds=20), ended_at=now)


async def test_a_failing_batch_is_written_row_by_row(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    await open_database(f"sqlite://{tmp_path}/opencall.db")
    recorder = CallRecorder(linger=30)  # everything recorded below shares one batch, written at the flush
    try:
        user = await User.create(username="kept", username_key="kept", email="kept@example.org", password_hash="-")
        removed = user.id + 1000  # an account that no longer exists
        calls = [
            _finished(user.id, None, "KEPT2222"),
            _finished(removed, user.id, "GONE2222"),  # its caller was removed before the record was written
            dataclasses.replace(_finished(user.id, None, "BAD22222"), status=None),  # type: ignore[arg-type]
            _finished(None, removed, "GONE3333"),
            _finished(user.id, user.id, "KEPT3333"),
        ]
        recorder.start()
        with caplog.at_level(logging.INFO, logger="opencall.calls"):
            for call in calls:
                recorder.record(call)
            await recorder.flush()
        rows = await Call.all().order_by("id").values_list("caller_call_id", "caller_id", "callee_id")
        assert rows == [("KEPT2222", user.id, None), ("GONE2222", None, user.id), ("GONE3333", None, None),
                        ("KEPT3333", user.id, user.id)]
        assert "could not record 5 finished calls at once" in caplog.text
        dropped = [r for r in caplog.records if r.getMessage().startswith("dropped the record of a finished call")]
        assert len(dropped) == 1 and "BAD22222" in dropped[0].getMessage(), caplog.text
    finally:
        await recorder.stop()
        await close_database()
