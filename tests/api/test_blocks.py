"""The REST side of blocks and invite revocation (docs/api.md "Who is calling, and who may ring you",
"Invites"): every answer and error, against a real server. What a block does to a call is in
tests/signaling/test_who_may_ring.py."""

from __future__ import annotations

import time

from tests.api.helpers import ISO_MILLIS_RE
from tests.support import Server, database, register

UNKNOWN_CALL_ID = "K7XM2PQ9"


def test_blocks_start_empty_and_list_newest_first(server: Server) -> None:
    client, _ = register(server)
    assert client.get("/api/blocks").json() == {"strangers": False, "blocked": []}
    client.post("/api/blocks", json={"callId": "K7XM2PQ9"})
    listed = client.post("/api/blocks", json={"callId": " r4wtbn8c "}).json()  # trimmed, any case
    assert [b["callId"] for b in listed["blocked"]] == ["R4WTBN8C", "K7XM2PQ9"]
    assert all(ISO_MILLIS_RE.match(b["blockedAt"]) for b in listed["blocked"])
    assert listed["blocked"][1]["label"] is None  # a Call ID the box has never seen
    assert client.post("/api/blocks", json={"callId": "K7XM2PQ9"}).json() == listed  # idempotent
    assert client.get("/api/blocks").json() == listed


def test_blocking_an_accounts_call_id_names_the_account(server: Server) -> None:
    alice, alice_name = register(server)
    bob, _ = register(server)
    with database(server) as db:  # alice's permanent Call ID is assigned at her first register: give her one
        db.execute("UPDATE users SET call_id = 'HJKM2345' WHERE username = ?", (alice_name,))
    listed = bob.post("/api/blocks", json={"callId": "HJKM2345"}).json()
    assert listed["blocked"][0]["label"] == alice_name
    with database(server) as db:
        principal = db.execute("SELECT principal FROM blocks WHERE call_id = 'HJKM2345'").fetchone()[0]
        alice_id = db.execute("SELECT id FROM users WHERE username = ?", (alice_name,)).fetchone()[0]
    assert principal == f"user-{alice_id}"
    assert alice.get("/api/blocks").json()["blocked"] == []  # blocks are their owner's


def test_block_errors(server: Server) -> None:
    client, name = register(server)
    for body in ({}, {"callId": 12345678}, {"callId": "short"}, {"callId": "IIIIIIII"}):  # I is not in the alphabet
        response = client.post("/api/blocks", json=body)
        assert (response.status_code, response.json()) == (400, {"error": "callId must be a Call ID (8 characters)"})
    with database(server) as db:
        db.execute("UPDATE users SET call_id = 'ABCD2345' WHERE username = ?", (name,))
    response = client.post("/api/blocks", json={"callId": "ABCD2345"})
    assert (response.status_code, response.json()) == (400, {"error": "You cannot block yourself"})
    response = client.delete(f"/api/blocks/{UNKNOWN_CALL_ID}")
    assert (response.status_code, response.json()) == (404, {"error": "Call ID is not blocked"})
    assert client.delete("/api/blocks/nonsense").status_code == 400
    for value in (None, "yes", 1):
        response = client.put("/api/blocks/strangers", json={"blocked": value})
        assert (response.status_code, response.json()) == (400, {"error": "blocked must be true or false"})
    assert server.client().get("/api/blocks").status_code == 401
    assert server.client().post("/api/blocks", json={"callId": UNKNOWN_CALL_ID}).status_code == 401


def test_the_strangers_switch_is_kept(server: Server) -> None:
    client, _ = register(server)
    assert client.put("/api/blocks/strangers", json={"blocked": True}).json()["strangers"] is True
    assert client.get("/api/blocks").json()["strangers"] is True
    assert client.put("/api/blocks/strangers", json={"blocked": False}).json()["strangers"] is False


def test_blocks_are_capped(server: Server) -> None:
    client, name = register(server)
    with database(server) as db:
        owner = db.execute("SELECT id FROM users WHERE username = ?", (name,)).fetchone()[0]
        db.executemany("INSERT INTO blocks (owner_id, call_id, created_at) VALUES (?, ?, '2026-01-01 00:00:00')",
                       [(owner, f"{n:08d}".translate(str.maketrans("01", "AB"))) for n in range(500)])
    response = client.post("/api/blocks", json={"callId": UNKNOWN_CALL_ID})
    assert (response.status_code, response.json()) == (400, {"error": "You can block at most 500 Call IDs"})


def test_a_creator_lists_and_revokes_invites_before_use(server: Server) -> None:
    creator, _ = register(server)
    other, _ = register(server)
    token = creator.post("/api/invite/generate").json()["token"]
    invites = creator.get("/api/invites").json()["invites"]
    assert [(i["token"], i["claimedAt"], i["revokedAt"]) for i in invites] == [(token, None, None)]
    assert invites[0]["url"] == f"{server.base_url}/invite/{token}"
    response = other.delete(f"/api/invite/{token}")  # not the creator's: as if it did not exist
    assert (response.status_code, response.json()) == (404, {"error": "Invite not found"})
    assert other.get("/api/invites").json() == {"invites": []}
    assert creator.delete(f"/api/invite/{token}").json() == {"ok": True}
    revoked_at = creator.get("/api/invites").json()["invites"][0]["revokedAt"]
    assert revoked_at is not None
    time.sleep(0.01)
    assert creator.delete(f"/api/invite/{token}").json() == {"ok": True}  # twice is no error
    assert creator.get("/api/invites").json()["invites"][0]["revokedAt"] == revoked_at
    response = other.get(f"/api/invite/{token}")
    assert (response.status_code, response.json()) == (410, {"error": "Invite revoked"})
    assert creator.delete("/api/invite/not-a-token").status_code == 404
