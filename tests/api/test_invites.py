"""POST /api/invite/generate and GET /api/invite/:token, with the one-time rule of services/invites.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from tests.api.conftest import PUBLIC_URL
from tests.api.helpers import ISO_MILLIS_RE, UUID4_RE, user_id
from tests.support import Server, database, register


def _parse_iso(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def test_generate_returns_a_uuid4_token_and_an_url_on_this_origin(server: Server) -> None:
    client, _ = register(server)
    response = client.post("/api/invite/generate")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "url"}
    assert UUID4_RE.match(body["token"])
    assert body["url"] == f"{server.base_url}/invite/{body['token']}"
    page = server.client().get(body["url"])  # the recipient lands on the web app
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert client.post("/api/invite/generate").json()["token"] != body["token"]


def test_generate_uses_public_url_when_configured(custom_server: Server) -> None:
    client, _ = register(custom_server)
    body = client.post("/api/invite/generate").json()
    assert body["url"] == f"{PUBLIC_URL}/invite/{body['token']}"


def test_generate_over_https_links_to_the_https_origin(https_server: Server) -> None:
    client, _ = register(https_server)
    body = client.post("/api/invite/generate").json()
    assert body["url"] == f"https://127.0.0.1:{https_server.config['server']['port']}/invite/{body['token']}"


def test_lookup_shape_and_expiry_of_the_default_ttl(server: Server) -> None:
    creator, creator_name = register(server)
    before = time.time()
    token = creator.post("/api/invite/generate").json()["token"]
    viewer, _ = register(server)
    response = viewer.get(f"/api/invite/{token}")
    assert response.status_code == 200
    body = response.json()
    # Nobody is online until signaling exists: creatorCallId null, online false.
    assert body == {"creatorUsername": creator_name, "creatorCallId": None, "online": False,
                    "expiresAt": body["expiresAt"]}
    assert ISO_MILLIS_RE.match(body["expiresAt"])
    assert before + 86400 - 2 <= _parse_iso(body["expiresAt"]) <= time.time() + 86400 + 2


def test_invite_ttl_comes_from_the_config(custom_server: Server) -> None:
    creator, _ = register(custom_server)
    before = time.time()
    token = creator.post("/api/invite/generate").json()["token"]
    expires = _parse_iso(creator.get(f"/api/invite/{token}").json()["expiresAt"])
    assert before + 60 - 2 <= expires <= time.time() + 60 + 2


def test_one_time_invite_is_claimed_by_the_first_other_account(server: Server) -> None:
    creator, creator_name = register(server)
    token = creator.post("/api/invite/generate").json()["token"]
    # The creator's own look-ups never claim it.
    for _ in range(2):
        assert creator.get(f"/api/invite/{token}").json()["creatorUsername"] == creator_name
    with database(server) as db:
        assert db.execute("SELECT claimed_by_id FROM invites WHERE token = ?", (token,)).fetchone() == (None,)
    claimant, claimant_name = register(server)
    assert claimant.get(f"/api/invite/{token}").status_code == 200
    assert claimant.get(f"/api/invite/{token}").status_code == 200  # reloads keep working
    assert claimant.get(f"/api/invite/{token.upper()}").status_code == 200
    assert creator.get(f"/api/invite/{token}").status_code == 200
    with database(server) as db:
        claimed = db.execute("SELECT claimed_by_id FROM invites WHERE token = ?", (token,)).fetchone()
    assert claimed == (user_id(server, claimant_name),)
    third, _ = register(server)
    response = third.get(f"/api/invite/{token}")
    assert response.status_code == 410
    assert response.json() == {"error": "Invite already used"}
    assert claimant.get(f"/api/invite/{token}").status_code == 200


def test_unknown_invite_is_404(server: Server) -> None:
    client, _ = register(server)
    # The last one is longer than any token (found by fuzzing: it was a 500).
    for token in ("5f3c2b8e-6d41-4a90-bf2a-9e0c7f1d2a44", "not-a-token", "5f3c2b8e-6d41-4a90-bf2a-9e0c7f1d2a44-x"):
        response = client.get(f"/api/invite/{token}")
        assert response.status_code == 404
        assert response.json() == {"error": "Invite not found"}


def test_expired_invite_is_410(server: Server) -> None:
    creator, _ = register(server)
    token = creator.post("/api/invite/generate").json()["token"]
    viewer, _ = register(server)
    with database(server) as db:
        db.execute("UPDATE invites SET expires_at = ? WHERE token = ?",
                   ("2020-01-01 00:00:00.000000+00:00", token))
    for client in (viewer, creator):
        response = client.get(f"/api/invite/{token}")
        assert response.status_code == 410
        assert response.json() == {"error": "Invite expired"}
    with database(server) as db:
        assert db.execute("SELECT claimed_by_id FROM invites WHERE token = ?", (token,)).fetchone() == (None,)
