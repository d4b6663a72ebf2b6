"""Real Socket.IO clients for the signaling tests.

Two kinds of party, with one interface (:class:`Party`): :class:`PyPeer` wraps python-socketio's
``AsyncClient``; :class:`NodePeer` remote-controls the official ``socket.io-client`` 4.x in a Node process
(``node/peer.mjs``: commands as JSON lines on its stdin, everything its socket sees as JSON lines on stdout).
Every server event a party receives is recorded; tests wait for events by name with short timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import engineio.packet
import engineio.payload
import httpx
import socketio
from socketio import packet

from tests.support import Server, api_key, metric, query_db, register

TRANSPORTS = ("websocket", "polling")
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # api.md "Conventions"
CALL_ID_RE = re.compile(r"^[A-HJ-NP-Z2-9]{8}$")
SQL_UTC_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
WAIT = 5.0  # the longest any single expected event may take
SESSION_COOKIE = "opencall_session"
NODE_DIR = Path(__file__).parent / "node"
# python-engineio's client, like its server, refuses a long-polling payload of more than 16 packets by
# default; a poll answering a burst of relayed candidates carries more. The official client has no such limit.
engineio.payload.Payload.max_decode_packets = 512


# -- payloads ---------------------------------------------------------------------------------------------

def offer(tag: str = "a") -> dict[str, str]:
    return {"type": "offer", "sdp": f"v=0\r\no=- {tag} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"}


def answer(tag: str = "b") -> dict[str, str]:
    return {"type": "answer", "sdp": f"v=0\r\no=- {tag} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"}


def candidate(n: int = 1) -> dict[str, Any]:
    return {"candidate": f"candidate:{n} 1 udp 2122260223 127.0.0.1 {50000 + n} typ host",
            "sdpMid": "0", "sdpMLineIndex": 0}


# -- recording ---------------------------------------------------------------------------------------------

class EventLog:
    """Server events in arrival order, and the ones no test has read yet, by name."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.received: list[tuple[str, Any]] = []
        self._unread: defaultdict[str, deque[Any]] = defaultdict(deque)
        self._arrived = asyncio.Event()

    def record(self, event: str, payload: Any) -> None:
        self.received.append((event, payload))
        self._unread[event].append(payload)
        self._arrived.set()

    async def next(self, event: str, timeout: float = WAIT) -> Any:
        """The next unread ``event`` payload; fails naming everything received when it does not come."""
        deadline = time.monotonic() + timeout
        while not self._unread[event]:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError(
                    f"{self.label}: no {event!r} within {timeout}s; received {self.received}") from None
        return self._unread[event].popleft()

    def unread(self, *events: str) -> list[tuple[str, Any]]:
        """Events received but not yet read by :meth:`next` (of every name when none are given)."""
        return [(name, item) for name in (events or tuple(self._unread)) for item in self._unread[name]]

    def assert_quiet(self, *events: str) -> None:
        assert not self.unread(*events), f"{self.label}: unexpected events {self.unread(*events)}"


class Party:
    """One socket: emit events, wait for server events, register, close."""

    events: EventLog
    call_id: str | None = None
    token: str | None = None  # the resume token from ``session`` (docs/api.md "Session resume")

    async def emit(self, event: str, *args: Any) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def next(self, event: str, timeout: float = WAIT) -> Any:
        return await self.events.next(event, timeout)

    def assert_quiet(self, *events: str) -> None:
        self.events.assert_quiet(*events)

    async def register(self, display_name: Any = None, *, raw: Any = ..., resume: str | None = None) -> str:
        """Emit ``register`` (with ``resume``: that token) and return the Call ID from ``registered``. The first
        register of a connection is answered by ``session`` too: its token is kept in :attr:`token` (whatever
        else the server sent in between, ``call-resumed`` or ``call-ended``, stays unread)."""
        body = raw if raw is not ... else ({} if display_name is None else {"displayName": display_name})
        if resume is not None:
            body = {**body, "resume": resume}
        first = self.call_id is None
        await self.emit("register", body)
        reply = await self.next("registered")
        assert set(reply) == {"callId"}, reply
        assert CALL_ID_RE.match(reply["callId"]), reply
        self.call_id = reply["callId"]
        if first:
            session = await self.next("session")
            assert set(session) == {"resumeToken"} and isinstance(session["resumeToken"], str), session
            assert len(session["resumeToken"]) == 32, session  # secrets.token_urlsafe(24)
            self.token = session["resumeToken"]
        return self.call_id

    async def error(self, event: str, *args: Any) -> str:
        """Emit ``event`` and return the message of the ``call-error`` it causes."""
        await self.emit(event, *args)
        reply = await self.next("call-error")
        assert set(reply) == {"message"} and isinstance(reply["message"], str), reply
        return str(reply["message"])

    async def sync(self) -> None:
        """A round trip through the server: everything this socket sent before has been handled."""
        await self.emit("sync-probe")
        message = (await self.next("call-error"))["message"]
        assert message == "Unknown event: sync-probe", message


