"""Request middleware for the REST API: body size limit and cross-site request refusal."""

from __future__ import annotations

from sanic import Request
from sanic.response import HTTPResponse

from opencall.api.context import SESSION_COOKIE, presented_api_key, services
from opencall.api.errors import error_response
from opencall.origins import is_own_origin, url_origin

API_BODY_LIMIT = 64 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CROSS_ORIGIN = "Cross-origin request refused"


def _origin_of(request: Request) -> str | None:
    """The Origin header, else the origin of the Referer; None when the client sent neither (curl)."""
    origin = request.headers.get("origin")
    if origin:
        return origin.rstrip("/")
    referer = request.headers.get("referer")
    if referer:
        return url_origin(referer)
    return None


def is_cross_site(request: Request) -> bool:
    """Whether an unsafe request came from another site's page while it could ride on our cookies.

    Requests with an API key are not cookie-authenticated and are never refused here. Browsers send
    Origin on every cross-origin POST, so a foreign or ``null`` Origin is refused; clients that send no
    Origin or Referer at all are not browsers acting for another site.
    """
    if request.method in SAFE_METHODS or presented_api_key(request) is not None:
        return False
    origin = _origin_of(request)
    if origin is None:
        return False
    return not is_own_origin(origin, request, services(request).public_url)


async def api_guards(request: Request) -> HTTPResponse | None:
    """Refuse oversized bodies (413) and cross-site cookie requests (403) before any handler runs."""
    if not request.path.startswith("/api/"):
        return None
    if len(request.body or b"") > API_BODY_LIMIT:
        return error_response(413, "Request body too large")
    # Login CSRF too: a foreign page must not sign a browser into someone else's account.
    if is_cross_site(request) and (SESSION_COOKIE in request.cookies or request.path.startswith("/api/auth/")):
        return error_response(403, CROSS_ORIGIN)
    return None
