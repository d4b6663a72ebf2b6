"""Open endpoints: contact, client-log and ice-config."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from opencall.api.context import anonymous_id, client_ip, identify, json_body, services
from opencall.api.cookies import remember_anonymous
from opencall.services import client_log, contact
from opencall.services.ice import ice_servers
from opencall.services.identity import account_principal

bp = Blueprint("public", url_prefix="/api")


async def _who(request: Request) -> str:
    user = (await identify(request)).user
    return user.username if user else anonymous_id(request)


@bp.post("/contact")
async def submit_contact(request: Request) -> HTTPResponse:
    app = services(request)
    body = json_body(request)
    app.limits.contact_per_ip.hit(client_ip(request))
    await contact.submit(body, client_ip(request))
    return json({"ok": True})


@bp.post("/client-log")
async def ship_client_log(request: Request) -> HTTPResponse:
    app = services(request)
    app.limits.client_log_per_ip.hit(client_ip(request))
    lines = client_log.parse_lines(request.json)
    received = app.client_log.record(await _who(request), lines)
    response = json({"ok": True, "received": received})
    remember_anonymous(request, response)
    return response


async def _relay_principal(request: Request) -> str:
    """Whom relay credentials are minted for: the account's id, else the browser's anonymous id (the identity
    its socket has too, so the relay policy can find its calls)."""
    user = (await identify(request)).user
    return account_principal(user.id) if user else anonymous_id(request)


@bp.get("/ice-config")
async def ice_config(request: Request) -> HTTPResponse:
    servers = ice_servers(services(request).ice_plan, await _relay_principal(request))
    response = json({"iceServers": servers}, headers={"Cache-Control": "no-store"})
    remember_anonymous(request, response)
    return response
