"""The composition root: ``create_app(config)`` wires config, storage, services and the HTTP routes."""

from __future__ import annotations

import asyncio
import logging
from importlib import resources
from pathlib import Path

from sanic import Request, Sanic
from sanic.response import HTTPResponse, file

from opencall import __version__, httplimits
from opencall.api import account, auth, errors, guards, headers, info, public
from opencall.api.context import anonymous_id
from opencall.api.cookies import remember_anonymous
from opencall.composition import build_services
from opencall.config import Config
from opencall.db.models import User
from opencall.db.setup import close_database, open_database
from opencall.lifecycle import install as install_lifecycle
from opencall.mdns import Announcement, Announcer
from opencall.relay.monitor import RelayMonitor
from opencall.relay.policy import CallRelayPolicy, OnAppLoop
from opencall.relay.settings import LOOPBACK_FIX, advertised_hosts, loopback_problem, relay_config
from opencall.relay.thread import RelayThread
from opencall.services.callids import permanent_call_id
from opencall.services.ringing import RingingLimits
from opencall.signaling import sockets as signaling_server
from opencall.signaling.calls import CallService
from opencall.signaling.registry import Registry
from opencall.signaling.revocation import CredentialSweep
from opencall.tls import certificate_keeper, relay_ssl_context
from turn import TurnServer

log = logging.getLogger("opencall")


async def _permanent_call_id(registry: Registry, user_id: int) -> str:
    def in_use(call_id: str) -> bool:
        return bool(registry.sockets_of(call_id))

    return await permanent_call_id(await User.get(id=user_id), in_use)


def web_root() -> Path:
    """The browser client's folder, shipped as package data."""
    return Path(str(resources.files("opencall_web")))


def create_app(config: Config) -> Sanic:
    """The whole application for ``config``: REST API, static web client, storage lifecycle."""
    app = Sanic("opencall", configure_logging=False)
    httplimits.configure(app, config.server)  # timeouts and size caps; the connection cap is in serve
    app.ctx.http_gate = httplimits.make_gate(config.server)
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.MOTD = False
    registry = Registry()
    advertised = advertised_hosts(config)
    relay_problem = loopback_problem(config, advertised)
    services = build_services(config, registry, advertised)
    app.ctx.services = services
    relay = None
    may_relay = None
    if config.turn.enabled:
        context = relay_ssl_context(config)
        settings = relay_config(config, services.ice_plan.secret, advertised, context)
        # peer_policy call: the relay asks the live calls which peers each principal may reach, on the app's
        # loop (the relay runs on its own thread: _run_relay).
        if config.turn.peer_policy == "call":
            may_relay = OnAppLoop(CallRelayPolicy(registry, settings.relay_addresses.values()))
        relay = TurnServer(settings, may_relay=may_relay)
    recorder = services.call_records
    limits = config.rate_limits
    sio = signaling_server.make_socket_server(config.server.public_url)
    signaling = CallService(
        registry=registry,
        outbox=signaling_server.SocketIOOutbox(sio),
        recorder=recorder,
        ring_timeout=config.ring_timeout,
        limits=RingingLimits(limits.calls_per_caller, limits.calls_per_ip, limits.rings_per_callee),
        refuses=services.blocks.refuses,
        permanent_call_id=lambda user_id: _permanent_call_id(registry, user_id),
        resume_grace=config.signaling.resume_grace,
    )
    services.accounts.key_rotation_listeners.append(signaling.key_rotated)
    services.accounts.session_end_listeners.append(signaling.session_ended)
    sweep = CredentialSweep(signaling)  # revocations made by other processes (opencall user …) reach sockets
    signaling_server.attach(app, sio, signaling, services.accounts, services.anonymous)

    errors.install(app)
    headers.install(app)
    app.on_request(guards.api_guards)
    for blueprint in (auth.bp, account.bp, public.bp, info.bp):
        app.blueprint(blueprint)

    _serve_web_app(app)
    monitor = RelayMonitor(config.turn.enabled, loopback_only=relay_problem is not None)

    @app.before_server_start
    async def start_storage(app: Sanic) -> None:
        await open_database(config.resolved_database_url)
        recorder.start()
        log.info("OpenCall %s: database ready", __version__)

    @app.after_server_start
    async def start_sweep(app: Sanic) -> None:
        sweep.start()

    @app.before_server_stop
    async def stop_sweep(app: Sanic) -> None:
        await sweep.stop()

    @app.after_server_stop
    async def stop_storage(app: Sanic) -> None:
        await recorder.stop()
        await close_database()

    if relay is not None:
        runner = RelayThread(relay)
        keeper = certificate_keeper(config)
        if keeper is not None and context is not None:
            keeper.load_on(context, runner.call_soon)  # renewed certificates are loaded on the relay's thread
        _run_relay(app, runner, may_relay, monitor, config.turn.port, advertised, relay_problem)
    if config.mdns.enabled:
        _announce(app, Announcer(Announcement.from_config(config)))
    # Last, so that its after_server_start listener tells systemd READY=1 once HTTP, Socket.IO and the relay listen.
    install_lifecycle(app, config, registry, [*services.limits.named(), *signaling.limits.named()], monitor)
    return app


