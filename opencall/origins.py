"""Which web origins may act on this server: its own, and the origin of ``server.public_url``."""

from __future__ import annotations

from urllib.parse import urlsplit

from sanic import Request


def own_origin(request: Request) -> str:
    """This server's origin as the browser sees it (Sanic reports a WebSocket upgrade's scheme as ws/wss)."""
    scheme = {"ws": "http", "wss": "https"}.get(request.scheme, request.scheme)
    return f"{scheme}://{request.host}"


def url_origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def is_own_origin(origin: str, request: Request, public_url: str | None) -> bool:
    allowed = {own_origin(request)}
    if public_url:
        allowed.add(url_origin(public_url))
    return origin.rstrip("/") in allowed
