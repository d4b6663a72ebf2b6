"""What makes the server an appliance: operator endpoints, certificate upkeep and systemd readiness.

:func:`install` is called once by ``create_app``. It adds ``/healthz``, ``/metrics`` and ``/ca.crt``,
reloads the certificate on SIGHUP and daily, and tells systemd ``READY=1`` from the last
``after_server_start`` listener — after HTTP, Socket.IO and the relay (started in ``before_server_start``)
are all listening.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from sanic import Sanic

from opencall import __version__
from opencall.api import ops
from opencall.config import Config
from opencall.relay.monitor import RelayMonitor
from opencall.sdnotify import notify
from opencall.services.ratelimit import RateLimiter
from opencall.signaling.registry import Registry
from opencall.tls import certificate_keeper
from turn.listen import host_port

log = logging.getLogger("opencall")


def install(app: Sanic, config: Config, registry: Registry, limiters: Iterable[tuple[str, RateLimiter]],
            monitor: RelayMonitor) -> None:
    """Wire the operator endpoints and lifecycle hooks into ``app``: ``limiters`` are the rate limits by config
    key (/metrics counts their refusals), ``monitor`` the relay's health as /healthz and /metrics read it."""
    keeper = certificate_keeper(config)
    app.ctx.relay_monitor = monitor
    app.ctx.ops = ops.OpsState(
        registry=registry,
        limiters=tuple(limiters),
        relay=monitor,
        metrics=config.metrics,
        ca_cert_path=keeper.ca_cert_path if keeper else None,
    )
    app.blueprint(ops.bp)

    @app.after_server_start
    async def ready(app: Sanic) -> None:
        loop = asyncio.get_running_loop()
        if keeper is not None:
            keeper.watch(loop)
        scheme = "https" if keeper else "http"
        # `opencall serve` names the addresses it listens on (0.0.0.0:8443 and [::]:8443 for a wildcard).
        where = getattr(app.ctx, "http_addresses", None) or (host_port(config.server.host, config.server.port),)
        status = f"serving {scheme} on {' and '.join(where)}, relay {monitor.state()}"
        notify(f"READY=1\nSTATUS={status}")
        log.info("OpenCall %s ready: %s", __version__, status)

    @app.before_server_stop
    async def stopping(app: Sanic) -> None:
        notify("STOPPING=1")
        if keeper is not None:
            keeper.unwatch(asyncio.get_running_loop())

