"""GET /api/server-info: what the web client needs to know about this box (no authentication)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from opencall import __version__
from opencall.api.context import services

bp = Blueprint("info", url_prefix="/api")


@bp.get("/server-info")
async def server_info(request: Request) -> HTTPResponse:
    """``{"tls": "auto"|"off"|"files", "version": "…"}``: the "Trust this box" page says whether /ca.crt applies."""
    return json({"tls": services(request).config.server.tls.mode, "version": __version__})
