"""Signaling benchmark: the real ``opencall serve`` with 1,000 Socket.IO clients and concurrent call setups.

The server runs as a subprocess on 127.0.0.1 (plain HTTP, its own temporary data dir, the call rate limit
off). Worker processes, each with its own asyncio loop, connect their share of the clients over the
websocket transport, register them and pair them up. Each phase then runs call cycles between idle pairs:

    caller ``call`` {offer} -> callee ``incoming-call`` -> callee ``answer`` -> caller ``call-answered``
    (that span is the setup latency), then ``ice-candidate`` N times each way (each must arrive, in this
    call), then caller ``hangup`` -> callee ``call-ended``.

A phase is either open-loop at a target rate (new cycles are started on a fixed schedule, whatever the
server's latency) or closed-loop ``max`` (a fixed number of cycles in flight, each followed at once by the
next). The server's RSS (``VmRSS``/``VmHWM``) and CPU (``utime+stime``) are read from ``/proc/<pid>``.
``--anchors`` runs the same phases, in turn with OpenCall's, against bench/stack_floor.py (the stack without
OpenCall), each with its own clients.

Example (the figures in docs/benchmarks.md)::

    python bench/signaling.py --clients 1000 --rates 50,100,150,200,max@4,max@20 --duration 20 --anchors floor,stock
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import multiprocessing
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import socketio
import yaml

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

# -- realistic WebRTC payloads -----------------------------------------------------------------------------


def _fingerprint() -> str:
    return ":".join(f"{b:02X}" for b in secrets.token_bytes(32))


# Chrome's audio codecs in its offer's order: payload type and its attribute lines. The answer keeps ANSWERED.
CODECS = [
    (111, ["a=rtpmap:111 opus/48000/2", "a=rtcp-fb:111 transport-cc", "a=fmtp:111 minptime=10;useinbandfec=1"]),
    (63, ["a=rtpmap:63 red/48000/2", "a=fmtp:63 111/111"]),
    (9, ["a=rtpmap:9 G722/8000"]),
    (102, ["a=rtpmap:102 ILBC/8000"]),
    (0, ["a=rtpmap:0 PCMU/8000"]),
    (8, ["a=rtpmap:8 PCMA/8000"]),
    (13, ["a=rtpmap:13 CN/8000"]),
    (110, ["a=rtpmap:110 telephone-event/48000"]),
    (126, ["a=rtpmap:126 telephone-event/8000"]),
    (103, ["a=rtpmap:103 ISAC/16000"]),
    (104, ["a=rtpmap:104 ISAC/32000"]),
    (106, ["a=rtpmap:106 CN/32000"]),
    (105, ["a=rtpmap:105 CN/16000"]),
    (112, ["a=rtpmap:112 telephone-event/32000"]),
    (113, ["a=rtpmap:113 telephone-event/16000"]),
]
ANSWERED = {111, 63, 9, 0, 8, 13, 110, 126}
EXTENSIONS = [
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time",
    "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
]


def _audio_sdp(offer: bool) -> str:
    """An audio-only description as Chrome writes it: the offer (~2.4 KB), or the answer to it (~1.5 KB)."""
    ssrc, stream, track = 1 + secrets.randbelow(2**32 - 1), secrets.token_hex(8), secrets.token_hex(16)
    codecs = [(pt, lines) for pt, lines in CODECS if offer or pt in ANSWERED]
    extensions = EXTENSIONS if offer else EXTENSIONS[:4]
    lines = [
        "v=0",
        f"o=- {10**18 + secrets.randbelow(9 * 10**18)} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=extmap-allow-mixed",
        f"a=msid-semantic: WMS {stream}",
        "m=audio 9 UDP/TLS/RTP/SAVPF " + " ".join(str(pt) for pt, _ in codecs),
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        f"a=ice-ufrag:{secrets.token_urlsafe(3)}",
        f"a=ice-pwd:{secrets.token_urlsafe(18)}",
        "a=ice-options:trickle",
        f"a=fingerprint:sha-256 {_fingerprint()}",
        f"a=setup:{'actpass' if offer else 'active'}",
        "a=mid:0",
        *(f"a=extmap:{number} {uri}" for number, uri in enumerate(extensions, start=1)),
        "a=sendrecv",
        f"a=msid:{stream} {track}",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        *(line for _, attributes in codecs for line in attributes),
        f"a=ssrc:{ssrc} cname:{secrets.token_urlsafe(12)}",
        f"a=ssrc:{ssrc} msid:{stream} {track}",
        *([f"a=ssrc:{ssrc} mslabel:{stream}", f"a=ssrc:{ssrc} label:{track}"] if offer else []),
        *_gathered(4 if offer else 2),
    ]
    return "\r\n".join(lines) + "\r\n"


def offer_sdp() -> str:
    return _audio_sdp(offer=True)


def answer_sdp() -> str:
    return _audio_sdp(offer=False)


def _gathered(count: int) -> list[str]:
    """Candidates already gathered when the description is sent (the rest trickle)."""
    lines = [
        "a=candidate:1467250027 1 udp 2122260223 192.168.1.23 56143 typ host generation 0 network-id 1 "
        "network-cost 10",
        "a=candidate:2034172543 1 udp 2122197247 2001:db8:85a3::8a2e:370:7334 56144 typ host generation 0 "
        "network-id 2 network-cost 10",
        "a=candidate:435653019 1 tcp 1518280447 192.168.1.23 9 typ host tcptype active generation 0 "
        "network-id 1 network-cost 10",
        "a=candidate:842163049 1 udp 1686052607 203.0.113.7 56143 typ srflx raddr 192.168.1.23 rport 56143 "
        "generation 0 network-id 1 network-cost 10",
    ]
    return lines[:count]


def candidate(index: int, tag: str) -> dict[str, Any]:
    """A trickled ICE candidate; ``usernameFragment`` carries the cycle's tag so strays are noticed."""
    kinds = (
        "192.168.1.{h} {p} typ host generation 0 network-id 1",
        "203.0.113.{h} {p} typ srflx raddr 192.168.1.{h} rport {p} generation 0 network-id 1",
        "198.51.100.{h} {p} typ relay raddr 203.0.113.{h} rport {p} generation 0 network-id 1",
    )
    host, port = 2 + index % 250, 50000 + index
    text = kinds[index % 3].format(h=host, p=port)
    foundation, priority = 842163049 + index, 2122260223 - index * 1000
    return {
        "candidate": f"candidate:{foundation} 1 udp {priority} {text} network-cost 10",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "usernameFragment": tag,
    }


