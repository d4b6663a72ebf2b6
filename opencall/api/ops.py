"""Operator endpoints outside the REST API: ``/healthz``, ``/metrics`` and the local CA at ``/ca.crt``."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json, raw
from tortoise.connection import get_connection
from tortoise.functions import Count

from opencall import __version__
from opencall.api.context import services
from opencall.api.errors import error_response
from opencall.config import MetricsConfig
from opencall.db.models import Call
from opencall.metrics import CONTENT_TYPE, Snapshot, http_snapshot, refusals, render
from opencall.relay.monitor import RelayMonitor
from opencall.services.ratelimit import RateLimiter
from opencall.signaling.registry import Registry

log = logging.getLogger("opencall.ops")

bp = Blueprint("ops")
DB_TIMEOUT = 3.0
CA_CONTENT_TYPE = "application/x-x509-ca-cert"


@dataclass(frozen=True)
class OpsState:
    """What the operator endpoints read; built by :func:`opencall.lifecycle.install`."""

    registry: Registry
    limiters: tuple[tuple[str, RateLimiter], ...]
    relay: RelayMonitor
    metrics: MetricsConfig
    ca_cert_path: Path | None


def _state(request: Request) -> OpsState:
    return request.app.ctx.ops


def health_report(database: str, relay: str) -> tuple[int, dict[str, Any]]:
    """(status, body) of /healthz: 200 when the database is ok and the relay is ok or off, else 503."""
    healthy = database == "ok" and relay in ("ok", "off")
    body = {"status": "ok" if healthy else "down", "database": database, "relay": relay, "version": __version__}
    return (200 if healthy else 503), body


async def database_state() -> str:
    """``ok`` when a trivial query answers within :data:`DB_TIMEOUT`, else why not."""
    try:
        await asyncio.wait_for(get_connection("default").execute_query("SELECT 1"), DB_TIMEOUT)
    except TimeoutError:
        return "timeout"
    except Exception as exc:  # any driver error means the database is not usable
        log.warning("health check: database error: %s", exc)
        return "error"
    return "ok"


@bp.get("/healthz")
async def healthz(request: Request) -> HTTPResponse:
    status, body = health_report(await database_state(), _state(request).relay.state())
    return json(body, status=status, headers={"Cache-Control": "no-store"})


def metrics_allowed(request: Request, settings: MetricsConfig) -> bool:
    """Whether this client may read /metrics: its address is in ``allow``, or it sent the bearer token."""
    try:
        address = ipaddress.ip_address(request.ip)
    except ValueError:
        address = None
    if address is not None and any(address in ipaddress.ip_network(cidr) for cidr in settings.allow):
        return True
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return bool(settings.token) and scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), str(settings.token).encode())


async def call_outcomes() -> Mapping[str, int]:
    """Finished calls by status, counted in the calls table."""
    rows = await Call.annotate(count=Count("id")).group_by("status").values("status", "count")
    return {str(row["status"]): int(row["count"]) for row in rows}


@bp.get("/metrics")
async def metrics(request: Request) -> HTTPResponse:
    state = _state(request)
    if not state.metrics.enabled:
        return error_response(404, "Not found")
    if not metrics_allowed(request, state.metrics):
        return error_response(403, "Metrics are not available to this client")
    snapshot = Snapshot(
        version=__version__,
        sockets=len(state.registry.peers),
        calls=state.registry.live_calls(),
        outcomes=await call_outcomes(),
        rate_limit_refusals=refusals(state.limiters),
        relay_state=state.relay.state(),
        relay_counters=state.relay.counters(),
        http_connections=http_snapshot(request.app.ctx.http_gate),
        client_log=services(request).client_log.counters(),
    )
    return raw(render(snapshot).encode(), content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


@bp.get("/ca.crt")
async def ca_certificate(request: Request) -> HTTPResponse:
    """The local CA's certificate (PEM) for phones to trust once; 404 unless ``tls: auto``."""
    path = _state(request).ca_cert_path
    if path is None or not path.exists():
        return error_response(404, "Not found")
    return raw(path.read_bytes(), content_type=CA_CONTENT_TYPE, headers={
        "Content-Disposition": 'attachment; filename="opencall-ca.crt"', "Cache-Control": "no-cache"})