def _serve_web_app(app: Sanic) -> None:
    """The browser client's page at / and its deep links, its static files and the Socket.IO bundle."""
    root = web_root()

    async def index(request: Request, token: str | None = None) -> HTTPResponse:
        """The web app; on ``/invite/<token>`` the page reads the token from its own URL. A browser without
        an anonymous id gets one here, before its socket connects: socket and relay credentials share it."""
        response = await file(root / "index.html")
        anonymous_id(request)
        remember_anonymous(request, response)
        return response

    app.add_route(index, "/", name="index")
    app.add_route(index, "/invite/<token:str>", name="invite_page")
    for page in ("login", "register", "dashboard", "docs", "trust", "contact"):  # the client's deep links
        app.add_route(index, f"/{page}", name=f"{page}_page")
    app.static("/static", root / "static", name="static")
    app.static("/socket.io/socket.io.js", root / "vendor" / "socket.io.min.js", name="socketio_bundle",
               content_type="application/javascript; charset=utf-8")


def _run_relay(app: Sanic, runner: RelayThread, may_relay: OnAppLoop | None, monitor: RelayMonitor, port: int,
               advertised: tuple[str, ...], problem: str | None) -> None:
    """Start the relay on its own thread and loop (opencall/relay/thread.py) before the server listens, and
    stop it after; ``may_relay`` is answered on the app's loop; /healthz and /metrics read it through
    ``monitor``.

    The relay starts first, before the database opens: when it cannot listen, Sanic runs no stop listener,
    and an open database's worker thread would keep the process from exiting."""

    @app.listener("before_server_start", priority=1)  # Sanic runs startup listeners by descending priority
    async def start_relay(app: Sanic) -> None:
        if may_relay is not None:
            may_relay.bind(asyncio.get_running_loop())
        await runner.start()
        monitor.attach(runner.relay.counters.snapshot, running=lambda: runner.running)
        log.info("relay listening on %s port %d, advertised as %s", " and ".join(runner.relay.listening), port,
                 ", ".join(advertised))
        if problem is not None:
            log.warning("%s. Fix: %s", problem, LOOPBACK_FIX)

    @app.after_server_stop
    async def stop_relay(app: Sanic) -> None:
        monitor.detach()
        await runner.stop()


def _announce(app: Sanic, announcer: Announcer) -> None:
    """mDNS: <name>.local and the web app's service on the LAN, withdrawn (goodbye packets) before the server
    stops."""

    @app.after_server_start
    async def start_mdns(app: Sanic) -> None:
        announcer.start()

    @app.before_server_stop
    async def stop_mdns(app: Sanic) -> None:
        await announcer.stop()
