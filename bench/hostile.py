"""Benchmark (not a test): the real ``opencall serve`` under hostile traffic, one attack at a time (issue 12).

The server runs as a subprocess on 127.0.0.1 (HTTPS with its local CA, STUN/TURN on UDP, TCP and TLS, its own
temporary data dir, the config as shipped but for loopback addresses, a fixed TURN secret and ``metrics.allow:
[127.0.0.1/32]``). The operator is 127.0.0.1; attackers are other loopback addresses (127.1.x.y), so the caps per
client address and the operator's reserve act as they would on a LAN. For each attack:

- a prober process (not niced) sends ``GET /healthz`` every ~20 ms over one kept-alive HTTPS connection from
  the operator's address, and once a second a fresh HTTPS connection from a stranger's address (127.2.0.1);
- the server's RSS (``VmRSS``, every 0.2 s), its CPU time and its ``/metrics`` counters are read;
- afterwards a fresh STUN Binding (UDP, from 127.0.0.1) and a fresh HTTPS request (a new connection from a
  stranger's address, 127.2.0.2) must be answered (each retried for up to 5 s).

Attacks (all against 127.0.0.1, bounded in count and time, every socket closed at the end):

- ``attribute-flood``: UDP Binding requests of ~64 KB carrying ~16,000 zero-length attributes of distinct
  unknown comprehension-required types, from several addresses and ports, a few hundred a second;
- ``permission-flood``: UDP allocations with valid credentials (minted with ``turn.credentials.make_credentials``
  and the server's secret) sending CreatePermission requests with 5,000 XOR-PEER-ADDRESS (~60 KB) and with 60
  (as many as the decoder reads), signed;
- ``slow-connections``: 2,000 TCP and TLS connections to the relay from many addresses, each sending a partial
  STUN frame and a byte every 2 s, reconnecting when closed;
- ``pipelined-relay``: TCP connections to the relay that hold an allocation and pipeline Binding requests
  without ever reading the replies; ``pipelined-https``: HTTPS connections that pipeline ``GET /healthz``
  without reading;
- ``slowloris``: HTTPS connections that send a request's headers a line every 2 s and never finish, and TCP
  connections to 8443 that never finish their TLS ClientHello, reconnecting when closed;
- ``credential-flood``: Allocate requests signed with a wrong password, from several addresses.

Before each attack an ``idle`` phase (``--baseline`` seconds, nothing sent) measures the same figures with no
attack, and the prober records how late its own sleeps end: on a busy machine those show what is the machine's
doing rather than the server's.

Targets, each attack: ``/healthz`` p99 < 50 ms and max < 250 ms during the attack, server RSS growth < 100 MB,
the fresh STUN Binding and HTTPS request answered afterwards. The attacker runs niced (``--attacker-nice``) so
that, on a small machine, it does not starve the prober: on a real network the attacker's CPU is elsewhere.

    python bench/hostile.py                                   # every attack, 10 s each
    python bench/hostile.py --attacks slowloris:25,pipelined-relay --seconds 20 --json hostile.json
    python bench/hostile.py --quick                           # 3 s each, a tenth of the counts

The server is the ``opencall`` installed in this interpreter's environment, as in the tests: reinstall it after
editing opencall/ or turn/. Linux only (loopback addresses beyond 127.0.0.1, /proc). Everything binds to
127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import re
import resource
import secrets
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx
import yaml
from aioice.stun import Class, message_integrity

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from turn import stun
from turn.credentials import make_credentials

SECRET = "hostile-bench-secret"  # noqa: S105 - a throwaway secret for a loopback benchmark
REALM = "opencall"
OPERATOR = "127.0.0.1"
STRANGER_PROBE = "127.2.0.1"  # the prober's fresh connections during an attack
STRANGER_CHECK = "127.2.0.2"  # the fresh HTTPS request after an attack
PROBE_INTERVAL = 0.020
FRESH_INTERVAL = 1.0
PROBE_TIMEOUT = 2.0
CHECK_WITHIN = 5.0
SETTLE = 3.0  # seconds between attacks
RSS_INTERVAL = 0.2
READY_TIMEOUT = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The targets of issue 12, point 6.
P99_TARGET_MS = 50.0
MAX_TARGET_MS = 250.0
RSS_TARGET_MB = 100.0

COOKIE = 0x2112A442
ALLOCATE = 0x0003
CREATE_PERMISSION = 0x0008
BINDING = 0x0001
XOR_PEER_ADDRESS = 0x0012
STREAM_FRAME = 1000  # the length a partial STUN frame announces (under turn.max_stream_frame)


# -- STUN messages, built by hand where aioice cannot (many attributes of one type, unknown types) ----------


def attribute(kind: int, value: bytes) -> bytes:
    """One STUN attribute, padded to 4 bytes (RFC 8489 §14)."""
    return struct.pack("!HH", kind, len(value)) + value + bytes(-len(value) % 4)


def message(kind: int, transaction_id: bytes, attributes: list[bytes]) -> bytes:
    """A STUN message of type ``kind`` from encoded attributes."""
    body = b"".join(attributes)
    return struct.pack("!HHI12s", kind, len(body), COOKIE, transaction_id) + body


def signed(data: bytes, key: bytes) -> bytes:
    """``data`` with MESSAGE-INTEGRITY appended (RFC 8489 §14.5: the length covers it)."""
    length = len(data) - 20 + 24
    data = data[:2] + struct.pack("!H", length) + data[4:]
    return data + attribute(0x0008, message_integrity(data, key))


def xor_peer(ip: str, port: int) -> bytes:
    """An IPv4 XOR-PEER-ADDRESS attribute (RFC 8489 §14.2)."""
    address = struct.unpack("!I", socket.inet_aton(ip))[0] ^ COOKIE
    return attribute(XOR_PEER_ADDRESS, struct.pack("!BBHI", 0, 1, port ^ (COOKIE >> 16), address))


def attribute_flood(count: int = 16_000) -> bytes:
    """The Binding request of issue 12: ``count`` zero-length attributes of distinct unknown
    comprehension-required types (~64 KB)."""
    return message(BINDING, secrets.token_bytes(12), [attribute(0x4000 + i % 0x3FFF, b"") for i in range(count)])


def long_term_key(username: str, password: str) -> bytes:
    """The long-term credential key (RFC 8489 §9.2.2)."""
    return hashlib.md5(f"{username}:{REALM}:{password}".encode(), usedforsecurity=False).digest()


def auth_attributes(username: str, nonce: bytes) -> list[bytes]:
    return [attribute(0x0006, username.encode()), attribute(0x0014, REALM.encode()), attribute(0x0015, nonce)]


def allocate_request(username: str | None = None, nonce: bytes | None = None, key: bytes | None = None) -> bytes:
    """An Allocate request for a UDP relay; signed when ``key`` is given."""
    attributes = [attribute(0x0019, struct.pack("!B3x", stun.UDP))]
    if username is not None and nonce is not None:
        attributes += auth_attributes(username, nonce)
    data = message(ALLOCATE, secrets.token_bytes(12), attributes)
    return signed(data, key) if key is not None else data


def permission_request(peer_attributes: bytes, username: str, nonce: bytes, key: bytes) -> bytes:
    """A signed CreatePermission carrying ``peer_attributes`` (encoded XOR-PEER-ADDRESS attributes)."""
    attributes = [peer_attributes, *auth_attributes(username, nonce)]
    return signed(message(CREATE_PERMISSION, secrets.token_bytes(12), attributes), key)


def peers(count: int) -> list[tuple[str, int]]:
    """``count`` random peer addresses in 127.3.0.0/16 (never sent to: permissions carry no data)."""
    return [(f"127.3.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}", 1024 + secrets.randbelow(60000))
            for _ in range(count)]


def binding_request() -> bytes:
    return message(BINDING, secrets.token_bytes(12), [])


def reply_code(data: bytes) -> int:
    """The class of a STUN reply as a number: 200 for success, the error code otherwise, 0 if undecodable."""
    try:
        decoded = stun.decode(data).message
    except ValueError:
        return 0
    if decoded.message_class == Class.RESPONSE:
        return 200
    error = decoded.attributes.get("ERROR-CODE")
    return int(error[0]) if error else 0


def nonce_of(data: bytes) -> bytes:
    nonce = stun.decode(data).message.attributes.get("NONCE")
    if not isinstance(nonce, bytes):
        raise RuntimeError("the relay's 401 carries no NONCE")
    return nonce


# -- figures ---------------------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered) - 1e-9)))
    return ordered[rank - 1]


@dataclass
class Outcome:
    """What one attack did to the server."""

    attack: str
    seconds: float
    probes: int = 0
    probe_errors: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    fresh_ok: int = 0
    fresh_total: int = 0
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_after_mb: float = 0.0
    stun_after_ms: float | None = None
    https_after_ms: float | None = None
    prober_late_p99_ms: float = float("nan")  # how late the prober's own sleeps ended: the machine's share
    server_cpu_s: float = 0.0  # user + system CPU of the server during the attack
    load_average: float = 0.0  # the machine's 1-minute load average at the attack's end
    attacker: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_peak_mb - self.rss_before_mb

    def missed(self) -> list[str]:
        """The targets this attack missed, in words; empty when it met them all."""
        misses = []
        if not self.probes or not self.p99_ms < P99_TARGET_MS:
            misses.append(f"/healthz p99 {self.p99_ms:.1f} ms >= {P99_TARGET_MS:.0f} ms")
        if not self.probes or not self.max_ms < MAX_TARGET_MS:
            misses.append(f"/healthz max {self.max_ms:.1f} ms >= {MAX_TARGET_MS:.0f} ms")
        if self.probe_errors:
            misses.append(f"{self.probe_errors} /healthz requests failed")
        if not self.rss_growth_mb < RSS_TARGET_MB:
            misses.append(f"RSS grew {self.rss_growth_mb:.1f} MB >= {RSS_TARGET_MB:.0f} MB")
        if self.stun_after_ms is None:
            misses.append("no answer to a fresh STUN Binding afterwards")
        if self.https_after_ms is None:
            misses.append("no answer to a fresh HTTPS request afterwards")
        return misses


def summarise(outcome: Outcome, samples: list[tuple[float, float, bool, bool]], late: list[tuple[float, float]],
              start: float, end: float) -> None:
    """Fill ``outcome``'s latency figures from the prober's (time, seconds, ok, fresh) samples and its (time,
    lateness) in [start, end]."""
    outcome.prober_late_p99_ms = percentile([s[1] * 1000 for s in late if start <= s[0] <= end], 0.99)
    window = [s for s in samples if start <= s[0] <= end]
    kept = [s for s in window if not s[3]]
    fresh = [s for s in window if s[3]]
    latencies = [s[1] * 1000 for s in kept]
    outcome.probes = len(kept)
    outcome.probe_errors = sum(1 for s in kept if not s[2])
    outcome.p50_ms = percentile(latencies, 0.50)
    outcome.p99_ms = percentile(latencies, 0.99)
    outcome.max_ms = max(latencies, default=float("nan"))
    outcome.fresh_total = len(fresh)
    outcome.fresh_ok = sum(1 for s in fresh if s[2])


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| attack | s | /healthz n | p50 ms | p99 ms | max ms | failed | prober late p99 ms | server CPU s "
        "| fresh stranger HTTPS ok | RSS before MB | RSS peak MB | growth MB | STUN after ms | HTTPS after ms "
        "| targets |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for o in outcomes:
        def after(value: float | None) -> str:
            return "none" if value is None else f"{value:.0f}"
        verdict = "met" if not o.missed() else "MISSED: " + "; ".join(o.missed())
        lines.append(
            f"| {o.attack} | {o.seconds:.0f} | {o.probes} | {o.p50_ms:.1f} | {o.p99_ms:.1f} | {o.max_ms:.1f} | "
            f"{o.probe_errors} | {o.prober_late_p99_ms:.1f} | {o.server_cpu_s:.1f} | {o.fresh_ok}/{o.fresh_total} | "
            f"{o.rss_before_mb:.1f} | {o.rss_peak_mb:.1f} | "
            f"{o.rss_growth_mb:.1f} | {after(o.stun_after_ms)} | {after(o.https_after_ms)} | {verdict} |")
    return "\n".join(lines)


METRIC_LINE = re.compile(r"^((?:opencall_turn|opencall_http)_[a-z_]+(?:\{[^}]*\})?) ([-+0-9.eE]+)$")


def counters(text: str) -> dict[str, float]:
    """The relay's and the HTTPS server's figures in a /metrics text."""
    out = {}
    for line in text.splitlines():
        match = METRIC_LINE.match(line)
        if match:
            out[match.group(1)] = float(match.group(2))
    return out


def changed(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The figures that moved between two /metrics readings (gauges: the value after)."""
    out = {}
    for name, value in after.items():
        delta = value - before.get(name, 0.0)
        if delta:
            out[name] = value if name.endswith("_connections") else delta  # the two gauges: the value now
    return out