class PyPeer(Party):
    """python-socketio's AsyncClient on one transport."""

    def __init__(self, label: str, transport: str) -> None:
        self.transport = transport
        self.events = EventLog(label)
        self.client = socketio.AsyncClient(reconnection=False)
        self.connect_errors: asyncio.Queue[Any] = asyncio.Queue()
        self.disconnected = asyncio.Event()
        self.client.on("*", self._any)
        self.client.on("connect_error", self.connect_errors.put_nowait)
        self.client.on("disconnect", self._disconnect)

    async def _any(self, event: str, *args: Any) -> None:
        self.events.record(event, args[0] if len(args) == 1 else list(args))

    async def _disconnect(self, *reason: Any) -> None:
        self.disconnected.set()

    async def connect(self, url: str, *, auth: Any = None, headers: dict[str, str] | None = None) -> PyPeer:
        await self.client.connect(url, auth=auth, headers=dict(headers or {}), transports=[self.transport],
                                  wait_timeout=WAIT)
        assert self.client.transport() == self.transport
        return self

    async def refused(self, url: str, *, auth: Any = None, headers: dict[str, str] | None = None) -> Any:
        """Connect expecting ``connect_error``; returns its data."""
        task = asyncio.create_task(self.client.connect(
            url, auth=auth, headers=dict(headers or {}), transports=[self.transport], wait_timeout=WAIT))
        error = asyncio.ensure_future(self.connect_errors.get())
        try:
            await asyncio.wait({task, error}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(error), 0.5)
            outcome = "accepted" if task.done() and task.exception() is None else "neither accepted nor refused"
            raise AssertionError(f"{self.events.label}: no connect_error, the connection was {outcome}")
        finally:
            error.cancel()
            # The refused client disconnects; on polling it would wait ~30 s for its pending long-poll.
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            await self.client.eio.disconnect(abort=True)

    @property
    def connected(self) -> bool:
        return bool(self.client.connected)

    async def emit(self, event: str, *args: Any) -> None:
        await self.client.emit(event, args[0] if len(args) == 1 else (tuple(args) if args else None))

    async def flush(self) -> None:
        """Wait until everything emitted so far has left the client."""
        await asyncio.wait_for(self.client.eio.queue.join(), WAIT)

    async def drop(self) -> None:
        """Lose the connection without a goodbye: the websocket closes without any Socket.IO packet."""
        assert self.transport == "websocket"
        await self.client.eio.ws.close()

    async def close(self) -> None:
        """Disconnect the way the client library does, without its ~30 s wait on polling."""
        client = self.client
        if client.connected and client.transport() == "polling":
            # What socket.io-client sends on disconnect(): DISCONNECT for the namespace, then Engine.IO CLOSE.
            for namespace in list(client.namespaces):
                await client._send_packet(client.packet_class(packet.DISCONNECT, namespace=namespace))
            await client.eio._send_packet(engineio.packet.Packet(engineio.packet.CLOSE))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.eio.queue.join(), WAIT)
            await client.eio.disconnect(abort=True)
        elif client.connected:
            await client.disconnect()
        else:
            await client.eio.disconnect(abort=True)


