"""The composition root: ``create_app(config)`` wires config, storage, services and the HTTP routes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sanic import Request, Sanic
from sanic.response import HTTPResponse, file

from opencall import __version__, httplimits
from opencall.api import account, auth, errors, guards, headers, info, public
from opencall.api.context import anonymous_id
from opencall.api.cookies import remember_anonymous
from opencall.config import Config, RateLimits
from opencall.db.models import User
from opencall.db.setup import close_database, open_database
from opencall.lan import url_host
from opencall.lifecycle import install as install_appliance
from opencall.mdns import Announcement, Announcer
from opencall.relay.policy import CallRelayPolicy
from opencall.relay.settings import LOOPBACK_FIX, advertised_hosts, loopback_problem, relay_config
from opencall.services.accounts import Accounts
from opencall.services.anonymous import AnonymousIds
from opencall.services.blocks import Blocks
from opencall.services.call_records import CallRecorder
from opencall.services.callids import permanent_call_id
from opencall.services.client_log import ClientLog
from opencall.services.ice import IcePlan
from opencall.services.invites import Invites
from opencall.services.presence import Presence
from opencall.services.ratelimit import RateLimiter
from opencall.services.ringing import RingingLimits
from opencall.services.secrets_store import api_key_cipher, turn_secret
from opencall.signaling import sockets as signaling_server
from opencall.signaling.calls import Signaling
from opencall.signaling.registry import Registry
from opencall.signaling.revocation import CredentialSweep
from opencall.tls import server_ssl_context
from turn import TurnServer

log = logging.getLogger("opencall")


@dataclass(frozen=True)
class Limits:
    """One limiter per rate limit of the config."""

    login_per_ip: RateLimiter
    login_failures_per_user: RateLimiter
    register_per_ip: RateLimiter
    contact_per_ip: RateLimiter
    client_log_per_ip: RateLimiter

    @classmethod
    def from_config(cls, limits: RateLimits) -> Limits:
        return cls(
            login_per_ip=RateLimiter(limits.login_per_ip),
            login_failures_per_user=RateLimiter(limits.login_failures_per_user),
            register_per_ip=RateLimiter(limits.register_per_ip),
            contact_per_ip=RateLimiter(limits.contact_per_ip),
            client_log_per_ip=RateLimiter(limits.client_log_per_ip),
        )


@dataclass(frozen=True)
class AppServices:
    """Everything the handlers use, built once per app."""

    config: Config
    accounts: Accounts
    invites: Invites
    presence: Presence
    ice_plan: IcePlan
    limits: Limits
    public_url: str | None
    call_log: CallRecorder
    anonymous: AnonymousIds
    client_log: ClientLog
    blocks: Blocks


def build_services(config: Config, registry: Registry, advertised: tuple[str, ...]) -> AppServices:
    """Make the services from the config; key material is created in data_dir on first start."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    turn = config.turn
    ice_plan = IcePlan(
        enabled=turn.enabled,
        hosts=tuple(url_host(host) for host in advertised),
        port=turn.port,
        tls_port=turn.tls_port if config.tls_enabled else None,
        secret=turn_secret(config.data_dir, turn.secret),
        credential_ttl=turn.credential_ttl,
        extra_servers=config.ice.extra_servers,
    )
    return AppServices(
        config=config,
        accounts=Accounts(api_key_cipher(config.data_dir)),
        invites=Invites(registry, config.invite_ttl),
        presence=registry,
        ice_plan=ice_plan,
        limits=Limits.from_config(config.rate_limits),
        public_url=config.server.public_url,
        call_log=CallRecorder(),
        anonymous=AnonymousIds.from_secret(ice_plan.secret),
        client_log=ClientLog(config.client_log.bytes_per_minute),
        blocks=Blocks(registry.identity_of),
    )


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
    if config.turn.enabled:
        context = server_ssl_context(config)
        settings = relay_config(config, services.ice_plan.secret, advertised, context)
        # peer_policy call: the relay asks the live calls which peers each principal may reach.
        may_relay = (CallRelayPolicy(registry, settings.relay_addresses.values())
                     if config.turn.peer_policy == "call" else None)
        relay = TurnServer(settings, may_relay=may_relay)
    recorder = services.call_log
    limits = config.rate_limits
    sio = signaling_server.make_socket_server(config.server.public_url)
    signaling = Signaling(
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

    @app.before_server_start
    async def start_relay(app: Sanic) -> None:
        if relay is not None:
            await relay.start()
            monitor.attach(relay.counters.snapshot, running=lambda: relay.running)
            log.info("relay listening on %s port %d, advertised as %s", " and ".join(relay.listening), config.turn.port,
                     ", ".join(advertised))
            if relay_problem is not None:
                log.warning("%s. Fix: %s", relay_problem, LOOPBACK_FIX)

    @app.after_server_stop
    async def stop_relay(app: Sanic) -> None:
        if relay is not None:
            monitor.detach()
            await relay.stop()

    # mDNS: <name>.local and the web app's service on the LAN, withdrawn (goodbye packets) before the server stops.
    announcer = Announcer(Announcement.from_config(config)) if config.mdns.enabled else None

    @app.after_server_start
    async def start_mdns(app: Sanic) -> None:
        if announcer is not None:
            announcer.start()

    @app.before_server_stop
    async def stop_mdns(app: Sanic) -> None:
        if announcer is not None:
            await announcer.stop()

    # Its after_server_start listener tells systemd READY=1 once HTTP, Socket.IO and the relay listen.
    monitor = install_appliance(app, config, registry, services.limits, signaling.limits.named(),
                                relay_loopback_only=relay_problem is not None)
    return app
