"""GET /api/invite/:token/preview: the invite page's look-up, usable without an account."""

from tests.support import Server, register


def _invite(server: Server) -> tuple[str, str]:
    creator, username = register(server)
    token = creator.post("/api/invite/generate").json()["token"]
    return token, username


def test_anonymous_browser_previews_and_claims_an_invite(server: Server) -> None:
    token, creator = _invite(server)
    first = server.client()
    response = first.get(f"/api/invite/{token}/preview")
    assert response.status_code == 200
    body = response.json()
    assert body["creatorUsername"] == creator
    assert body["online"] is False and body["creatorCallId"] is None
    assert body["expiresAt"].endswith("Z")
    assert first.cookies.get("opencall_anon", "").startswith("anon-")
    # The claimant may look again; another anonymous browser or an account may not.
    assert first.get(f"/api/invite/{token}/preview").status_code == 200
    stranger = server.client().get(f"/api/invite/{token}/preview")
    assert stranger.status_code == 410 and stranger.json() == {"error": "Invite already used"}
    account, _ = register(server)
    assert account.get(f"/api/invite/{token}").json() == {"error": "Invite already used"}


def test_account_claim_holds_for_the_preview_too(server: Server) -> None:
    token, _ = _invite(server)
    account, _ = register(server)
    assert account.get(f"/api/invite/{token}").status_code == 200
    assert account.get(f"/api/invite/{token}/preview").status_code == 200
    assert server.client().get(f"/api/invite/{token}/preview").status_code == 410


def test_unknown_invite_preview_is_404(server: Server) -> None:
    response = server.client().get("/api/invite/00000000-0000-4000-8000-000000000000/preview")
    assert response.status_code == 404 and response.json() == {"error": "Invite not found"}
