"""What handlers need from a request: its JSON body, client IP, user, and the app's services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sanic import Request

from opencall.composition import AppServices
from opencall.cookie_names import ANON_COOKIE, SESSION_COOKIE
from opencall.db.models import User
from opencall.services.errors import InvalidInput, NotAuthenticated

NOT_AUTHENTICATED = "Not authenticated"


def services(request: Request) -> AppServices:
    return request.app.ctx.services


def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; malformed JSON is a 400 from Sanic, anything but an object is ours."""
    body = request.json
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object")
    return body


def client_ip(request: Request) -> str:
    return request.ip or "unknown"


def presented_api_key(request: Request) -> str | None:
    """The API key from ``x-api-key`` or ``Authorization: Bearer``, if the request carries one."""
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the user, and whether the session cookie (not an API key) said so."""

    user: User | None
    by_cookie: bool


async def identify(request: Request) -> Caller:
    """Resolve the API key, else the session cookie. A wrong key never falls back to the cookie."""
    if hasattr(request.ctx, "caller"):
        return request.ctx.caller
    accounts = services(request).accounts
    key = presented_api_key(request)
    if key is not None:
        caller = Caller(await accounts.user_for_api_key(key), by_cookie=False)
    else:
        token = request.cookies.get(SESSION_COOKIE)
        caller = Caller(await accounts.user_for_session(token) if token else None, by_cookie=True)
    request.ctx.caller = caller
    return caller


async def require_user(request: Request) -> User:
    """The authenticated user, or 401 ``Not authenticated``."""
    user = (await identify(request)).user
    if user is None:
        raise NotAuthenticated(NOT_AUTHENTICATED)
    return user


def anonymous_id(request: Request) -> str:
    """A stable id for a browser without an account, minted and signed by the server (services/anonymous.py)
    and kept in a cookie set by :func:`remember_anonymous`."""
    anonymous = services(request).anonymous
    current = anonymous.verify(request.cookies.get(ANON_COOKIE))
    if current is not None:
        return current
    if not hasattr(request.ctx, "new_anon_cookie"):
        request.ctx.new_anon_cookie = anonymous.mint()
    return request.ctx.new_anon_cookie.partition(".")[0]
