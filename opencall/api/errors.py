"""One exception handler: every error leaves as JSON ``{"error": ...}`` with its status and headers."""

from __future__ import annotations

import logging

from sanic import Request, Sanic
from sanic.exceptions import BadRequest, SanicException
from sanic.response import HTTPResponse, json

from opencall.services.errors import (
    Conflict,
    Gone,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    RateLimited,
    ServiceError,
)

log = logging.getLogger("opencall.api")

STATUS_OF: dict[type[ServiceError], int] = {
    InvalidInput: 400, NotAuthenticated: 401, NotFound: 404, Conflict: 409, Gone: 410,
}
SANIC_MESSAGES = {
    400: "Bad request", 404: "Not found", 405: "Method not allowed", 413: "Request body too large",
}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> HTTPResponse:
    return json({"error": message}, status=status, headers=headers)


async def handle_error(request: Request, exc: Exception) -> HTTPResponse:
    """Map service errors to their status, keep Sanic's own status/headers, hide everything else."""
    if isinstance(exc, RateLimited):
        return error_response(429, str(exc), {"Retry-After": str(exc.retry_after)})
    for kind, status in STATUS_OF.items():
        if isinstance(exc, kind):
            return error_response(status, str(exc))
    if isinstance(exc, SanicException):
        status = exc.status_code
        headers = dict(getattr(exc, "headers", None) or {})
        if isinstance(exc, BadRequest) and "json" in str(exc).lower():
            return error_response(400, "Malformed JSON body", headers)
        return error_response(status, SANIC_MESSAGES.get(status, str(exc) or "Error"), headers)
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "Internal server error")


def install(app: Sanic) -> None:
    app.error_handler.add(Exception, handle_error)
