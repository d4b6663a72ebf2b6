"""DirectManager (opencall.signaling.manager) behind a real python-socketio server on Sanic, with real clients.

OpenCall's handlers only emit to one socket; these cover the rest of python-socketio's emit contract the manager
takes over (rooms, skip_sid, several arguments, no arguments) and the path it leaves to python-socketio (acks).
Over WebSocket only: the manager hands packets to engine.io, whatever the transport (the signaling tests run both).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
import socketio
from sanic import Sanic

from opencall.signaling.manager import DirectManager

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Listener:
    client: socketio.AsyncClient
    got: asyncio.Queue[tuple[str, tuple[Any, ...]]] = field(default_factory=asyncio.Queue)

    async def next(self) -> tuple[str, tuple[Any, ...]]:
        return await asyncio.wait_for(self.got.get(), 5)


@dataclass
class Rig:
    sio: socketio.AsyncServer
    url: str
    listeners: list[Listener] = field(default_factory=list)

    async def connect(self) -> tuple[str, Listener]:
        client = socketio.AsyncClient(reconnection=False)
        listener = Listener(client)

        @client.on("*")
        async def anything(event: str, *args: Any) -> None:
            await listener.got.put((event, args))

        await client.connect(self.url, transports=["websocket"], wait_timeout=5)
        self.listeners.append(listener)
        sid = client.get_sid()  # the Socket.IO sid (client.sid is engine.io's)
        assert sid is not None
        return sid, listener


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[tuple[socketio.AsyncServer, str]]:
    """One app for the module: Sanic rewrites its classes at an app's first start, once per process."""
    sio = socketio.AsyncServer(async_mode="sanic", client_manager=DirectManager(), async_handlers=False)
    app = Sanic("manager_test", configure_logging=False)
    sio.attach(app)
    port = _free_port()
    running = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False)
    assert running is not None
    await running.startup()
    await running.start_serving()
    yield sio, f"http://127.0.0.1:{port}"
    await sio.shutdown()
    running.close()
    await running.wait_closed()


@pytest_asyncio.fixture(loop_scope="module")
async def rig(server: tuple[socketio.AsyncServer, str]) -> AsyncIterator[Rig]:
    made = Rig(*server)
    yield made
    for listener in made.listeners:
        await listener.client.disconnect()


async def test_to_one_socket(rig: Rig) -> None:
    sid, alice = await rig.connect()
    _, bob = await rig.connect()
    await rig.sio.emit("incoming-call", {"callerCallId": "ABCD2345", "offer": {"type": "offer", "sdp": "v=0"}},
                       to=sid)
    assert await alice.next() == ("incoming-call", ({"callerCallId": "ABCD2345",
                                                     "offer": {"type": "offer", "sdp": "v=0"}},))
    await rig.sio.emit("ping-bob", to=sid)  # no data: an event without arguments
    assert await alice.next() == ("ping-bob", ())
    assert bob.got.empty()


async def test_order_of_a_burst_is_kept(rig: Rig) -> None:
    sid, alice = await rig.connect()
    for number in range(50):
        await rig.sio.emit("ice-candidate", {"n": number}, to=sid)
    assert [(await alice.next())[1][0]["n"] for _ in range(50)] == list(range(50))


async def test_room_skip_sid_and_several_arguments(rig: Rig) -> None:
    (a_sid, a), (b_sid, b), (c_sid, c) = [await rig.connect() for _ in range(3)]
    for sid in (a_sid, b_sid, c_sid):
        await rig.sio.enter_room(sid, "devices")
    await rig.sio.emit("call-ended", ("one", 2, {"three": 3}), room="devices", skip_sid=b_sid)
    assert await a.next() == ("call-ended", ("one", 2, {"three": 3}))
    assert await c.next() == ("call-ended", ("one", 2, {"three": 3}))
    await rig.sio.emit("everyone", [1, 2])  # a list is one argument, sent to every socket
    for listener in (a, b, c):
        assert await listener.next() == ("everyone", ([1, 2],))
    await rig.sio.emit("nobody", {}, room="no-such-room")
    await rig.sio.emit("after", {}, to=b_sid)
    assert await b.next() == ("after", ({},))  # b got nothing from the skipped and empty-room emits


async def test_binary_payload(rig: Rig) -> None:
    sid, alice = await rig.connect()
    await rig.sio.emit("blob", {"data": b"\x00\x01\xff"}, to=sid)
    assert await alice.next() == ("blob", ({"data": b"\x00\x01\xff"},))


async def test_acknowledgements_keep_python_socketios_path(rig: Rig) -> None:
    sid, alice = await rig.connect()

    @alice.client.on("question")
    async def question(data: Any) -> str:
        return f"answer to {data}"

    answered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    await rig.sio.emit("question", "42", to=sid, callback=answered.set_result)
    assert await asyncio.wait_for(answered, 5) == "answer to 42"


async def test_unknown_sid_is_ignored(rig: Rig) -> None:
    sid, alice = await rig.connect()
    await rig.sio.emit("lost", {}, to="not-a-socket")
    await rig.sio.emit("found", {}, to=sid)
    assert await alice.next() == ("found", ({},))
