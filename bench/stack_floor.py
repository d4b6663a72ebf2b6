"""The anchor of the signaling benchmark: python-socketio on Sanic relaying the bench's call cycle, nothing more.

It speaks the events ``bench/signaling.py`` uses (register, call, answer, ice-candidate, hangup) with api.md's
payloads, but keeps no call state beyond who talks to whom, checks nothing, logs nothing and stores nothing.
What it costs per cycle is the floor of the stack OpenCall is built on; OpenCall's cost above it is its own.

    python bench/stack_floor.py --port 8080 [--stock]

``--stock`` runs python-socketio as it comes (a task per event, a task per recipient of an emit); by default it
uses the same settings as OpenCall's server (opencall/signaling/sockets.py): the DirectManager and handlers run
in the socket's receive loop. ``--lean-recv`` measures what Sanic's websocket receive path costs: it replaces
``WebsocketImplProtocol.recv`` (a task, a future and ``asyncio.wait`` per message) with a plain await of the
frame assembler, dropping recv's cancellation on close. A measurement only: OpenCall never patches Sanic.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import Any

import socketio
from sanic import Request, Sanic
from sanic.response import HTTPResponse, json

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opencall.signaling.manager import DirectManager


def make_app(stock: bool) -> Sanic:
    """The Sanic app with the Socket.IO relay attached."""
    if stock:
        sio = socketio.AsyncServer(async_mode="sanic")
    else:
        sio = socketio.AsyncServer(async_mode="sanic", client_manager=DirectManager(), async_handlers=False)
    app = Sanic("stack_floor", configure_logging=False)
    sid_of: dict[str, str] = {}
    call_id_of: dict[str, str] = {}
    peer_of: dict[str, str] = {}

    @app.get("/api/auth/me")
    async def ready(request: Request) -> HTTPResponse:
        return json({"user": None})

    @sio.event
    async def register(sid: str, data: Any) -> None:
        call_id = secrets.token_hex(4).upper()
        sid_of[call_id], call_id_of[sid] = sid, call_id
        await sio.emit("registered", {"callId": call_id}, to=sid)

    @sio.on("call")
    async def call(sid: str, data: Any) -> None:
        callee = sid_of[data["targetCallId"]]
        peer_of[sid], peer_of[callee] = callee, sid
        await sio.emit("incoming-call", {"callerCallId": call_id_of[sid], "callerDisplayName": None,
                                         "offer": data["offer"]}, to=callee)

    @sio.on("answer")
    async def answer(sid: str, data: Any) -> None:
        await sio.emit("call-answered", {"answer": data["answer"], "calleeDisplayName": None}, to=peer_of[sid])

    @sio.on("ice-candidate")
    async def ice_candidate(sid: str, data: Any) -> None:
        await sio.emit("ice-candidate", {"candidate": data["candidate"]}, to=peer_of[sid])

    @sio.on("hangup")
    async def hangup(sid: str, data: Any) -> None:
        other = peer_of.pop(sid)
        peer_of.pop(other, None)
        await sio.emit("call-ended", {}, to=other)

    @sio.event
    async def disconnect(sid: str, *reason: Any) -> None:
        sid_of.pop(call_id_of.pop(sid, ""), None)

    sio.attach(app)
    return app


async def _lean_recv(self: Any, timeout: float | None = None) -> Any:
    return await self.assembler.get(timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--stock", action="store_true", help="python-socketio's own defaults")
    parser.add_argument("--lean-recv", action="store_true", help="Sanic's websocket recv without its task")
    args = parser.parse_args()
    if args.lean_recv:
        from sanic.server.websockets.impl import WebsocketImplProtocol

        WebsocketImplProtocol.recv = _lean_recv  # type: ignore[method-assign]
    make_app(args.stock).run(host="127.0.0.1", port=args.port, single_process=True, access_log=False,
                             motd=False)


if __name__ == "__main__":
    main()
