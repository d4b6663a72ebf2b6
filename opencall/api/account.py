"""🔒 account endpoints: the API key, invites, call history and blocks."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from opencall.api.context import anonymous_id, identify, json_body, require_user, services
from opencall.api.cookies import remember_anonymous
from opencall.api.timefmt import iso_utc, sql_utc
from opencall.origins import own_origin
from opencall.services.blocks import BlockList
from opencall.services.call_history import recent_calls
from opencall.services.invites import InviteView

bp = Blueprint("account", url_prefix="/api")


@bp.get("/key")
async def read_key(request: Request) -> HTTPResponse:
    """The current API key, for the dashboard."""
    user = await require_user(request)
    return json({"apiKey": await services(request).accounts.read_api_key(user)})


@bp.post("/key/regenerate")
async def regenerate_key(request: Request) -> HTTPResponse:
    user = await require_user(request)
    return json({"apiKey": await services(request).accounts.regenerate_api_key(user)})


@bp.post("/invite/generate")
async def generate_invite(request: Request) -> HTTPResponse:
    user = await require_user(request)
    app = services(request)
    token = await app.invites.generate(user)
    base = app.public_url or own_origin(request)
    return json({"token": token, "url": f"{base}/invite/{token}"})


def _invite_json(view: InviteView) -> dict[str, object]:
    return {
        "creatorUsername": view.creator_username,
        "creatorCallId": view.creator_call_id,
        "online": view.online,
        "expiresAt": iso_utc(view.expires_at),
    }


@bp.route("/invite/<token:str>", methods=["GET", "DELETE"])
async def invite(request: Request, token: str) -> HTTPResponse:
    """GET looks the invite up (claiming it); DELETE revokes one of the caller's own. One route for both, so that
    Sanic's 405 for another method names them in ``Allow``."""
    user = await require_user(request)
    invites = services(request).invites
    if request.method == "DELETE":
        await invites.revoke(user, token)
        return json({"ok": True})
    return json(_invite_json(await invites.look_up(token, user)))


@bp.get("/invite/<token:str>/preview")
async def preview_invite(request: Request, token: str) -> HTTPResponse:
    """The invite page's look-up: the same answer, for a signed-in user or an anonymous browser."""
    user = (await identify(request)).user
    anon = None if user else anonymous_id(request)
    response = json(_invite_json(await services(request).invites.look_up(token, user, anon)))
    remember_anonymous(request, response)
    return response


@bp.get("/invites")
async def list_invites(request: Request) -> HTTPResponse:
    """The creator's unexpired invites, for the dashboard to show and revoke."""
    user = await require_user(request)
    app = services(request)
    base = app.public_url or own_origin(request)
    return json({"invites": [
        {
            "token": invite.token,
            "url": f"{base}/invite/{invite.token}",
            "createdAt": iso_utc(invite.created_at),
            "expiresAt": iso_utc(invite.expires_at),
            "claimedAt": iso_utc(invite.claimed_at) if invite.claimed_at else None,
            "revokedAt": iso_utc(invite.revoked_at) if invite.revoked_at else None,
        }
        for invite in await app.invites.mine(user)
    ]})


def _blocks_json(blocks: BlockList) -> dict[str, object]:
    return {
        "strangers": blocks.strangers,
        "blocked": [{"callId": b.call_id, "label": b.label, "blockedAt": iso_utc(b.blocked_at)}
                    for b in blocks.blocked],
    }


@bp.get("/blocks")
async def read_blocks(request: Request) -> HTTPResponse:
    user = await require_user(request)
    return json(_blocks_json(await services(request).blocks.list(user)))


@bp.post("/blocks")
async def add_block(request: Request) -> HTTPResponse:
    user = await require_user(request)
    body = json_body(request)
    return json(_blocks_json(await services(request).blocks.add(user, body.get("callId"))))


@bp.delete("/blocks/<callId:str>")
async def remove_block(request: Request, callId: str) -> HTTPResponse:
    user = await require_user(request)
    return json(_blocks_json(await services(request).blocks.remove(user, callId)))


@bp.put("/blocks/strangers")
async def block_strangers(request: Request) -> HTTPResponse:
    """Do not disturb from strangers: refuse callers without an account (invite claimants excepted)."""
    user = await require_user(request)
    body = json_body(request)
    return json(_blocks_json(await services(request).blocks.set_strangers(user, body.get("blocked"))))


@bp.get("/call-history")
async def call_history(request: Request) -> HTTPResponse:
    user = await require_user(request)
    await services(request).call_records.flush()  # calls that just ended are still on their way to the table
    calls = await recent_calls(user)
    return json({"calls": [
        {
            "direction": call.direction,
            "peer": call.peer,
            "peerUsername": call.peer_username,
            "peerCallId": call.peer_call_id,
            "status": call.status,
            "startedAt": sql_utc(call.started_at),
            "durationSeconds": call.duration_seconds,
        }
        for call in calls
    ]})
