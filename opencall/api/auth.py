"""/api/auth/*: register, login, logout, me."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from opencall.api.context import SESSION_COOKIE, client_ip, identify, json_body, services
from opencall.api.cookies import clear_session_cookie, set_session_cookie
from opencall.db.models import User
from opencall.services import validation
from opencall.services.accounts import INVALID_LOGIN
from opencall.services.errors import InvalidInput, NotAuthenticated

bp = Blueprint("auth", url_prefix="/api/auth")


async def _signed_in(request: Request, user: User) -> HTTPResponse:
    accounts = services(request).accounts
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await accounts.end_session(old)
    response = json({"ok": True, "username": user.username})
    set_session_cookie(request, response, await accounts.start_session(user))
    return response


@bp.post("/register")
async def register(request: Request) -> HTTPResponse:
    app = services(request)
    app.limits.register_per_ip.hit(client_ip(request))
    user = await app.accounts.register(json_body(request))
    return await _signed_in(request, user)


@bp.post("/login")
async def login(request: Request) -> HTTPResponse:
    app = services(request)
    body = json_body(request)
    app.limits.login_per_ip.hit(client_ip(request))
    try:
        username = validation.required_text(body, "username")
        password = validation.required_text(body, "password")
    except InvalidInput:
        raise InvalidInput("username and password are required") from None
    user_key = username.strip().lower()
    app.limits.login_failures_per_user.check(user_key)
    try:
        user = await app.accounts.authenticate(username, password)
    except NotAuthenticated:
        app.limits.login_failures_per_user.hit(user_key)
        raise NotAuthenticated(INVALID_LOGIN) from None
    return await _signed_in(request, user)


@bp.post("/logout")
async def logout(request: Request) -> HTTPResponse:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await services(request).accounts.end_session(token)
    response = json({"ok": True})
    clear_session_cookie(request, response)
    return response


@bp.get("/me")
async def me(request: Request) -> HTTPResponse:
    user = (await identify(request)).user
    if user is None:
        return json({"authenticated": False})
    return json({"authenticated": True, "username": user.username, "email": user.email})