# -- the server ------------------------------------------------------------------------------------------------


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_config(log_level: str) -> dict[str, Any]:
    """Loopback only, plain HTTP, everything in the work dir, rate limits out of the way."""
    return {
        "server": {"host": "127.0.0.1", "port": free_port(), "tls": "off"},
        "data_dir": "data",
        "log_file": "logs/opencall.log",
        "log_level": log_level,
        "turn": {"listen": "127.0.0.1", "advertise": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM),
                 "tls_port": None, "allowed_peers": ["127.0.0.0/8"]},
        "rate_limits": {"login_per_ip": 10000, "login_failures_per_user": 10000, "register_per_ip": 10000,
                        "contact_per_ip": 10000, "client_log_per_ip": 10000, "calls_per_caller": 0,
                        "calls_per_ip": 0, "rings_per_callee": 0},
    }


class Server:
    """A server under test in ``workdir``: ``python -m opencall serve --config FILE`` or an anchor."""

    def __init__(self, workdir: Path, command: list[str], port: int) -> None:
        self.workdir = workdir
        self.command = command
        self.port = port
        self.output = workdir / "server-output.txt"
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def opencall(cls, workdir: Path, log_level: str) -> Server:
        config = server_config(log_level)
        path = workdir / "opencall.yaml"
        path.write_text(yaml.safe_dump(config))
        return cls(workdir, ["-m", "opencall", "serve", "--config", str(path)], config["server"]["port"])

    @classmethod
    def anchor(cls, workdir: Path, kind: str) -> Server:
        port = free_port()
        return cls(workdir, [str(REPO / "bench" / "stack_floor.py"), "--port", str(port), *ANCHOR_FLAGS[kind]],
                   port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("OPENCALL_CONFIG", None)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        with self.output.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter, our module or script
                [sys.executable, *self.command],
                cwd=self.workdir, stdout=out, stderr=out, env=env,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.output.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/auth/me", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {READY_TIMEOUT:.0f} s:\n{self.output.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class ProcStats:
    """The server process as /proc sees it."""

    pid: int

    def rss_kb(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in KiB: the resident set now and its peak since start."""
        values = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
        return values.get("VmRSS", 0), values.get("VmHWM", 0)

    def cpu_seconds(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the process, all its threads."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


class PhaseMonitor:
    """CPU of the server, of the load generator and of the machine over a phase's window (now until ``end``);
    the server's peak RSS until the phase is done."""

    def __init__(self, server: ProcStats, load: list[ProcStats], end: float) -> None:
        self.server, self.load, self.end = server, load, end
        self.cpu = [server.cpu_seconds()]
        self.load_cpu = [self._load_cpu()]
        self.busy = [machine_busy()]
        self.rss_peak = server.rss_kb()[0]

    def _load_cpu(self) -> float:
        return sum(sum(p.cpu_seconds()) for p in self.load)

    def sample(self) -> None:
        self.rss_peak = max(self.rss_peak, self.server.rss_kb()[0])
        if len(self.cpu) == 1 and time.monotonic() >= self.end:
            self.close_window()

    def close_window(self) -> None:
        if len(self.cpu) == 1:
            self.cpu.append(self.server.cpu_seconds())
            self.load_cpu.append(self._load_cpu())
            self.busy.append(machine_busy())


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


# -- the clients (in worker processes) -------------------------------------------------------------------------


class CycleFailed(Exception):
    pass


class Client:
    """One Socket.IO client; its handlers resolve the futures the running cycle waits on."""

    def __init__(self, stats: WorkerStats, ice: int) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.stats = stats
        self.ice = ice
        self.call_id = ""
        self.tag = ""
        self.waiting: dict[str, asyncio.Future[Any]] = {}
        self.ice_seen = 0
        for event in ("registered", "incoming-call", "call-answered", "call-ended", "call-rejected"):
            self.sio.on(event, self._resolver(event))
        self.sio.on("ice-candidate", self._on_candidate)
        self.sio.on("call-error", self._on_error)

    def expect(self, event: str) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[event] = future
        return future

    def _resolver(self, event: str) -> Callable[[Any], Any]:
        async def handler(data: Any = None) -> None:
            future = self.waiting.pop(event, None)
            if future is None or future.done():
                self.stats.errors[f"unexpected {event}"] += 1
            else:
                future.set_result(data)

        return handler

    async def _on_candidate(self, data: Any = None) -> None:
        got = data.get("candidate", {}) if isinstance(data, dict) else {}
        if got.get("usernameFragment") != self.tag:
            self.stats.errors["ice-candidate from another call"] += 1
            return
        self.ice_seen += 1
        if self.ice_seen == self.ice:
            future = self.waiting.pop("ice", None)
            if future is not None and not future.done():
                future.set_result(None)

    async def _on_error(self, data: Any = None) -> None:
        message = data.get("message") if isinstance(data, dict) else repr(data)
        self.stats.errors[f"call-error: {message}"[:80]] += 1
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(CycleFailed("call-error"))
        self.waiting.clear()

    def reset(self, tag: str) -> None:
        for future in self.waiting.values():
            future.cancel()
        self.waiting.clear()
        self.tag, self.ice_seen = tag, 0


@dataclass
class WorkerStats:
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies: list[float] = field(default_factory=list)
    started: int = 0
    answered_in_window: int = 0
    completed: int = 0
    skipped: int = 0
    lags: list[float] = field(default_factory=list)


class Worker:
    """A share of the clients, paired caller/callee, in one process and one event loop."""

    def __init__(self, index: int, url: str, pairs: int, options: dict[str, Any]) -> None:
        self.index = index
        self.url = url
        self.n_pairs = pairs
        self.opt = options
        self.stats = WorkerStats()
        self.clients: list[Client] = []
        self.idle: collections.deque[tuple[Client, Client]] = collections.deque()
        self.offers = [offer_sdp() for _ in range(8)]
        self.answers = [answer_sdp() for _ in range(8)]
        self.cycles = 0

    async def connect_all(self) -> dict[str, Any]:
        gate = asyncio.Semaphore(self.opt["connect_concurrency"])
        self.clients = [Client(self.stats, self.opt["ice"]) for _ in range(2 * self.n_pairs)]
        started = time.monotonic()

        async def connect(number: int, client: Client) -> bool:
            async with gate:
                try:
                    await client.sio.connect(self.url, transports=["websocket"], wait_timeout=10)
                    registered = client.expect("registered")
                    await client.sio.emit("register", {"displayName": f"Bench {self.index}-{number}"})
                    client.call_id = (await asyncio.wait_for(registered, 10))["callId"]
                    return True
                except Exception as exc:
                    self.stats.errors[f"connect: {type(exc).__name__}: {exc}"[:80]] += 1
                    return False

        ok = await asyncio.gather(*(connect(n, c) for n, c in enumerate(self.clients)))
        for caller, callee, caller_ok, callee_ok in zip(self.clients[::2], self.clients[1::2], ok[::2], ok[1::2],
                                                        strict=True):
            if caller_ok and callee_ok:
                self.idle.append((caller, callee))
        return {"connected": sum(ok), "pairs": len(self.idle), "seconds": time.monotonic() - started,
                "errors": dict(self.stats.errors)}

    async def cycle(self, caller: Client, callee: Client, window_end: float) -> None:
        """One call: setup, trickle ICE both ways, hangup. Returns the pair to the idle queue."""
        self.cycles += 1
        tag = f"w{self.index}c{self.cycles}"
        timeout, ice = self.opt["op_timeout"], self.opt["ice"]
        offer = {"type": "offer", "sdp": self.offers[self.cycles % len(self.offers)]}
        answer = {"type": "answer", "sdp": self.answers[self.cycles % len(self.answers)]}
        caller.reset(tag)
        callee.reset(tag)
        stage = "incoming-call"
        ok = False
        try:
            incoming = callee.expect("incoming-call")
            answered = caller.expect("call-answered")
            started = time.monotonic()
            self.stats.started += 1
            await caller.sio.emit("call", {"targetCallId": callee.call_id, "offer": offer})
            data = await asyncio.wait_for(incoming, timeout)
            if data.get("callerCallId") != caller.call_id or data.get("offer") != offer:
                raise CycleFailed("incoming-call payload differs from the call")
            stage = "call-answered"
            caller_ice, callee_ice = caller.expect("ice"), callee.expect("ice")
            await callee.sio.emit("answer", {"targetCallId": caller.call_id, "answer": answer})
            data = await asyncio.wait_for(answered, timeout)
            done = time.monotonic()
            if data.get("answer") != answer:
                raise CycleFailed("call-answered payload differs from the answer")
            self.stats.latencies.append(done - started)
            if done <= window_end:
                self.stats.answered_in_window += 1
            stage = "ice-candidate"
            for n in range(ice):
                await caller.sio.emit("ice-candidate", {"targetCallId": callee.call_id,
                                                        "candidate": candidate(n, tag)})
                await callee.sio.emit("ice-candidate", {"targetCallId": caller.call_id,
                                                        "candidate": candidate(100 + n, tag)})
            if ice:
                await asyncio.wait_for(asyncio.gather(caller_ice, callee_ice), timeout)
            stage = "call-ended"
            ended = callee.expect("call-ended")
            await caller.sio.emit("hangup", {"targetCallId": callee.call_id})
            await asyncio.wait_for(ended, timeout)
            self.stats.completed += 1
            ok = True
        except TimeoutError:
            self.stats.errors[f"timeout waiting for {stage}"] += 1
        except CycleFailed as exc:
            self.stats.errors[f"failed at {stage}: {exc}"[:80]] += 1
        except Exception as exc:
            self.stats.errors[f"{stage}: {type(exc).__name__}: {exc}"[:80]] += 1
        if not ok:
            # End whatever is left of the call on the server, let stray events drain, reuse the pair.
            for client, target in ((caller, callee), (callee, caller)):
                with contextlib.suppress(Exception):  # a dead socket cannot hang up; the pair is retried
                    await client.sio.emit("hangup", {"targetCallId": target.call_id})
            await asyncio.sleep(1.0)
            caller.reset("")
            callee.reset("")
        self.idle.append((caller, callee))

    async def open_loop(self, rate: float, workers: int, start: float, end: float) -> None:
        """Start a cycle every ``workers / rate`` seconds (offset per worker), on schedule."""
        tasks: set[asyncio.Task[None]] = set()
        tick = 0
        while True:
            due = start + (tick * workers + self.index) / rate
            if due >= end:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.stats.lags.append(time.monotonic() - due)
            if self.idle:
                caller, callee = self.idle.popleft()
                task = asyncio.create_task(self.cycle(caller, callee, end))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            else:
                self.stats.skipped += 1
            tick += 1
        if tasks:
            await asyncio.wait(tasks)

    async def closed_loop(self, concurrency: int, start: float, end: float) -> None:
        """``concurrency`` cycles in flight, each followed at once by the next until the window ends."""

        async def runner() -> None:
            while time.monotonic() < end:
                if not self.idle:
                    await asyncio.sleep(0.01)
                    continue
                caller, callee = self.idle.popleft()
                await self.cycle(caller, callee, end)

        delay = start - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await asyncio.gather(*(runner() for _ in range(concurrency)))
        if not concurrency:
            await asyncio.sleep(max(0.0, end - time.monotonic()))

    async def phase(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.stats = WorkerStats()
        for client in self.clients:
            client.stats = self.stats
        start, end = spec["start"], spec["start"] + spec["duration"]
        if spec["mode"] == "open":
            await self.open_loop(spec["rate"], spec["workers"], start, end)
        else:
            await self.closed_loop(spec["concurrency"], start, end)
        s = self.stats
        return {"latencies": s.latencies, "started": s.started, "answered_in_window": s.answered_in_window,
                "completed": s.completed, "skipped": s.skipped, "errors": dict(s.errors),
                "lag_max": max(s.lags, default=0.0), "lag_p99": percentile(sorted(s.lags), 99)}

    async def close(self) -> None:
        gate = asyncio.Semaphore(self.opt["connect_concurrency"])

        async def leave(client: Client) -> None:
            async with gate:
                with contextlib.suppress(Exception):  # leaving anyway
                    await asyncio.wait_for(client.sio.disconnect(), 5)

        await asyncio.gather(*(leave(c) for c in self.clients))

    async def serve(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        conn.send(("ready", await self.connect_all()))
        while True:
            command, spec = await loop.run_in_executor(None, conn.recv)
            if command == "phase":
                conn.send(("result", await self.phase(spec)))
            else:
                await self.close()
                conn.send(("closed", None))
                return


def worker_main(index: int, url: str, pairs: int, options: dict[str, Any], conn: Connection) -> None:
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if options["uvloop"]:
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            pass
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(Worker(index, url, pairs, options).serve(conn))
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass


# -- the coordinator -------------------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 for an empty one)."""
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[min(len(ordered), int(rank)) - 1]


@dataclass
class Phase:
    label: str
    mode: str  # open | closed
    rate: float = 0.0
    concurrency: int = 0


def parse_rates(text: str, concurrency: int) -> list[Phase]:
    phases = []
    for part in text.split(","):
        part = part.strip().lower().removesuffix("/s")
        if part == "max" or part.startswith("max@"):
            n = int(part[4:]) if part.startswith("max@") else concurrency
            if n < 1:
                raise argparse.ArgumentTypeError(f"in-flight count must be >= 1: {part}")
            phases.append(Phase(f"max ({n} in flight)", "closed", concurrency=n))
        else:
            rate = float(part)
            if rate <= 0:
                raise argparse.ArgumentTypeError(f"rate must be > 0: {part}")
            phases.append(Phase(f"{rate:g}/s", "open", rate=rate))
    return phases


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("hard timeout reached")
        return left


def receive(conns: list[Connection], deadline: Deadline, expect: str,
            tick: Callable[[], None] | None = None) -> list[Any]:
    """One message from every worker, calling ``tick`` about every 0.2 s while waiting."""
    results: list[Any] = [None] * len(conns)
    pending = set(range(len(conns)))
    while pending:
        for i in list(pending):
            if conns[i].poll(min(0.2 / len(pending), deadline.left())):
                kind, payload = conns[i].recv()
                if kind != expect:
                    raise RuntimeError(f"worker {i} sent {kind}, expected {expect}")
                results[i] = payload
                pending.discard(i)
        if tick:
            tick()
    return results


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


TARGET_NAMES = {"opencall": "OpenCall", "floor": "stack floor", "stock": "stock python-socketio",
                "lean": "stack floor, Sanic recv without its task"}
ANCHOR_FLAGS = {"floor": [], "stock": ["--stock"], "lean": ["--lean-recv"]}


class Target:
    """One server under test with its own client workers, connected and registered."""

    def __init__(self, kind: str, server: Server, args: argparse.Namespace) -> None:
        self.kind, self.name, self.server, self.args = kind, TARGET_NAMES[kind], server, args
        self.pairs = args.clients // 2
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.conns: list[Connection] = []
        self.shares = [self.pairs // args.workers + (1 if i < self.pairs % args.workers else 0)
                       for i in range(args.workers)]
        self.report: dict[str, Any] = {"target": kind, "name": self.name, "clients": 0, "phases": []}
        self.stats: ProcStats | None = None

    def start(self, deadline: Deadline) -> None:
        self.server.start()
        self.stats = ProcStats(self.server.pid)
        print(f"[{self.name}] server pid {self.server.pid} at {self.server.url}", flush=True)
        self.report["rss_start_kb"] = self.stats.rss_kb()[0]
        options = {"ice": self.args.ice, "op_timeout": self.args.op_timeout, "uvloop": not self.args.no_uvloop,
                   "connect_concurrency": self.args.connect_concurrency}
        ctx = multiprocessing.get_context("spawn")
        for i, share in enumerate(self.shares):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(i, self.server.url, share, options, child), daemon=True)
            proc.start()
            self.procs.append(proc)
            self.conns.append(parent)
        ready = receive(self.conns, deadline, "ready")
        connected = sum(r["connected"] for r in ready)
        self.report["clients"] = connected
        self.report["connect_seconds"] = max(r["seconds"] for r in ready)
        errors: collections.Counter[str] = collections.Counter()
        for r in ready:
            errors.update(r["errors"])
        self.report["connect_errors"] = dict(errors)
        time.sleep(1.0)
        self.report["rss_connected_kb"] = self.stats.rss_kb()[0]
        print(f"[{self.name}] {connected}/{2 * self.pairs} clients connected and registered in "
              f"{self.report['connect_seconds']:.1f} s{'' if not errors else f' (errors: {dict(errors)})'}; "
              f"server RSS {mib(self.report['rss_connected_kb'])} MiB", flush=True)
        if connected < self.args.clients * 0.99:
            raise RuntimeError(f"{self.name}: only {connected} clients connected")

    def run_phase(self, phase: Phase, deadline: Deadline, profile: str | None) -> None:
        assert self.stats is not None
        args = self.args
        profiler = start_profiler(profile, self.server.pid, args.duration) if profile else None
        start = time.monotonic() + 0.5
        spec = {"mode": phase.mode, "rate": phase.rate, "workers": args.workers, "start": start,
                "duration": args.duration}
        in_flight = min(phase.concurrency, self.pairs)
        for i, conn in enumerate(self.conns):
            share = in_flight // args.workers + (1 if i < in_flight % args.workers else 0)
            conn.send(("phase", {**spec, "concurrency": min(share, self.shares[i])}))
        while time.monotonic() < start:
            time.sleep(0.01)
        load = [ProcStats(os.getpid())] + [ProcStats(p.pid) for p in self.procs if p.pid is not None]
        monitor = PhaseMonitor(self.stats, load, start + args.duration)
        results = receive(self.conns, deadline, "result", tick=monitor.sample)
        monitor.close_window()
        if profiler is not None:
            profiler.wait(timeout=max(1.0, deadline.left()))
        self.report["phases"].append(summarize(phase, args, results, monitor))
        print(f"[{self.name}] ", end="")
        print_phase(self.report["phases"][-1], flush=True)

    def finish(self, deadline: Deadline) -> None:
        assert self.stats is not None
        rss_now, rss_hwm = self.stats.rss_kb()
        self.report["rss_end_kb"], self.report["rss_peak_kb"] = rss_now, rss_hwm
        self.report["server_cpu_total"] = sum(self.stats.cpu_seconds())
        for conn in self.conns:
            conn.send(("close", None))
        receive(self.conns, deadline, "closed")

    def stop(self) -> None:
        for worker in self.procs:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)
        self.server.stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start OpenCall and the anchors, then run each phase on each of them in turn (same machine, same minutes)."""
    deadline = Deadline(args.timeout)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    concurrency = min(args.concurrency or args.clients // 2, args.clients // 2)
    phases = parse_rates(args.rates, concurrency)
    workdir = Path(tempfile.mkdtemp(prefix="opencall-bench-"))
    report: dict[str, Any] = {"command": " ".join([Path(sys.executable).as_posix(), *sys.argv]), "targets": []}
    before = machine_busy()
    time.sleep(2.0)
    after = machine_busy()
    report["background_cpus"] = (after[0] - before[0]) / max(1.0, after[1] - before[1]) * (os.cpu_count() or 1)
    print(f"background load before the run: {report['background_cpus']:.2f} of {os.cpu_count()} CPUs busy",
          flush=True)
    targets: list[Target] = []
    for kind in ["opencall", *args.anchors]:
        folder = workdir / kind
        folder.mkdir()
        server = Server.opencall(folder, args.log_level) if kind == "opencall" else Server.anchor(folder, kind)
        targets.append(Target(kind, server, args))
    print(f"work dir {workdir}", flush=True)
    try:
        for target in targets:
            target.start(deadline)
        for number, phase in enumerate(phases):
            for target in targets:
                if number or target is not targets[0]:
                    time.sleep(args.pause)
                profile = args.py_spy if number == 0 and target.kind == "opencall" else None
                target.run_phase(phase, deadline, profile)
        for target in targets:
            target.finish(deadline)
            report["targets"].append(target.report)
        return report
    finally:
        for target in targets:
            target.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def start_profiler(path: str, pid: int, seconds: float) -> subprocess.Popen[bytes]:
    """``py-spy record`` on the server for one phase: a flame graph (.svg) or collapsed stacks (other)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    fmt = "flamegraph" if path.endswith(".svg") else "raw"
    return subprocess.Popen(  # noqa: S603 - py-spy from this venv, our own server pid
        [exe, "record", "--pid", str(pid), "--output", path, "--format", fmt, "--rate", "200",
         "--duration", str(int(seconds + 1))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def summarize(phase: Phase, args: argparse.Namespace, results: list[dict[str, Any]],
              monitor: PhaseMonitor) -> dict[str, Any]:
    latencies = sorted(x for r in results for x in r["latencies"])
    errors: collections.Counter[str] = collections.Counter()
    for r in results:
        errors.update(r["errors"])
    skipped = sum(r["skipped"] for r in results)
    if skipped:
        errors["no idle pair at a scheduled start"] += skipped
    (busy0, total0), (busy1, total1) = monitor.busy
    machine = (busy1 - busy0) / max(1.0, total1 - total0) * (os.cpu_count() or 1)
    server_user = monitor.cpu[1][0] - monitor.cpu[0][0]
    server_sys = monitor.cpu[1][1] - monitor.cpu[0][1]
    server_cpu = server_user + server_sys
    return {
        "phase": phase.label,
        "target_rate": phase.rate or None,
        "duration": args.duration,
        "started": sum(r["started"] for r in results),
        "setups_per_s": sum(r["answered_in_window"] for r in results) / args.duration,
        "completed": sum(r["completed"] for r in results),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p90_ms": percentile(latencies, 90) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": (latencies[-1] if latencies else 0.0) * 1000,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "server_cpu_s": server_cpu,
        "server_user_s": server_user,
        "server_sys_s": server_sys,
        "server_cpu_pct": server_cpu / args.duration * 100,
        "clients_cpu_s": monitor.load_cpu[1] - monitor.load_cpu[0],
        "machine_cpus_busy": machine,
        "other_cpus_busy": max(0.0, machine - (server_cpu + monitor.load_cpu[1] - monitor.load_cpu[0]) / args.duration),
        "rss_peak_kb": monitor.rss_peak,
        "schedule_lag_p99_ms": max(r["lag_p99"] for r in results) * 1000,
    }


def print_phase(p: dict[str, Any], flush: bool = False) -> None:
    print(f"[{p['phase']}] {p['setups_per_s']:.1f} setups/s ({p['completed']} cycles completed of "
          f"{p['started']} started), setup p50 {p['p50_ms']:.1f} ms p90 {p['p90_ms']:.1f} ms "
          f"p99 {p['p99_ms']:.1f} ms max {p['max_ms']:.1f} ms, errors {p['errors']}"
          f"{' ' + json.dumps(p['error_kinds']) if p['errors'] else ''}; server CPU {p['server_cpu_s']:.1f} s "
          f"({p['server_cpu_pct']:.0f}% of a core; user {p['server_user_s']:.1f} s, system {p['server_sys_s']:.1f} s), "
          f"clients CPU {p['clients_cpu_s']:.1f} s, machine "
          f"{p['machine_cpus_busy']:.2f}/{os.cpu_count()} CPUs busy ({p['other_cpus_busy']:.2f} by other processes), "
          f"server RSS peak {mib(p['rss_peak_kb'])} MiB, "
          f"client schedule lag p99 {p['schedule_lag_p99_ms']:.1f} ms", flush=flush)


def markdown(report: dict[str, Any]) -> str:
    out = []
    for target in report["targets"]:
        out += [f"{target['name']}:", "",
                "| Load | Setups/s | p50 setup | p99 setup | max | Cycles done | Errors / timeouts | Server CPU "
                "| CPU per cycle | Server RSS peak |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for p in target["phases"]:
            out.append(
                f"| {p['phase']} | {p['setups_per_s']:.0f} | {p['p50_ms']:.1f} ms | {p['p99_ms']:.1f} ms "
                f"| {p['max_ms']:.0f} ms | {p['completed']} | {p['errors']} | {p['server_cpu_s']:.1f} s "
                f"({p['server_cpu_pct']:.0f}% of a core) | {cpu_per_cycle(p)} | {mib(p['rss_peak_kb'])} MiB |")
        out += ["", f"Server RSS: {mib(target['rss_start_kb'])} MiB at start, {mib(target['rss_connected_kb'])} MiB "
                f"with {target['clients']} clients connected, peak (VmHWM) {mib(target['rss_peak_kb'])} MiB, "
                f"{mib(target['rss_end_kb'])} MiB at the end. Server CPU over the whole run: "
                f"{target['server_cpu_total']:.1f} s.", ""]
    if len(report["targets"]) > 1:
        ours, anchors = report["targets"][0], report["targets"][1:]
        out += ["Server CPU per completed cycle, OpenCall / anchor, phase by phase:", "",
                "| Load | " + " | ".join(f"/ {a['name']}" for a in anchors) + " |",
                "|---|" + "---:|" * len(anchors)]
        for number, p in enumerate(ours["phases"]):
            cells = []
            for anchor in anchors:
                q = anchor["phases"][number]
                cells.append(f"{per_cycle(p) / per_cycle(q):.2f}" if per_cycle(q) else "-")
            out.append(f"| {p['phase']} | " + " | ".join(cells) + " |")
        out.append("")
    out.append(f"Background load (other processes) before the run: {report['background_cpus']:.2f} of "
               f"{os.cpu_count()} CPUs.")
    return "\n".join(out)


def per_cycle(phase: dict[str, Any]) -> float:
    """Server CPU seconds per completed cycle in a phase (0 if none completed)."""
    return float(phase["server_cpu_s"] / phase["completed"]) if phase["completed"] else 0.0


def cpu_per_cycle(phase: dict[str, Any]) -> str:
    return f"{per_cycle(phase) * 1000:.2f} ms" if phase["completed"] else "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark OpenCall's Socket.IO signaling: many connected clients, concurrent call setups "
                    "(call -> incoming-call -> answer -> call-answered, ICE candidates both ways, hangup) "
                    "against the real server on 127.0.0.1.",
    )
    parser.add_argument("--clients", type=int, default=1000, help="connected, registered clients (default 1000); "
                        "they form clients/2 caller-callee pairs")
    parser.add_argument("--rates", default="200,max",
                        help="comma-separated phases: a target rate in setups/s (open loop), or 'max' / "
                             "'max@N' (closed loop with --concurrency / N cycles in flight); default '200,max'")
    parser.add_argument("--concurrency", type=int, default=20,
                        help="cycles in flight in a 'max' phase (default 20; 0: every pair, clients/2)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase (default 20)")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between phases (default 3)")
    parser.add_argument("--ice", type=int, default=10, help="ICE candidates each way per call (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--op-timeout", type=float, default=5.0,
                        help="seconds to wait for each expected event before counting a timeout (default 5)")
    parser.add_argument("--connect-concurrency", type=int, default=50,
                        help="connections opened at once per worker (default 50)")
    parser.add_argument("--timeout", type=float, default=900.0, help="hard limit for the whole run (default 900 s)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                        help="the server's log_level (default info, as shipped)")
    parser.add_argument("--no-uvloop", action="store_true", help="plain asyncio loops in the client workers")
    parser.add_argument("--py-spy", metavar="FILE",
                        help="record the server with py-spy during the first phase (.svg: flame graph, "
                             "otherwise collapsed stacks)")
    parser.add_argument("--anchors", default="",
                        help="comma-separated anchors run side by side with OpenCall, phase by phase: 'floor' "
                             "(bench/stack_floor.py: python-socketio on Sanic with OpenCall's settings, no "
                             "OpenCall code), 'stock' (the same with python-socketio's defaults), 'lean' (the "
                             "floor with Sanic's websocket recv patched to skip its per-message task)")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the server's work dir (config, logs, db)")
    args = parser.parse_args(argv)
    if args.clients < 2 or args.workers < 1 or args.duration <= 0 or args.ice < 0:
        parser.error("need --clients >= 2, --workers >= 1, --duration > 0, --ice >= 0")
    args.anchors = [a.strip() for a in args.anchors.split(",") if a.strip()]
    if any(a not in ANCHOR_FLAGS for a in args.anchors) or len(set(args.anchors)) < len(args.anchors):
        parser.error(f"--anchors: any of {', '.join(ANCHOR_FLAGS)}, each once")
    try:
        parse_rates(args.rates, 1)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        parser.error(f"--rates: {exc}")
    try:
        report = run(args)
    except (RuntimeError, TimeoutError) as exc:
        print(f"signaling bench failed: {exc}", file=sys.stderr)
        return 1
    print()
    print(markdown(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
