"""GET /api/call-history, read from rows put straight into the server's live SQLite calls table."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from tests.api.helpers import user_id
from tests.support import Server, database, register

STARTED_AT_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
BASE = datetime(2026, 6, 16, 9, 12, 44, 654321, tzinfo=UTC)


def _stamp(moment: datetime | None) -> str | None:
    """A datetime as Tortoise stores it in SQLite."""
    return None if moment is None else moment.isoformat(sep=" ")


def _insert_call(server: Server, *, caller: int | None, callee: int | None, status: str, started: datetime,
                 answered: datetime | None = None, ended: datetime | None = None,
                 caller_call_id: str = "R4WTBN8C", callee_call_id: str = "K7XM2PQ9",
                 caller_name: str | None = None, callee_name: str | None = None) -> None:
    with database(server) as db:
        db.execute(
            "INSERT INTO calls (caller_id, callee_id, caller_call_id, callee_call_id, caller_name, callee_name,"
            " status, started_at, answered_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (caller, callee, caller_call_id, callee_call_id, caller_name, callee_name, status,
             _stamp(started), _stamp(answered), _stamp(ended)),
        )


def test_empty_history(server: Server) -> None:
    client, _ = register(server)
    response = client.get("/api/call-history")
    assert response.status_code == 200
    assert response.json() == {"calls": []}


def test_history_rows_direction_peer_status_time_and_duration(server: Server) -> None:
    alice_client, alice = register(server)
    bob_client, bob = register(server)
    _, carol = register(server)
    a, b, c = user_id(server, alice), user_id(server, bob), user_id(server, carol)

    # Oldest first in the table; the API must answer newest first.
    _insert_call(server, caller=a, callee=b, status="answered", started=BASE,
                 answered=BASE + timedelta(seconds=5), ended=BASE + timedelta(seconds=189, microseconds=900000),
                 caller_name="Alice A.", callee_name="Bobby")
    _insert_call(server, caller=None, callee=a, status="missed", started=BASE + timedelta(hours=1),
                 ended=BASE + timedelta(hours=1, seconds=45), caller_call_id="R4WTBN8C")
    _insert_call(server, caller=b, callee=a, status="rejected", started=BASE + timedelta(hours=2),
                 ended=BASE + timedelta(hours=2, seconds=3))
    # A call from a +02:00 timestamp must come out in UTC.
    _insert_call(server, caller=a, callee=None, status="missed",
                 started=datetime(2026, 6, 16, 16, 0, 0, tzinfo=timezone(timedelta(hours=2))),
                 ended=datetime(2026, 6, 16, 14, 1, 0, tzinfo=UTC), callee_call_id="Z9Z9Z9Z9")
    # Not listed: one still ringing (no ended_at), one between other people.
    _insert_call(server, caller=a, callee=b, status="answered", started=BASE + timedelta(days=1),
                 answered=BASE + timedelta(days=1, seconds=1))
    _insert_call(server, caller=b, callee=c, status="answered", started=BASE + timedelta(days=2),
                 answered=BASE + timedelta(days=2, seconds=1), ended=BASE + timedelta(days=2, seconds=9))

    calls = alice_client.get("/api/call-history").json()["calls"]
    assert calls == [
        {"direction": "outgoing", "peer": "Z9Z9Z9Z9", "peerUsername": None, "peerCallId": "Z9Z9Z9Z9",
         "status": "missed", "startedAt": "2026-06-16 14:00:00", "durationSeconds": None},
        {"direction": "incoming", "peer": bob, "peerUsername": None, "peerCallId": "R4WTBN8C",
         "status": "rejected", "startedAt": "2026-06-16 11:12:44", "durationSeconds": None},
        {"direction": "incoming", "peer": "R4WTBN8C", "peerUsername": None, "peerCallId": "R4WTBN8C",
         "status": "missed", "startedAt": "2026-06-16 10:12:44", "durationSeconds": None},
        {"direction": "outgoing", "peer": "Bobby", "peerUsername": None, "peerCallId": "K7XM2PQ9",
         "status": "answered", "startedAt": "2026-06-16 09:12:44", "durationSeconds": 184},
    ]
    for call in calls:
        assert STARTED_AT_RE.match(call["startedAt"])

    bob_calls = bob_client.get("/api/call-history").json()["calls"]
    assert [(x["direction"], x["peer"], x["status"]) for x in bob_calls] == [
        ("outgoing", carol, "answered"), ("outgoing", alice, "rejected"), ("incoming", "Alice A.", "answered"),
    ]
    assert bob_calls[0]["durationSeconds"] == 8


def test_history_lists_the_newest_50(server: Server) -> None:
    client, name = register(server)
    me = user_id(server, name)
    with database(server) as db:
        db.executemany(
            "INSERT INTO calls (caller_id, callee_id, caller_call_id, callee_call_id, status, started_at, ended_at)"
            " VALUES (?, NULL, 'R4WTBN8C', ?, 'missed', ?, ?)",
            [(me, f"PEER{i:04d}", _stamp(BASE + timedelta(minutes=i)),
              _stamp(BASE + timedelta(minutes=i, seconds=30))) for i in range(55)],
        )
    calls = client.get("/api/call-history").json()["calls"]
    assert len(calls) == 50
    assert [call["peer"] for call in calls] == [f"PEER{i:04d}" for i in range(54, 4, -1)]
    assert calls[0]["startedAt"] == (BASE + timedelta(minutes=54)).strftime("%Y-%m-%d %H:%M:%S")