# -- the server ------------------------------------------------------------------------------------------------


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((OPERATOR, 0))
        port: int = probe.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 for TCP and UDP both."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(socket.SOCK_STREAM)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind((OPERATOR, port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


def server_config(peer_policy: str) -> dict[str, Any]:
    http, turn, tls = free_ports(3)
    return {
        "server": {"host": OPERATOR, "port": http, "tls": "auto"},
        "data_dir": "data",
        "log_file": "logs/opencall.log",
        "turn": {"listen": OPERATOR, "advertise": OPERATOR, "port": turn, "tls_port": tls, "secret": SECRET,
                 "realm": REALM, "peer_policy": peer_policy, "allowed_peers": ["127.0.0.0/8"]},
        "metrics": {"allow": [f"{OPERATOR}/32"]},
    }


@dataclass
class Target:
    """The server under attack: its process and ports."""

    proc: subprocess.Popen[bytes]
    config: dict[str, Any]
    workdir: Path

    @property
    def https(self) -> str:
        return f"https://{OPERATOR}:{self.config['server']['port']}"

    @property
    def http_port(self) -> int:
        return int(self.config["server"]["port"])

    @property
    def turn_port(self) -> int:
        return int(self.config["turn"]["port"])

    @property
    def tls_port(self) -> int:
        return int(self.config["turn"]["tls_port"])

    def status(self, field_name: str) -> float:
        """A ``/proc/<pid>/status`` field in kB, as MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"{field_name} not in /proc/{self.proc.pid}/status")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server so far (``/proc/<pid>/stat`` fields 14 and 15)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def metrics(self) -> dict[str, float]:
        with httpx.Client(verify=False, timeout=10) as client:  # noqa: S501 - the box's own local CA
            return counters(client.get(f"{self.https}/metrics").text)


def start_server(workdir: Path, peer_policy: str) -> Target:
    config = server_config(peer_policy)
    path = workdir / "opencall.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("OPENCALL_CONFIG", None)
    output = (workdir / "server-output.txt").open("wb")
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "opencall", "serve", "--config", str(path)], cwd=workdir, stdout=output,
        stderr=output, env=env,
    )
    target = Target(proc, config, workdir)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}: {(workdir / 'server-output.txt').read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{target.https}/healthz", verify=False, timeout=1).status_code == 200:  # noqa: S501
                return target
        time.sleep(0.2)
    stop_server(target)
    raise RuntimeError(f"server not ready in {READY_TIMEOUT:.0f} s")


def stop_server(target: Target) -> None:
    target.proc.terminate()
    try:
        target.proc.wait(15)
    except subprocess.TimeoutExpired:
        target.proc.kill()
        target.proc.wait()


# -- the prober (its own process, not niced) -------------------------------------------------------------------


def probe(base: str, stop: Event, out: Connection) -> None:
    """``GET /healthz`` every PROBE_INTERVAL on a kept-alive connection from the operator, and every
    FRESH_INTERVAL on a fresh connection from a stranger; sends back (time, seconds, ok, fresh) samples, and
    (time, seconds) of how late the prober itself woke up from each sleep: when the machine is short of CPU
    the prober is delayed too, whatever the server does."""
    samples: list[tuple[float, float, bool, bool]] = []
    late: list[tuple[float, float]] = []
    operator = httpx.Client(base_url=base, verify=False, timeout=PROBE_TIMEOUT,  # noqa: S501 - local CA
                            transport=httpx.HTTPTransport(local_address=OPERATOR, verify=False))
    next_fresh = time.monotonic()
    while not stop.is_set():
        started = time.monotonic()
        samples.append((started, *_get(operator), False))
        if started >= next_fresh:
            next_fresh = started + FRESH_INTERVAL
            transport = httpx.HTTPTransport(local_address=STRANGER_PROBE, verify=False)
            with httpx.Client(base_url=base, timeout=PROBE_TIMEOUT, transport=transport) as fresh:
                samples.append((time.monotonic(), *_get(fresh), True))
        wake = started + PROBE_INTERVAL
        if wake > time.monotonic():
            time.sleep(wake - time.monotonic())
            late.append((wake, max(0.0, time.monotonic() - wake)))
    operator.close()
    out.send((samples, late))
    out.close()


def _get(client: httpx.Client) -> tuple[float, bool]:
    started = time.perf_counter()
    try:
        ok = client.get("/healthz").status_code == 200
    except httpx.HTTPError:
        ok = False
    return time.perf_counter() - started, ok


# -- the attacks -----------------------------------------------------------------------------------------------


def attacker_address(index: int) -> str:
    """The ``index``-th attacking address, in 127.1.0.0/16 (never the operator's)."""
    return f"127.1.{index // 250}.{index % 250 + 1}"


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the box's local CA; an attacker does not care either
    return context


class Attack:
    """The shared means of the attacks: the target, the deadline, the sockets to close, the tally."""

    def __init__(self, target: Target, seconds: float, scale: float) -> None:
        self.target = target
        self.seconds = seconds
        self.scale = scale
        self.deadline = time.monotonic() + seconds
        self.tally: Counter[str] = Counter()
        self.sockets: list[socket.socket] = []
        self.writers: list[asyncio.StreamWriter] = []

    def count(self, number: int) -> int:
        """``number`` scaled (``--quick``), at least 1 unless it is 0."""
        return max(1, int(number * self.scale)) if number else 0

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def udp(self, source: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sockets.append(sock)
        sock.bind((source, 0))
        sock.setblocking(False)
        return sock

    def close(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        for sock in self.sockets:
            sock.close()

    async def paced(self, rate: float, send: Callable[[int], None]) -> None:
        """Call ``send(i)`` ``rate`` times a second, in 10 ms batches, until the deadline."""
        started, sent = time.monotonic(), 0
        while (now := time.monotonic()) < self.deadline:
            due = int((now - started) * rate)
            while sent < due:
                try:
                    send(sent)
                    self.tally["sent"] += 1
                except BlockingIOError:
                    self.tally["send_would_block"] += 1
                sent += 1
            await asyncio.sleep(0.01)

    async def drain_udp(self, sock: socket.socket) -> None:
        """Read and classify the replies on ``sock`` until the deadline (and a little after)."""
        loop = asyncio.get_running_loop()
        while self.left() > -0.5:
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, 65536), timeout=max(0.1, self.left() + 0.5))
            except (TimeoutError, OSError):
                return
            self.tally[f"reply_{reply_code(data)}"] += 1


async def udp_exchange(sock: socket.socket, request: bytes, port: int) -> bytes:
    """One request and its reply over UDP (retried once a second, 5 tries)."""
    loop = asyncio.get_running_loop()
    for _ in range(5):
        await loop.sock_sendto(sock, request, (OPERATOR, port))
        try:
            return await asyncio.wait_for(loop.sock_recv(sock, 65536), 1.0)
        except TimeoutError:
            continue
    raise RuntimeError("the relay did not answer")


async def udp_allocation(attack: Attack, source: str, user: str) -> tuple[socket.socket, str, bytes, bytes]:
    """A UDP allocation from ``source`` with valid credentials: (socket, username, nonce, key)."""
    credentials = make_credentials(SECRET, user, 3600)
    key = long_term_key(credentials.username, credentials.credential)
    sock = attack.udp(source)
    nonce = nonce_of(await udp_exchange(sock, allocate_request(), attack.target.turn_port))
    reply = await udp_exchange(sock, allocate_request(credentials.username, nonce, key), attack.target.turn_port)
    if reply_code(reply) != 200:
        raise RuntimeError(f"allocation refused: {reply_code(reply)}")
    return sock, credentials.username, nonce, key


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(20)
    return header + await reader.readexactly(struct.unpack("!H", header[2:4])[0])


async def tcp_allocation(attack: Attack, source: str, user: str) -> tuple[asyncio.StreamReader,
                                                                            asyncio.StreamWriter]:
    """A TCP connection to the relay from ``source`` that holds an allocation (RFC 8656 §3.1)."""
    credentials = make_credentials(SECRET, user, 3600)
    key = long_term_key(credentials.username, credentials.credential)
    reader, writer = await asyncio.open_connection(OPERATOR, attack.target.turn_port, local_addr=(source, 0))
    attack.writers.append(writer)
    writer.write(allocate_request())
    nonce = nonce_of(await asyncio.wait_for(read_frame(reader), 5))
    writer.write(allocate_request(credentials.username, nonce, key))
    code = reply_code(await asyncio.wait_for(read_frame(reader), 5))
    if code != 200:
        raise RuntimeError(f"allocation refused: {code}")
    return reader, writer


async def attribute_flood_attack(attack: Attack, args: argparse.Namespace) -> None:
    """~64 KB Bindings of 16,000 unknown comprehension-required attributes, from several sources and ports."""
    sockets = [attack.udp(attacker_address(a)) for a in range(args.flood_sources) for _ in range(4)]
    packet = bytearray(attribute_flood())
    attack.tally["packet_bytes"] = len(packet)
    port = attack.target.turn_port

    def send(i: int) -> None:
        packet[8:20] = secrets.token_bytes(12)
        sockets[i % len(sockets)].sendto(packet, (OPERATOR, port))

    await asyncio.gather(attack.paced(args.flood_rate, send), *(attack.drain_udp(sock) for sock in sockets))


async def permission_flood_attack(attack: Attack, args: argparse.Namespace) -> None:
    """Signed CreatePermissions with 5,000 peers and with 60 peers, from UDP allocations."""
    allocations = [await udp_allocation(attack, attacker_address(i), f"perm{i}")
                   for i in range(args.permission_allocations)]
    port = attack.target.turn_port
    # Peer lists drawn once (drawing 5,000 addresses per request would make the attacker, not the server, the
    # bottleneck); each request still gets its own transaction id and signature.
    lists = [b"".join(xor_peer(*peer) for peer in peers(count)) for count in (5000, 60) for _ in range(4)]

    def send(i: int) -> None:
        sock, username, nonce, key = allocations[i % len(allocations)]
        sock.sendto(permission_request(lists[i % len(lists)], username, nonce, key), (OPERATOR, port))

    await asyncio.gather(attack.paced(args.permission_rate, send),
                         *(attack.drain_udp(sock) for sock, *_ in allocations))


async def hold_connection(attack: Attack, connect: Callable[[], Awaitable[tuple[asyncio.StreamReader,
                                                                                 asyncio.StreamWriter]]],
                          opening: bytes, dribble: bytes) -> None:
    """Connect, write ``opening``, then ``dribble`` every 2 s; reconnect (after 1 s) when the server closes it."""
    while attack.left() > 0:
        try:
            reader, writer = await asyncio.wait_for(connect(), timeout=min(5.0, max(0.1, attack.left())))
        except (OSError, TimeoutError, ssl.SSLError):
            attack.tally["connect_failed"] += 1
            await asyncio.sleep(min(1.0, max(0.0, attack.left())))
            continue
        attack.writers.append(writer)
        attack.tally["connected"] += 1
        opened = time.monotonic()
        try:
            writer.write(opening)
            while attack.left() > 0:
                try:
                    data = await asyncio.wait_for(reader.read(4096), timeout=min(2.0, attack.left()))
                except TimeoutError:
                    writer.write(dribble)
                    continue
                if not data:
                    raise ConnectionResetError
                attack.tally["bytes_from_server"] += len(data)
            attack.tally["held_to_the_end"] += 1
            return
        except (OSError, ssl.SSLError):
            held = time.monotonic() - opened
            attack.tally["closed_by_server_within_1s" if held < 1 else "closed_by_server_later"] += 1
            writer.transport.abort()
            await asyncio.sleep(min(1.0, max(0.0, attack.left())))


async def ramped(attack: Attack, count: int, rate: float, start: Callable[[int], Awaitable[None]]) -> None:
    """Start ``start(i)`` for i < count at ``rate`` a second and wait for them all."""
    tasks = []
    for i in range(count):
        if attack.left() <= 0:
            break
        tasks.append(asyncio.ensure_future(start(i)))
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)


