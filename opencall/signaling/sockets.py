"""python-socketio in Sanic's native mode: thin handlers around the call service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import engineio.payload
import socketio
from sanic import Sanic

from opencall.cookie_names import ANON_COOKIE, SESSION_COOKIE
from opencall.origins import is_own_origin
from opencall.services.accounts import Accounts, password_stamp, token_hash
from opencall.services.anonymous import AnonymousIds
from opencall.services.errors import ServiceError
from opencall.services.identity import account_principal
from opencall.signaling.calls import CallService
from opencall.signaling.live import Peer
from opencall.signaling.manager import DirectManager

log = logging.getLogger("opencall.signaling")

# Engine.IO messages larger than this are refused by the transport itself (a 64 KiB SDP plus headroom).
MAX_MESSAGE = 128 * 1024
INVALID_KEY = "Invalid API key"
# How long shutdown waits for clients to receive their CLOSE packet.
CLOSE_GRACE = 2.0
# python-engineio drops a long-polling POST of more than 16 packets (answering 200, so the client never
# knows); socket.io-client sends everything it buffered while a POST was in flight as one batch, which a
# burst of trickled ICE candidates easily exceeds. Per-socket flood control (signaling/calls.py) still applies.
MAX_POLLING_PACKETS = 512
EventHandler = Callable[[str, Any], Awaitable[None]]


class SocketIOOutbox:
    """The :class:`~opencall.signaling.calls.Outbox` of a python-socketio server."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio

    async def emit(self, sid: str, event: str, payload: dict[str, Any]) -> None:
        await self._sio.emit(event, payload, to=sid)

    async def disconnect(self, sid: str) -> None:
        await self._sio.disconnect(sid)


def make_socket_server(public_url: str | None) -> socketio.AsyncServer:
    """The Socket.IO server; browsers may connect only from this server's own origin."""

    def origin_allowed(origin: str | None, environ: dict[str, Any]) -> bool:
        return origin is None or is_own_origin(origin, environ["sanic.request"], public_url)

    engineio.payload.Payload.max_decode_packets = MAX_POLLING_PACKETS
    return socketio.AsyncServer(
        async_mode="sanic",
        client_manager=DirectManager(),
        # Each event's handler runs in the socket's receive loop rather than in a task of its own: one task
        # less per message, and a socket's events are handled in the order they were sent.
        async_handlers=False,
        cors_allowed_origins=origin_allowed,
        max_http_buffer_size=MAX_MESSAGE,
        logger=False,
        engineio_logger=False,
    )


def attach(app: Sanic, sio: socketio.AsyncServer, signaling: CallService, accounts: Accounts,
           anonymous: AnonymousIds) -> None:
    """Register the handlers of api.md's events and attach the server to the Sanic app. A socket's relay
    principal is its account's, else the anonymous id of its browser's cookie (the one /api/ice-config uses)."""

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        request = environ["sanic.request"]
        key = auth.get("apiKey") if isinstance(auth, dict) else None
        key_hash = session_hash = None
        if key is not None:
            user = await accounts.user_for_api_key(key) if isinstance(key, str) else None
            if user is None:
                log.info("socket refused from %s: invalid API key", request.ip)
                raise socketio.exceptions.ConnectionRefusedError(INVALID_KEY)
            key_hash = token_hash(key)
        else:
            token = request.cookies.get(SESSION_COOKIE)
            user = await accounts.user_for_session(token) if token else None
            session_hash = token_hash(token) if user and token else None
        principal = account_principal(user.id) if user else anonymous.verify(request.cookies.get(ANON_COOKIE))
        # The credential it authenticated with, so that revocation (signaling/revocation.py) can find it.
        signaling.connected(Peer(
            sid=sid,
            user_id=user.id if user else None,
            username=user.username if user else None,
            api_key_hash=key_hash,
            ip=request.ip,
            session_hash=session_hash,
            password_stamp=password_stamp(user.password_hash) if user else None,
            principal=principal,
        ))

    @sio.event
    async def disconnect(sid: str, *reason: Any) -> None:
        await signaling.disconnected(sid)

    def handle(event: str, action: EventHandler) -> None:
        async def run(sid: str, *args: Any) -> None:
            if not signaling.admit(sid):
                return
            try:
                await action(sid, args[0] if args else None)
            except ServiceError as exc:
                await sio.emit("call-error", {"message": str(exc)}, to=sid)
            except Exception:
                log.exception("%s from socket %s failed", event, sid)
                await sio.emit("call-error", {"message": "Internal server error"}, to=sid)

        sio.on(event, run)

    for event, action in (
        ("register", signaling.register),
        ("update-name", signaling.update_name),
        ("call", signaling.place),
        ("answer", signaling.answer),
        ("reject", signaling.reject),
        ("hangup", signaling.hangup),
        ("ice-candidate", signaling.relay_candidate),
        ("renegotiate", signaling.renegotiate),
    ):
        handle(event, action)

    @sio.on("*")
    async def unknown(event: str, sid: str, *args: Any) -> None:
        if signaling.admit(sid):
            await sio.emit("call-error", {"message": f"Unknown event: {str(event)[:40]}"}, to=sid)

    sio.attach(app)

    @app.before_server_stop
    async def close_sockets(app: Sanic) -> None:
        # A failure here must not keep the later listeners (the database's close among them) from running.
        try:
            await _close_sockets(sio, signaling)
        except Exception:
            log.exception("shutdown: closing the sockets failed")

    @app.after_server_stop
    async def cancel_pings(app: Sanic) -> None:
        # engine.io leaves each closed socket's next ping asleep (up to ping_interval); cancelled here, they do
        # not end up as "Task was destroyed but it is pending!" errors when the loop closes.
        pings = [task for task in asyncio.all_tasks()
                 if getattr(task.get_coro(), "__qualname__", "") == "AsyncSocket._send_ping"]
        for task in pings:
            task.cancel()
        await asyncio.gather(*pings, return_exceptions=True)


async def _close_sockets(sio: socketio.AsyncServer, signaling: CallService) -> None:
    """Record the calls in progress, then close every socket and stop Socket.IO's background work."""
    # Calls in progress are recorded as they stand; their parties learn of the stop from the lost connection.
    await signaling.end_all_calls()
    # Without this, shutdown waits ~15 s for a pending long-poll (docs/architecture.md, "Pitfalls"). Closing waits
    # for each client to collect its CLOSE packet, which a polling client that went away between two polls never does:
    # every socket has had its disconnect handled before that wait, so bound it. One sid at a time rather than
    # eio.disconnect(), which fails when the last sockets close by themselves between its scheduling and its
    # start (asyncio.wait of nothing).
    closing = [sio.eio.disconnect(sid) for sid in list(sio.eio.sockets)]
    if closing:
        try:
            await asyncio.wait_for(asyncio.gather(*closing), CLOSE_GRACE)
        except TimeoutError:
            log.info("shutdown: some clients did not collect their close packet within %ss", CLOSE_GRACE)
    await sio.shutdown()
