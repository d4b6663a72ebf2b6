"""🔒 account endpoints: the API key, invites and call history."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from opencall.api.context import require_user, services
from opencall.api.timefmt import iso_utc, sql_utc
from opencall.origins import own_origin
from opencall.services import history

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


@bp.get("/invite/<token:str>")
async def look_up_invite(request: Request, token: str) -> HTTPResponse:
    user = await require_user(request)
    view = await services(request).invites.look_up(token, user)
    return json({
        "creatorUsername": view.creator_username,
        "creatorCallId": view.creator_call_id,
        "online": view.online,
        "expiresAt": iso_utc(view.expires_at),
    })


@bp.get("/call-history")
async def call_history(request: Request) -> HTTPResponse:
    user = await require_user(request)
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