async def slow_connections_attack(attack: Attack, args: argparse.Namespace) -> None:
    """Connections to the relay's TCP and TLS ports holding a partial STUN frame, from many addresses."""
    context = client_context()
    target = attack.target
    per_source = args.slow_per_source
    partial = struct.pack("!HHI12s", BINDING, STREAM_FRAME, COOKIE, secrets.token_bytes(12)) + bytes(8)

    async def start(i: int) -> None:
        source = attacker_address(i // per_source)
        tls = i % 2 == 1

        def connect() -> Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
            return asyncio.open_connection(OPERATOR, target.tls_port if tls else target.turn_port,
                                           local_addr=(source, 0), ssl=context if tls else None)

        await hold_connection(attack, connect, partial, b"\x00")

    await ramped(attack, attack.count(args.slow_connections), args.connect_rate, start)


async def write_unread(attack: Attack, writer: asyncio.StreamWriter, data: bytes, name: str) -> None:
    """Write ``data`` over and over until the deadline, never reading what comes back."""
    with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
        while attack.left() > 0:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), timeout=max(0.01, attack.left()))
            attack.tally[f"{name}_bytes_written"] += len(data)


async def pipelined_relay_attack(attack: Attack, args: argparse.Namespace) -> None:
    """TCP connections to the relay, each holding an allocation (so its requests spend no input budget),
    pipelining Binding requests without ever reading the replies."""
    batch = b"".join(binding_request() for _ in range(200))

    async def relay(i: int) -> None:
        try:
            _, writer = await tcp_allocation(attack, attacker_address(i), f"pipe{i}")
        except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError) as exc:
            attack.tally[f"setup_failed_{type(exc).__name__}"] += 1
            return
        attack.tally["connections"] += 1
        await write_unread(attack, writer, batch, "relay")

    await asyncio.gather(*(relay(i) for i in range(attack.count(args.pipelined_relay))))


