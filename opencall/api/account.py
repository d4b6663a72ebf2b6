"""🔒 account endpoints: the API key, invites and call history."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from opencall.api.context import anonymous_id, identify, require_user, services
from opencall.api.cookies import remember_anonymous
from opencall.api.timefmt import iso_utc, sql_utc
from opencall.origins import own_origin
from opencall.services import history
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


@bp.get("/invite/<token:str>")
async def look_up_invite(request: Request, token: str) -> HTTPResponse:
    user = await require_user(request)
    return json(_invite_json(await services(request).invites.look_up(token, user)))


@bp.get("/invite/<token:str>/preview")
async def preview_invite(request: Request, token: str) -> HTTPResponse:
    """The invite page's look-up: the same answer, for a signed-in user or an anonymous browser."""
    user = (await identify(request)).user
    anon = None if user else anonymous_id(request)
    response = json(_invite_json(await services(request).invites.look_up(token, user, anon)))
    remember_anonymous(request, response)
    return response


@bp.get("/call-history")
async def call_history(request: Request) -> HTTPResponse:
    user = await require_user(request)
    await services(request).call_log.flush()  # calls that just ended are still on their way to the table
    calls = await history.recent_calls(user)
    return json({"calls": [
        {
            "direction": call.direction,
            "peer": call.peer,
            "status": call.status,
            "startedAt": sql_utc(call.started_at),
            "durationSeconds": call.duration_seconds,
        }
        for call in calls
    ]})
