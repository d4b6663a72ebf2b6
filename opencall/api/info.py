"""GET /api/server-info and GET /api/openapi.json: what clients need to know about this box (no authentication)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json, raw

from opencall import __version__
from opencall.api import openapi
from opencall.api.context import services

bp = Blueprint("info", url_prefix="/api")


@bp.get("/server-info")
async def server_info(request: Request) -> HTTPResponse:
    """``{"tls": "auto"|"off"|"files", "version": "…"}``: the "Trust this box" page says whether /ca.crt applies."""
    return json({"tls": services(request).config.server.tls.mode, "version": __version__})


@bp.get("/openapi.json")
async def openapi_document(request: Request) -> HTTPResponse:
    """The OpenAPI 3.1 document of this API; the same for everyone until the server is upgraded."""
    return raw(openapi.as_json(), content_type="application/json",
               headers={"Cache-Control": "public, max-age=3600"})