async def pipelined_https_attack(attack: Attack, args: argparse.Namespace) -> None:
    """HTTPS connections pipelining ``GET /healthz`` without ever reading the responses."""
    context = client_context()
    request = f"GET /healthz HTTP/1.1\r\nHost: {OPERATOR}\r\n\r\n".encode() * 100

    async def https(i: int) -> None:
        try:
            _, writer = await asyncio.open_connection(OPERATOR, attack.target.http_port, ssl=context,
                                                      local_addr=(attacker_address(i % 8), 0))
        except (OSError, ssl.SSLError):
            attack.tally["connect_failed"] += 1
            return
        attack.writers.append(writer)
        attack.tally["connections"] += 1
        await write_unread(attack, writer, request, "https")

    await asyncio.gather(*(https(i) for i in range(attack.count(args.pipelined_https))))


async def slowloris_attack(attack: Attack, args: argparse.Namespace) -> None:
    """HTTPS requests whose headers never end, and TCP connections to HTTPS that never finish a TLS ClientHello."""
    context = client_context()
    target = attack.target
    per_source = args.slowloris_per_source
    opening = f"GET /healthz HTTP/1.1\r\nHost: {OPERATOR}\r\n".encode()
    tls_count = attack.count(args.slowloris)

    async def start(i: int) -> None:
        source = attacker_address(i // per_source)
        tls = i < tls_count

        def connect() -> Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
            return asyncio.open_connection(OPERATOR, target.http_port, local_addr=(source, 0),
                                           ssl=context if tls else None)

        # A TLS connection sends headers slowly; a raw one sends nothing TLS would accept, a byte at a time.
        await hold_connection(attack, connect, opening if tls else b"", b"X-a: b\r\n" if tls else b"\x16")

    await ramped(attack, tls_count + attack.count(args.slowloris_raw), args.connect_rate, start)


async def credential_flood_attack(attack: Attack, args: argparse.Namespace) -> None:
    """Allocate requests signed with a wrong password, from several addresses."""
    port = attack.target.turn_port
    sources = []
    for a in range(args.flood_sources):
        sock = attack.udp(attacker_address(a))
        username = make_credentials(SECRET, f"cred{a}", 3600).username
        nonce = nonce_of(await udp_exchange(sock, allocate_request(), port))
        sources.append((sock, username, nonce, long_term_key(username, "wrong password")))

    def send(i: int) -> None:
        sock, username, nonce, key = sources[i % len(sources)]
        sock.sendto(allocate_request(username, nonce, key), (OPERATOR, port))

    await asyncio.gather(attack.paced(args.credential_rate, send), *(attack.drain_udp(s) for s, *_ in sources))


async def idle(attack: Attack, args: argparse.Namespace) -> None:
    """No attack: what the machine alone does to the figures (``--baseline``)."""
    await asyncio.sleep(max(0.0, attack.left()))


ATTACKS: dict[str, Callable[[Attack, argparse.Namespace], Awaitable[None]]] = {
    "idle": idle,
    "attribute-flood": attribute_flood_attack,
    "permission-flood": permission_flood_attack,
    "slow-connections": slow_connections_attack,
    "pipelined-relay": pipelined_relay_attack,
    "pipelined-https": pipelined_https_attack,
    "slowloris": slowloris_attack,
    "credential-flood": credential_flood_attack,
}


# -- running them ----------------------------------------------------------------------------------------------


async def stun_answered(port: int) -> float | None:
    """Milliseconds to a fresh Binding's answer from 127.0.0.1 (retried for CHECK_WITHIN seconds), or None."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + CHECK_WITHIN
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((OPERATOR, 0))
        sock.setblocking(False)
        while time.monotonic() < deadline:
            request = binding_request()
            started = time.perf_counter()
            await loop.sock_sendto(sock, request, (OPERATOR, port))
            try:
                reply = await asyncio.wait_for(loop.sock_recv(sock, 2048), 0.5)
            except TimeoutError:
                continue
            if reply[8:20] == request[8:20] and reply_code(reply) == 200:
                return (time.perf_counter() - started) * 1000
    return None


def https_answered(base: str) -> float | None:
    """Milliseconds to a fresh HTTPS /healthz from a stranger's address (retried for CHECK_WITHIN s), or None."""
    deadline = time.monotonic() + CHECK_WITHIN
    while time.monotonic() < deadline:
        transport = httpx.HTTPTransport(local_address=STRANGER_CHECK, verify=False)
        with httpx.Client(base_url=base, verify=False, timeout=2, transport=transport) as client:  # noqa: S501
            started = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/healthz").status_code == 200:
                    return (time.perf_counter() - started) * 1000
        time.sleep(0.2)
    return None


async def run_attack(name: str, seconds: float, target: Target,
                     args: argparse.Namespace) -> tuple[Outcome, float, float]:
    """Run one attack; returns its outcome (latencies filled in later) and its start and end times."""
    outcome = Outcome(name, seconds)
    before = target.metrics()
    outcome.rss_before_mb = target.status("VmRSS")
    peak = outcome.rss_before_mb
    attack = Attack(target, seconds, args.scale)
    cpu = target.cpu_seconds()
    start = time.monotonic()
    task = asyncio.ensure_future(ATTACKS[name](attack, args))
    try:
        while not task.done() and time.monotonic() < attack.deadline + 30:  # a hard bound on every attack
            peak = max(peak, target.status("VmRSS"))
            await asyncio.wait([task], timeout=RSS_INTERVAL)
        end = time.monotonic()
        if not task.done():
            task.cancel()
            attack.tally["cancelled_at_hard_bound"] = 1
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        attack.close()
    outcome.rss_peak_mb = max(peak, target.status("VmRSS"))
    outcome.server_cpu_s = target.cpu_seconds() - cpu
    outcome.load_average = os.getloadavg()[0]
    outcome.stun_after_ms = await stun_answered(target.turn_port)
    outcome.https_after_ms = await asyncio.to_thread(https_answered, target.https)
    outcome.rss_after_mb = target.status("VmRSS")
    outcome.attacker = dict(attack.tally)
    outcome.metrics = changed(before, target.metrics())
    return outcome, start, end


async def run_all(target: Target, args: argparse.Namespace) -> list[tuple[Outcome, float, float]]:
    results = []
    for name, seconds in args.attacks:
        print(f"{name}: {seconds:.0f} s ...", file=sys.stderr)
        results.append(await run_attack(name, seconds, target, args))
        await asyncio.sleep(SETTLE)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attacks", default=",".join(ATTACKS),
                        help="comma-separated, each NAME or NAME:SECONDS, of: " + ", ".join(ATTACKS))
    parser.add_argument("--seconds", type=float, default=10, help="duration of an attack without its own")
    parser.add_argument("--baseline", type=float, default=5,
                        help="seconds of 'idle' (no attack) before each attack: the machine's own noise; 0: none")
    parser.add_argument("--quick", action="store_true", help="3 s each and a tenth of the connection counts")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--peer-policy", default="call", choices=("call", "subnets"),
                        help="turn.peer_policy of the server (subnets: every peer of the permission flood passes)")
    parser.add_argument("--attacker-nice", type=int, default=10, help="niceness of the attacking process")
    parser.add_argument("--flood-rate", type=float, default=300, help="attribute-flood packets per second")
    parser.add_argument("--flood-sources", type=int, default=8, help="addresses of the UDP floods (4 ports each)")
    parser.add_argument("--permission-rate", type=float, default=500, help="CreatePermissions per second")
    parser.add_argument("--permission-allocations", type=int, default=4)
    parser.add_argument("--credential-rate", type=float, default=1000, help="wrong-password Allocates per second")
    parser.add_argument("--slow-connections", type=int, default=2000)
    parser.add_argument("--slow-per-source", type=int, default=16, help="connections per attacking address")
    parser.add_argument("--pipelined-relay", type=int, default=8, help="relay connections with an allocation")
    parser.add_argument("--pipelined-https", type=int, default=32)
    parser.add_argument("--slowloris", type=int, default=1000, help="HTTPS connections with unfinished headers")
    parser.add_argument("--slowloris-raw", type=int, default=500, help="connections that never finish a ClientHello")
    parser.add_argument("--slowloris-per-source", type=int, default=50, help="connections per attacking address")
    parser.add_argument("--connect-rate", type=float, default=400, help="new connections per second, ramping up")
    args = parser.parse_args(argv)
    try:
        args.attacks = parse_attacks(args.attacks, args.seconds, 3.0 if args.quick else None)
    except ValueError as exc:
        parser.error(str(exc))
    args.scale = 0.1 if args.quick else 1.0
    if args.baseline > 0:
        baseline = min(args.baseline, 3.0) if args.quick else args.baseline
        args.attacks = [pair for attack in args.attacks
                        for pair in ([("idle", baseline)] if attack[0] != "idle" else []) + [attack]]
    return args


