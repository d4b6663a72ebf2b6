"""POST /api/contact: stored in the database, logged (escaped: one line), with api.md's field rules."""

from __future__ import annotations

import json
import secrets

import pytest

from tests.api.helpers import log_text
from tests.support import Server, database

VALID = {"subject": "Hello", "email": "writer@example.com", "message": "A message for you."}


def _stored(server: Server, marker: str) -> list[tuple[str, str, str, str]]:
    with database(server) as db:
        return db.execute(
            "SELECT subject, email, message, client_ip FROM contact_messages WHERE message LIKE ?",
            (f"%{marker}%",),
        ).fetchall()


def test_contact_is_stored_and_logged(server: Server) -> None:
    marker = secrets.token_hex(8)
    body = {"subject": f"Question {marker}", "email": "Writer@Example.COM", "message": f"Hello there {marker}"}
    response = server.client().post("/api/contact", json=body)
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert _stored(server, marker) == [(f"Question {marker}", "writer@example.com", f"Hello there {marker}",
                                         "127.0.0.1")]
    assert f"from writer@example.com: Question {marker}" in log_text(server)


def test_contact_truncates_subject_and_message(server: Server) -> None:
    marker = secrets.token_hex(8)
    body = {"subject": "S" * 250, "email": "long@example.com", "message": marker + "M" * 6000}
    assert server.client().post("/api/contact", json=body).json() == {"ok": True}
    [(subject, _, message, _)] = _stored(server, marker)
    assert subject == "S" * 200
    assert message == (marker + "M" * 6000)[:5000]


def test_contact_minimum_lengths_are_accepted(server: Server) -> None:
    marker = secrets.token_hex(2)  # 4 characters + "!" = 5
    response = server.client().post("/api/contact", json={"subject": "Hi", "email": "a@b.co",
                                                           "message": marker + "!"})
    assert response.status_code == 200
    assert _stored(server, marker + "!")[0][:2] == ("Hi", "a@b.co")


@pytest.mark.parametrize(("overrides", "error"), [
    ({"subject": None}, "subject is required"),
    ({"subject": ""}, "subject is required"),
    ({"subject": 42}, "subject must be a string"),
    ({"subject": "H"}, "subject must be at least 2 characters"),
    ({"subject": "  H  "}, "subject must be at least 2 characters"),
    ({"email": None}, "email is required"),
    ({"email": ""}, "email is required"),
    ({"email": ["a@b.co"]}, "email must be a string"),
    ({"email": "nobody"}, "email must be a valid email address"),
    ({"email": "nobody@localhost"}, "email must be a valid email address"),
    ({"message": None}, "message is required"),
    ({"message": "   "}, "message is required"),
    ({"message": {"text": "hello world"}}, "message must be a string"),
    ({"message": "four"}, "message must be at least 5 characters"),
    ({"message": " four "}, "message must be at least 5 characters"),
])
def test_contact_rejects_each_missing_or_invalid_field(
    server: Server, overrides: dict[str, object], error: str
) -> None:
    body = {key: value for key, value in {**VALID, **overrides}.items() if value is not None}
    response = server.client().post("/api/contact", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_a_subject_cannot_forge_log_lines_nor_drive_a_terminal(server: Server) -> None:
    marker = secrets.token_hex(8)
    forged = "2026-01-01 00:00:00,000 INFO opencall: forged"
    subject = f"Hi {marker}\n{forged}\r\x1b[2J\x1b[31m\x00\x7f\x85\u2028\u202e."
    body = {"subject": subject, "email": "writer@example.com", "message": f"Hello there {marker}"}
    assert server.client().post("/api/contact", json=body).json() == {"ok": True}
    assert _stored(server, marker)[0][0] == subject  # stored as sent; only the log line is escaped
    lines = log_text(server).splitlines()  # splitlines: every Unicode line break counts
    logged = [line for line in lines if marker in line]
    assert len(logged) == 1
    assert logged[0].endswith(f"from writer@example.com: Hi {marker}\\n{forged}\\r\\x1b[2J\\x1b[31m\\x00\\x7f\\x85"
                              "\\u2028\\u202e.")
    assert not any(line.startswith(forged) or "\x1b" in line for line in lines)


@pytest.mark.parametrize("field", ["subject", "message"])
def test_text_that_cannot_be_stored_is_400(server: Server, field: str) -> None:
    """JSON may carry a lone surrogate (the escape \\ud800); UTF-8, and so the database, cannot hold one."""
    body = json.dumps({**VALID, field: "Hello \ud800 there"})
    response = server.client().post("/api/contact", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"error": f"{field} must be valid Unicode text"}
