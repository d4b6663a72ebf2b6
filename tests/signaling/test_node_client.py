"""Wire compatibility with the official socket.io-client 4.x from npm, and the browser bundle we serve."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.signaling.clients import (
    ALPHABET,
    CALL_ID_RE,
    NODE_DIR,
    NodePeer,
    answer,
    candidate,
    new_account,
    node_binary,
    offer,
)
from tests.signaling.conftest import Connector
from tests.support import Server

pytestmark = pytest.mark.usefixtures("node_modules")

VERSION = "4.8.4"
NODE_TRANSPORTS = {"websocket": ["websocket"], "polling": ["polling"], "upgrade": ["polling", "websocket"]}
StartNode = Callable[[str], Awaitable[NodePeer]]


@pytest.fixture
async def start_node() -> AsyncIterator[StartNode]:
    started: list[NodePeer] = []

    async def start(label: str) -> NodePeer:
        peer = await NodePeer.start(label)
        started.append(peer)
        return peer

    yield start
    await asyncio.gather(*(peer.close() for peer in started))


async def connect_node(start_node: StartNode, server: Server, mode: str, auth: dict[str, str] | None = None
                       ) -> NodePeer:
    node = await start_node(f"node[{mode}]")
    hello = await node.connect(server.base_url, NODE_TRANSPORTS[mode], auth=auth)
    if mode == "upgrade":  # polling first, then the upgrade (which may complete before the namespace connects)
        assert (await node.expect("upgrade"))["transport"] == "websocket"
    else:
        assert hello["transport"] == mode, hello
    return node


@pytest.mark.parametrize("mode", list(NODE_TRANSPORTS))
async def test_full_call_between_node_and_python(server: Server, connect_ws: Connector, start_node: StartNode,
                                                 mode: str) -> None:
    account = new_account(server)
    node = await connect_node(start_node, server, mode, auth=account.auth)
    node_id = await node.register("  Node  ")
    assert node_id == account.stored_call_id()  # the API key bound it to the account's permanent ID
    python = await connect_ws(server, "python", transport="polling" if mode == "websocket" else "websocket")
    py_id = await python.register("Python")

    # Python calls Node.
    await python.emit("call", {"targetCallId": node_id, "offer": offer("py")})
    assert await node.next("incoming-call") == {"callerCallId": py_id, "callerDisplayName": "Python",
                                                "offer": offer("py"), "callerUsername": None}
    await node.emit("answer", {"targetCallId": py_id, "answer": answer("node")})
    assert await python.next("call-answered") == {"answer": answer("node"), "calleeDisplayName": "Node",
                                                  "calleeUsername": account.username}
    # A browser-sized burst of trickled candidates (batched by the client on polling) and its final null.
    burst = [("ice-candidate", {"targetCallId": py_id, "candidate": candidate(n)}) for n in range(30)]
    await node.emit_burst([*burst, ("ice-candidate", {"targetCallId": py_id, "candidate": None})])
    for n in range(30):
        assert await python.next("ice-candidate") == {"candidate": candidate(n)}
    for n in range(3):
        await python.emit("ice-candidate", {"targetCallId": node_id, "candidate": candidate(100 + n)})
    for n in range(3):
        assert await node.next("ice-candidate") == {"candidate": candidate(100 + n)}
    await python.emit("hangup", {"targetCallId": node_id})
    assert await node.next("call-ended") == {}

    # Node calls Python: first declined, then answered and hung up by Node.
    await node.emit("call", {"targetCallId": py_id.lower(), "offer": offer("node")})
    assert await python.next("incoming-call") == {"callerCallId": node_id, "callerDisplayName": "Node",
                                                  "offer": offer("node"), "callerUsername": account.username}
    await python.emit("reject", {"targetCallId": node_id})
    assert await node.next("call-rejected") == {}
    await node.emit("update-name", {"displayName": "Node 2"})
    await node.emit("call", {"targetCallId": py_id, "offer": offer("node")})
    assert (await python.next("incoming-call"))["callerDisplayName"] == "Node 2"
    await python.emit("answer", {"targetCallId": node_id, "answer": answer("py")})
    assert await node.next("call-answered") == {"answer": answer("py"), "calleeDisplayName": "Python",
                                                "calleeUsername": None}
    await node.emit("ice-candidate", {"targetCallId": py_id, "candidate": candidate(7)})
    assert await python.next("ice-candidate") == {"candidate": candidate(7)}
    await node.emit("hangup", {"targetCallId": py_id})
    assert await python.next("call-ended") == {}

    # Errors reach the Node client too, including for payloads only JavaScript sends (null).
    offline = "".join(secrets.choice(ALPHABET) for _ in range(8))
    assert await node.error("call", {"targetCallId": offline, "offer": offer()}) == f"{offline} is not online"
    assert await node.error("call", None) == "targetCallId is required"
    assert await node.error("hangup") == "targetCallId is required"
    assert await node.error("no-such-event", 1, 2) == "Unknown event: no-such-event"
    node.assert_quiet()
    python.assert_quiet()

    history = account.history()
    assert [(c["direction"], c["peer"], c["status"]) for c in history] == [
        ("outgoing", "Python", "answered"), ("outgoing", "Python", "rejected"), ("incoming", "Python", "answered")]


@pytest.mark.parametrize("mode", list(NODE_TRANSPORTS))
async def test_node_bad_key_then_anonymous(server: Server, start_node: StartNode, mode: str) -> None:
    node = await start_node(f"node[{mode}]")
    await node.command(op="connect", url=server.base_url, transports=NODE_TRANSPORTS[mode], auth={"apiKey": "bad"})
    error = await node.expect("connect_error")
    assert error["message"] == "Invalid API key", error
    assert node.control["connect"].empty()
    # The same process, without a key: a throwaway Call ID.
    await node.connect(server.base_url, NODE_TRANSPORTS[mode])
    await node.emit("register")
    assert CALL_ID_RE.match((await node.next("registered"))["callId"])


async def test_node_process_dying_mid_call_ends_the_call(server: Server, connect_ws: Connector,
                                                         start_node: StartNode) -> None:
    node = await connect_node(start_node, server, "websocket")
    node_id = await node.register("Doomed")
    python = await connect_ws(server, "python")
    py_id = await python.register()
    await python.emit("call", {"targetCallId": node_id, "offer": offer()})
    await node.next("incoming-call")
    await node.emit("answer", {"targetCallId": py_id, "answer": answer()})
    await python.next("call-answered")
    await node.kill()
    assert await python.next("call-ended") == {}


async def test_served_bundle_is_socket_io_client_4_exposing_io(server: Server) -> None:
    """/socket.io/socket.io.js is the npm package's dist/socket.io.min.js, byte for byte; evaluated in a
    browser-like global scope it defines `io`, which connects and registers."""
    proc = await asyncio.create_subprocess_exec(
        node_binary(), str(NODE_DIR / "bundle.mjs"), server.base_url, "connect", cwd=NODE_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, stderr.decode()
    report = json.loads(stdout)
    assert report["status"] == 200
    assert report["contentType"].startswith("application/javascript")
    assert report["header"].startswith(f"/*!\n * Socket.IO v{VERSION}\n"), report["header"]
    assert report["npmVersion"] == VERSION
    assert report["identicalToNpm"] is True
    assert (report["typeofIo"], report["typeofManager"], report["typeofSocket"]) == ("function",) * 3
    assert CALL_ID_RE.match(report["registered"]["callId"]), report["registered"]


def test_node_client_is_pinned() -> None:
    package = json.loads((NODE_DIR / "package.json").read_text())
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    assert package["dependencies"] == {"socket.io-client": VERSION}
    assert lock["packages"]["node_modules/socket.io-client"]["version"] == VERSION
    vendored = Path(__file__).parents[2] / "web" / "vendor" / "VERSION"
    assert f"socket.io-client {VERSION}" in vendored.read_text()