def parse_attacks(text: str, seconds: float, cap: float | None) -> list[tuple[str, float]]:
    """``NAME[:SECONDS],...`` as (name, seconds) pairs; ``cap`` bounds every duration (``--quick``)."""
    attacks = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, duration = item.partition(":")
        if name not in ATTACKS:
            raise ValueError(f"unknown attack {name!r}; choose from {', '.join(ATTACKS)}")
        try:
            length = float(duration) if duration else seconds
        except ValueError:
            raise ValueError(f"{item!r}: the duration must be a number of seconds") from None
        if not 0 < length <= 600:
            raise ValueError(f"{item!r}: the duration must be more than 0 and at most 600 seconds")
        attacks.append((name, min(length, cap) if cap else length))
    return attacks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of attacking sockets
    with tempfile.TemporaryDirectory(prefix="hostile-bench-") as tmp:
        target = start_server(Path(tmp), args.peer_policy)
        stop = multiprocessing.Event()
        receiving, sending = multiprocessing.Pipe(duplex=False)
        prober = multiprocessing.Process(target=probe, args=(target.https, stop, sending), daemon=True)
        prober.start()
        try:
            os.nice(args.attacker_nice)  # after the server and the prober started: only the attacker is niced
            time.sleep(1.0)  # the prober's first connection
            results = asyncio.run(run_all(target, args))
        finally:
            stop.set()
            samples, late = receiving.recv() if receiving.poll(30) else ([], [])
            prober.join(10)
            if prober.is_alive():
                prober.terminate()
            log_tail = (Path(tmp) / "logs" / "opencall.log").read_text(errors="replace").splitlines()[-20:]
            stop_server(target)
    outcomes = []
    for outcome, start, end in results:
        summarise(outcome, samples, late, start, end)
        outcomes.append(outcome)
    print(table(outcomes))
    for o in outcomes:
        print(f"\n{o.attack}: server CPU {o.server_cpu_s:.1f} s, load average {o.load_average:.1f}; "
              f"attacker {o.attacker}\n  server /metrics changes {o.metrics}")
    if args.json:
        args.json.write_text(json.dumps({
            "targets": {"p99_ms": P99_TARGET_MS, "max_ms": MAX_TARGET_MS, "rss_growth_mb": RSS_TARGET_MB},
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "outcomes": [{**asdict(o), "rss_growth_mb": o.rss_growth_mb, "missed": o.missed()} for o in outcomes],
            "server_log_tail": log_tail,
        }, indent=2, default=str))
    return 1 if any(o.missed() for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