class NodePeer(Party):
    """The official socket.io-client 4.x, driven through ``node/peer.mjs``."""

    def __init__(self, label: str, proc: asyncio.subprocess.Process) -> None:
        self.events = EventLog(label)
        self.proc = proc
        self.control: defaultdict[str, asyncio.Queue[dict[str, Any]]] = defaultdict(asyncio.Queue)
        self.stderr = b""
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, label: str) -> NodePeer:
        proc = await asyncio.create_subprocess_exec(
            node_binary(), str(NODE_DIR / "peer.mjs"), cwd=NODE_DIR,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return cls(label, proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            message = json.loads(line)
            if message["type"] == "event":
                args = message["args"]
                self.events.record(message["event"], args[0] if len(args) == 1 else args)
            else:
                self.control[message["type"]].put_nowait(message)

    async def command(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()

    async def expect(self, kind: str, timeout: float = WAIT) -> dict[str, Any]:
        """The next control message (connect, connect_error, disconnect, upgrade, ...) from the Node peer."""
        try:
            return await asyncio.wait_for(self.control[kind].get(), timeout)
        except TimeoutError:
            stderr = await self._stderr()
            raise AssertionError(f"{self.events.label}: no {kind!r} from node within {timeout}s; "
                                 f"got {dict(self.control)} {self.events.received}; stderr: {stderr}") from None

    async def _stderr(self) -> str:
        if self.proc.returncode is not None and self.proc.stderr is not None:
            self.stderr += await self.proc.stderr.read()
        return self.stderr.decode(errors="replace")

    async def connect(self, url: str, transports: list[str], auth: Any = None) -> dict[str, Any]:
        await self.command(op="connect", url=url, transports=transports, auth=auth)
        return await self.expect("connect")

    async def emit(self, event: str, *args: Any) -> None:
        await self.command(op="emit", event=event, args=list(args))

    async def emit_burst(self, items: list[tuple[str, Any]]) -> None:
        """Emit all of ``items`` in one tick of the Node event loop."""
        await self.command(op="emits", items=[[event, payload] for event, payload in items])

    async def kill(self) -> None:
        """The Node process dies: its TCP connections close without any goodbye."""
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def close(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ConnectionError):
                await self.command(op="exit")
            try:
                await asyncio.wait_for(self.proc.wait(), WAIT)
            except TimeoutError:
                await self.kill()
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader


def node_binary() -> str:
    node = shutil.which("node")
    assert node, "Node.js (`node`) is required for the socket.io-client wire-compatibility tests"
    return node


def ensure_node_modules() -> None:
    """``npm ci`` in tests/signaling/node when its node_modules is missing; fails (never skips) without npm."""
    if (NODE_DIR / "node_modules" / "socket.io-client" / "package.json").exists():
        return
    npm = shutil.which("npm")
    assert npm, "npm is required to install socket.io-client for the wire-compatibility tests (npm ci)"
    result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, f"npm ci failed in {NODE_DIR}:\n{result.stdout}\n{result.stderr}"


# -- accounts and the REST side ----------------------------------------------------------------------------

@dataclass
class Account:
    """An account on a server: its signed-in HTTP client, username, API key and session cookie."""

    http: httpx.Client
    username: str
    key: str
    server: Server

    @property
    def auth(self) -> dict[str, str]:
        return {"apiKey": self.key}

    @property
    def cookie_header(self) -> dict[str, str]:
        return {"Cookie": f"{SESSION_COOKIE}={self.http.cookies[SESSION_COOKIE]}"}

    def history(self) -> list[dict[str, Any]]:
        response = self.http.get("/api/call-history")
        assert response.status_code == 200, response.text
        calls: list[dict[str, Any]] = response.json()["calls"]
        return calls

    def stored_calls(self) -> int:
        """How many finished calls of this account are in the server's database."""
        name = self.username.lower()
        rows = query_db(self.server, "SELECT COUNT(*) FROM calls WHERE caller_id = (SELECT id FROM users WHERE "
                        "username_key = ?) OR callee_id = (SELECT id FROM users WHERE username_key = ?)", (name, name))
        return int(rows[0][0])

    def stored_call_id(self) -> str | None:
        """The permanent Call ID as stored in the server's database."""
        rows = query_db(self.server, "SELECT call_id FROM users WHERE username_key = ?", (self.username.lower(),))
        return rows[0][0] if rows else None


def new_account(server: Server, username: str | None = None) -> Account:
    http, name = register(server, username)
    return Account(http=http, username=name, key=api_key(http), server=server)


async def until_sockets(server: Server, count: int) -> None:
    """Wait until ``server`` holds ``count`` Socket.IO connections (``opencall_sockets_connected`` in /metrics).

    A client's disconnect is not acknowledged: this round trip is how a test knows the server has handled it
    before asserting what the disconnect did not do. Exact on a server with no other test's sockets."""
    deadline = time.monotonic() + WAIT
    async with httpx.AsyncClient(base_url=server.base_url, timeout=WAIT) as http:
        while True:
            now = metric((await http.get("/metrics")).text, "opencall_sockets_connected")
            if now == count:
                return
            assert time.monotonic() < deadline, f"{now:g} sockets on the server after {WAIT}s, not {count}"
            await asyncio.sleep(0.05)


async def gather_next(pairs: Iterable[tuple[Party, str]]) -> list[Any]:
    """Wait for several events on several parties at once."""
    return list(await asyncio.gather(*(party.next(event) for party, event in pairs)))



class RawPolling:
    """Engine.IO v4 long-polling spoken by hand (httpx), for a client that stops polling at a chosen moment,
    the way a phone that loses its network between two polls does."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=WAIT)
        self.sid = ""

    async def open(self) -> None:
        response = await self.http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        assert response.status_code == 200 and response.text.startswith("0"), response.text
        self.sid = json.loads(response.text[1:])["sid"]
        await self.send("40")  # Socket.IO CONNECT to "/"
        assert (await self.poll())[0].startswith("40"), "namespace connect refused"

    async def send(self, *packets: str) -> None:
        response = await self.http.post("/socket.io/", params=self._params(), content="\x1e".join(packets),
                                        headers={"Content-Type": "text/plain;charset=UTF-8"})
        assert response.status_code == 200 and response.text.lower() == "ok", response.text

    async def emit(self, event: str, payload: Any) -> None:
        await self.send("42" + json.dumps([event, payload]))

    async def poll(self) -> list[str]:
        response = await self.http.get("/socket.io/", params=self._params())
        assert response.status_code == 200, response.text
        return response.text.split("\x1e")

    async def next_event(self) -> tuple[str, Any]:
        """The first event of the next poll that brings one, ``session`` (the resume token) aside."""
        for _ in range(3):
            for raw in await self.poll():
                if raw.startswith("42"):
                    event, payload = json.loads(raw[2:])
                    if event != "session":
                        return event, payload
        raise AssertionError("no event in three polls")

    def _params(self) -> dict[str, str]:
        return {"EIO": "4", "transport": "polling", "sid": self.sid}

    async def close(self) -> None:
        await self.http.aclose()
