"""The cookies the website uses: the session (HttpOnly, SameSite=Lax, Secure over HTTPS) and the anon id."""

from __future__ import annotations

from sanic import Request
from sanic.response import HTTPResponse

from opencall.api.context import ANON_COOKIE, SESSION_COOKIE
from opencall.services.accounts import SESSION_TTL

ANON_MAX_AGE = 365 * 86400


def _secure(request: Request) -> bool:
    return request.scheme == "https"


def set_session_cookie(request: Request, response: HTTPResponse, token: str) -> None:
    response.add_cookie(
        SESSION_COOKIE, token, path="/", httponly=True, samesite="Lax", secure=_secure(request),
        max_age=int(SESSION_TTL.total_seconds()),
    )


def clear_session_cookie(request: Request, response: HTTPResponse) -> None:
    # An expired empty cookie with the same attributes; HTTPResponse.delete_cookie takes no ``secure`` and
    # would mark it Secure, which browsers drop over plain HTTP.
    response.add_cookie(
        SESSION_COOKIE, "", path="/", httponly=True, samesite="Lax", secure=_secure(request), max_age=0,
    )


def remember_anonymous(request: Request, response: HTTPResponse) -> None:
    """Set the anonymous id cookie when this request had to mint one."""
    cookie = getattr(request.ctx, "new_anon_cookie", None)
    if cookie:
        response.add_cookie(
            ANON_COOKIE, cookie, path="/", httponly=True, samesite="Lax", secure=_secure(request),
            max_age=ANON_MAX_AGE,
        )
