"""Benchmark (not a test): our relay against coturn under the same turnutils_uclient load, on loopback.

Both servers run side by side (ours via ``python -m turn`` on uvloop, coturn's ``turnserver`` with one relay
thread), with the same throwaway self-signed certificate when TLS is measured. For each transport (TURN over
UDP, TCP with uclient's ``-t``, TLS with ``-t -S``), payload size, load (number of uclient clients) and mode
(ChannelData, and Send/Data indications with ``-s``), coturn's ``turnutils_uclient`` runs against each server
in turn, relaying to a counting UDP echo peer on 127.0.0.1 (bench/echo_peer.py, a process of its own).
Allocations are UDP on every transport (uclient asks for REQUESTED-TRANSPORT UDP unless ``-T``): the transport
is the client's leg, the peer's leg is UDP. Reported per run: packets/s, loss, and the server's CPU seconds
(user + system, from /proc/<pid>/stat) per 100k relayed packets; then the CPU ratio ours/coturn, per
alternating pair of runs.

    python bench/turn_relay.py                          # UDP, 50 clients, 160-byte packets, -z 1, 3 runs each
    python bench/turn_relay.py --transports udp,tcp,tls --lengths 160,1200 --clients 20,50
    python bench/turn_relay.py --clients 10,30,50 --seconds 5 --repeat 1

What is counted does not rest on uclient's receive count, which is wrong over TLS: with 1 client at -z 1,
coturn's own session count (``turnserver -v``) was 1,000 packets from the peer, all of them sent on to the
client, where uclient counted 790 (21% "loss"; 17-40% in other runs); our relay's TLS showed no loss. So:

- A "relayed packet" is one crossing of the relay, counted the same way for both servers and every transport:
  client -> peer, the datagrams the echo peer received; peer -> client, the datagrams it echoed to the relay
  less those the kernel dropped at the server's relay sockets (their queue full: /proc/net/udp's ``drops`` of
  the server process's sockets in its relay port range, sampled every 0.1 s while the run lasts, since the
  sockets close with their allocations; a lower bound, so relayed may be a few datagrams too high). That is
  what the server read and handled, the base of its CPU cost. Whether it then got each one to the client is not
  in that count: over UDP and TCP, uclient's round-trip loss minus the loss to the peer shows it; over TLS
  uclient cannot tell (see above), and a relay that read a datagram and failed to send it would still be
  credited with it.
- "Loss to peer" is one-way loss measured at the peer, the same for all transports: (messages uclient sent -
  datagrams the peer received) / sent. uclient's round-trip loss is in a column of its own, labelled as
  uclient's; over TLS it is uclient's artifact for coturn, not coturn's loss.
- Packets/s are over the time the datagrams arrived at the peer (first to last of the run): uclient's own
  transmit time is in whole seconds, and over TLS it waits for the messages it missed.
- The echo peer's own drops (its socket's ``drops``) are reported: 0 means it kept up. It costs about what
  ``turnutils_peer`` costs (42-44% of a core against 36%, at 40,000 datagrams/s each way, paced, none
  dropped; 0 dropped at 60,000/s on a quiet moment), and against coturn over UDP at 20 and 50 clients -z 1
  (where uclient sends ~12,500 datagrams/s) loss and delivered rate were no worse than with turnutils_peer.

``--latency`` measures instead the one-way delay each relay adds (bench/turn_latency.py: a probe client and
peer in this process, 200 timestamped packets a second each way), under uclient background load in channel
mode at 10%, 50% and 90% of the load coturn carries without loss. That load is found first, in the same run:
uclient against coturn with ``--ramp`` clients, the largest count before the first loss (or
``--lossless-clients N``). A direct UDP probe, with no relay, is the floor the relays' figures add to: the
probe's own turnaround, with which the relay's hop (in another process, on another core) partly overlaps, so
"added" is a lower bound.

    python bench/turn_relay.py --latency                # ramp, then 3 x (ours, coturn) at each level

Needs Debian's coturn package. Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.turn_latency import Direction, Probe, direct, through_relay
from tests.support import free_port, self_signed, stop_process

SECRET = "bench-secret"  # noqa: S105 - a throwaway secret for a loopback benchmark
REALM = "opencall"
RELAY_PORTS_FROM, RELAY_PORTS_EACH = 10000, 10000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TRANSPORT_FLAGS = {"udp": [], "tcp": ["-t"], "tls": ["-t", "-S"]}  # turnutils_uclient's flags for each
LEVELS = (10, 50, 90)  # background load of the latency probe, in per cent of what coturn carries without loss
PEER_SETTLE = 0.2  # seconds for the echo peer to drain its queue after uclient is done
DROPS_EVERY = 0.1  # seconds between samples of the relay sockets' drop counts
WARMUP = 2.0  # seconds uclient sends before the latency probe starts: its clients start over a second or two


@dataclass(frozen=True)
class Tls:
    """The TLS listener both servers open: its port, and the certificate and key files."""

    port: int
    cert: Path
    key: Path


@dataclass(frozen=True)
class Endpoint:
    """A server under test."""

    name: str
    process: subprocess.Popen[bytes]
    port: int  # UDP and TCP
    tls_port: int | None
    relay_ports: range  # where its relayed addresses are

    def port_for(self, transport: str) -> int:
        if transport != "tls":
            return self.port
        assert self.tls_port is not None
        return self.tls_port


@dataclass(frozen=True)
class Load:
    """One uclient load: what a table row names."""

    transport: str
    length: int
    clients: int
    mode: str


@dataclass(frozen=True)
class PeerCounts:
    """The echo peer's totals (bench/echo_peer.py): datagrams received, echoed, dropped at its socket."""

    received: int
    echoed: int
    dropped: int
    active: float  # seconds from the first datagram after the previous reading to the latest

    def __sub__(self, before: PeerCounts) -> PeerCounts:
        """The counts between two readings, and the time the traffic lasted."""
        return PeerCounts(self.received - before.received, self.echoed - before.echoed,
                          self.dropped - before.dropped, self.active)


class Peer:
    """bench/echo_peer.py in a process of its own, on a free port of 127.0.0.1."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, str(Path(__file__).with_name("echo_peer.py"))], stdout=subprocess.PIPE, text=True)
        stack.callback(stop_process, self.process)
        self.port = int(self.line().removeprefix("port "))

    def line(self) -> str:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 10)
        if not ready:
            raise RuntimeError("the echo peer did not answer")
        return self.process.stdout.readline().strip()

    def counts(self) -> PeerCounts:
        """Its totals so far (it prints them on SIGUSR1)."""
        self.process.send_signal(signal.SIGUSR1)
        found = re.fullmatch(r"received (\d+) echoed (\d+) dropped (\d+) active ([\d.]+)", self.line())
        if found is None:
            raise RuntimeError("unexpected line from the echo peer")
        received, echoed, dropped, active = found.groups()
        return PeerCounts(int(received), int(echoed), int(dropped), float(active))


@dataclass
class Result:
    """One uclient run: uclient's counts, the peer's, and the server's CPU."""

    server: str
    load: Load
    repeat: int
    sent: int  # by uclient's clients, to the peer
    received: int  # back at uclient's clients, as uclient counts them
    lost_percent: float  # uclient's round-trip loss
    cpu_seconds: float
    peer: PeerCounts
    relay_drops: int  # datagrams from the peer dropped at the server's relay sockets (queue full)

    @property
    def relayed(self) -> int:
        """Crossings of the relay: client -> peer as the peer received them, peer -> client as the relay read
        them from the peer (echoed less dropped at its relay sockets)."""
        return self.peer.received + self.peer.echoed - self.relay_drops

    @property
    def to_peer_lost_percent(self) -> float:
        """One-way loss, client -> peer: what uclient sent and the peer did not receive."""
        return 100 * (self.sent - self.peer.received) / self.sent if self.sent else 0.0

    @property
    def to_peer_per_second(self) -> float:
        """Datagrams the peer received a second, while they arrived."""
        return self.peer.received / self.peer.active if self.peer.active else 0.0

    @property
    def relayed_per_second(self) -> float:
        return self.relayed / self.peer.active if self.peer.active else 0.0

    @property
    def cpu_per_100k(self) -> float:
        return self.cpu_seconds / self.relayed * 100_000 if self.relayed else math.nan


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        sys.exit(f"{name} not found: apt-get install coturn")
    return path


def wait_for_udp(port: int, timeout: float = 10.0) -> None:
    """Wait until something answers a STUN Binding request on 127.0.0.1:port."""
    request = bytes.fromhex("000100002112a442") + os.urandom(12)
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.2)
        while time.monotonic() < deadline:
            probe.sendto(request, ("127.0.0.1", port))
            try:
                if probe.recv(2048)[8:20] == request[8:20]:
                    return
            except OSError:
                time.sleep(0.1)
    raise RuntimeError(f"no STUN server answered on 127.0.0.1:{port}")


def wait_for_tcp(port: int, timeout: float = 10.0) -> None:
    """Wait until 127.0.0.1:port accepts a TCP connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing accepts TCP connections on 127.0.0.1:{port}")


def start_ours(workdir: Path, port: int, relay_ports: tuple[int, int], tls: Tls | None = None,
               tree: Path | None = None) -> subprocess.Popen[bytes]:
    """``python -m turn`` with settings that match coturn's; from ``tree`` (a checkout with ``turn/``) when given,
    else this one."""
    config = workdir / f"turn-{port}.yaml"
    config.write_text(
        f"secret: {SECRET}\nrealm: {REALM}\nlisten: 127.0.0.1\nport: {port}\n"
        f"relay_ports: {relay_ports[0]}-{relay_ports[1]}\nallowed_peers: [127.0.0.0/8]\n"
        "max_allocations_per_user: 1000\n"
        # coturn has no quota per client address; all of uclient's clients, and their EVEN-PORT reservations,
        # come from 127.0.0.1
        "max_allocations_per_ip: 1000\n"
        # nor a cap on TCP/TLS connections per client address: over TCP each uclient client is one connection
        "max_connections: 1000\nmax_connections_per_ip: 1000\n"
        # coturn has no per-source limit on unauthenticated replies; uclient opens all its allocations at once
        "unauthenticated_burst: 1000\nunauthenticated_input_burst: 1000\n"
        + (f"tls_port: {tls.port}\ntls_cert: {tls.cert}\ntls_key: {tls.key}\n" if tls else "")
    )
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "turn", "--config", str(config), "--log-level", "warning"],
        cwd=tree or Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL,
        stderr=(workdir / f"ours-{port}.log").open("wb"),
    )


def start_coturn(workdir: Path, port: int, relay_ports: tuple[int, int], tls: Tls | None = None
                 ) -> subprocess.Popen[bytes]:
    """coturn with the settings of ours: UDP+TCP on one port, TLS on another when asked, REST-API secret,
    loopback peers."""
    secure = ["--tls-listening-port", str(tls.port), "--cert", str(tls.cert), "--pkey", str(tls.key)] if tls \
        else ["--no-tls"]
    return subprocess.Popen(  # noqa: S603
        [
            tool("turnserver"), "-n", "--listening-ip", "127.0.0.1", "--listening-port", str(port),
            "--relay-ip", "127.0.0.1", "--min-port", str(relay_ports[0]), "--max-port", str(relay_ports[1]),
            "--use-auth-secret", "--static-auth-secret", SECRET, "--realm", REALM,
            "--allow-loopback-peers", *secure, "--no-dtls", "--no-cli", "--fingerprint",
            "--relay-threads", "1",  # one event loop, like ours: CPU per packet is what is compared
            "--pidfile", str(workdir / "turnserver.pid"), "--userdb", str(workdir / "turndb"),
            "--log-file", str(workdir / "coturn.log"), "--simple-log", "--no-stdout-log",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


STARTERS = {"ours": start_ours, "coturn": start_coturn}


def start_servers(names: Iterable[str], workdir: Path, stack: contextlib.ExitStack, with_tls: bool
                  ) -> dict[str, Endpoint]:
    """Start each named server on its own ports (stopped by ``stack``), with TLS when ``with_tls``: both with
    the same throwaway self-signed certificate."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    if with_tls:
        self_signed(cert, key, days=1)
    servers = {}
    for index, name in enumerate(names):
        port = free_port()
        tls = Tls(free_port(), cert, key) if with_tls else None
        # 10,000 relay ports each, below Linux's ephemeral range: uclient leaves its allocations (with their
        # EVEN-PORT pairs) to expire, so a range of 1,000 ran out (508) after a dozen runs of 40 clients.
        first = RELAY_PORTS_FROM + index * RELAY_PORTS_EACH
        process = STARTERS[name](workdir, port, (first, first + RELAY_PORTS_EACH - 1), tls)
        stack.callback(stop_process, process)
        wait_for_udp(port)
        for stream_port in (port, *([tls.port] if tls else [])):
            wait_for_tcp(stream_port)
        servers[name] = Endpoint(name, process, port, tls.port if tls else None,
                                 range(first, first + RELAY_PORTS_EACH))
    return servers


def uclient_command(port: int, load: Load, peer_port: int, messages: int, interval: int = 1) -> list[str]:
    """turnutils_uclient's command line: ``load`` against the server on ``port``, relaying to ``peer_port``."""
    return [
        tool("turnutils_uclient"), *TRANSPORT_FLAGS[load.transport], "-c", "-m", str(load.clients),
        "-n", str(messages), "-l", str(load.length), "-z", str(interval), "-W", SECRET, "-u", "bench",
        "-p", str(port), "-e", "127.0.0.1", "-r", str(peer_port),
        *(["-s"] if load.mode == "send" else []), "127.0.0.1",
    ]


def parse_uclient(output: str) -> tuple[int, int, float]:
    """Messages sent and received, and loss in per cent, from uclient's summary."""
    totals = re.findall(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", output)
    lost = re.search(r"Total lost packets \d+ \(([\d.]+)%\)", output)
    if not totals or lost is None:
        raise RuntimeError(f"unexpected turnutils_uclient output:\n{output}")
    sent, received = map(int, totals[-1])
    return sent, received, float(lost.group(1))


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets a process and its child processes hold open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed since the listing
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(int(link[8:-1]))
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in children.read_text().split():
                inodes |= socket_inodes(int(child))
    return inodes


def socket_drops(pid: int, ports: range) -> dict[int, int]:
    """Datagrams the kernel dropped so far (a full queue) at each UDP socket of process ``pid`` bound to one of
    ``ports``, by socket inode: the ``drops`` column of /proc/net/udp."""
    inodes = socket_inodes(pid)
    drops = {}
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        inode = int(fields[9])
        if inode in inodes and int(fields[1].rsplit(":", 1)[1], 16) in ports:
            drops[inode] = int(fields[-1])
    return drops


class RelayDrops(threading.Thread):
    """Samples :func:`socket_drops` of a server's relay sockets every :data:`DROPS_EVERY` seconds while a
    run lasts: the relay sockets close with their allocations, so the count is read while they exist."""

    def __init__(self, server: Endpoint) -> None:
        super().__init__(daemon=True)
        self.pid, self.ports = server.process.pid, server.relay_ports
        self.before = socket_drops(self.pid, self.ports)
        self.latest = dict(self.before)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(DROPS_EVERY):
            self.latest.update(socket_drops(self.pid, self.ports))

    def stop(self) -> int:
        """The drops since the start (a lower bound: those of the last interval before a socket closed are
        missed)."""
        self.done.set()
        self.join()
        self.latest.update(socket_drops(self.pid, self.ports))
        return sum(drops - self.before.get(inode, 0) for inode, drops in self.latest.items())


UCLIENT_ATTEMPTS = 3  # uclient now and then exits non-zero at start-up (a timed-out allocation): that run again


def run_load(server: Endpoint, load: Load, peer: Peer, args: argparse.Namespace, repeat: int = 0) -> Result:
    """One uclient run of ``args.seconds`` against ``server``, with the CPU it cost the server and what the peer
    counted; a run whose uclient failed is run again (and said so), up to ``UCLIENT_ATTEMPTS`` times."""
    for attempt in range(1, UCLIENT_ATTEMPTS):
        try:
            return run_load_once(server, load, peer, args, repeat)
        except subprocess.CalledProcessError as failed:
            tail = " | ".join((failed.stdout or "").strip().splitlines()[-3:])
            print(f"uclient failed against {server.name} (attempt {attempt}, exit {failed.returncode}): {tail}",
                  file=sys.stderr)
    return run_load_once(server, load, peer, args, repeat)


def run_load_once(server: Endpoint, load: Load, peer: Peer, args: argparse.Namespace, repeat: int) -> Result:
    """One uclient run of ``args.seconds`` against ``server``."""
    command = uclient_command(server.port_for(load.transport), load, peer.port,
                              int(args.seconds * 1000 / args.interval), args.interval)
    before, counted, relay_drops = cpu_seconds(server.process.pid), peer.counts(), RelayDrops(server)
    relay_drops.start()
    try:
        output = subprocess.run(command, capture_output=True, text=True,  # noqa: S603
                                timeout=args.seconds * 10 + 60, check=True).stdout
    finally:
        dropped = relay_drops.stop()
    cpu = cpu_seconds(server.process.pid) - before
    time.sleep(PEER_SETTLE)
    sent, received, lost = parse_uclient(output)
    return Result(server.name, load, repeat, sent, received, lost, cpu, peer.counts() - counted,
                  dropped)


def loads(args: argparse.Namespace) -> list[Load]:
    return [Load(transport, length, clients, mode)
            for transport in split(args.transports) for length in numbers(args.lengths)
            for clients in numbers(args.clients) for mode in split(args.modes)]


def throughput(servers: dict[str, Endpoint], peer: Peer, args: argparse.Namespace) -> list[Result]:
    """Every load ``args.repeat`` times, the servers alternating within each repeat."""
    results = []
    for load in loads(args):
        for repeat in range(args.repeat):
            for server in servers.values():
                result = run_load(server, load, peer, args, repeat)
                print(f"{load.transport} {load.length:5} B {load.clients:3} clients {load.mode:7} {server.name:6} "
                      f"sent {result.sent:7} peer got {result.peer.received:7} echoed {result.peer.echoed:7} "
                      f"dropped {result.peer.dropped}, relay dropped {result.relay_drops}, uclient got "
                      f"{result.received:7}; loss to peer {result.to_peer_lost_percent:6.2f}% round trip (uclient) "
                      f"{result.lost_percent:6.2f}%  "
                      f"CPU/100k relayed {result.cpu_per_100k:.3f} s", file=sys.stderr)
                results.append(result)
    return results


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else math.nan


def cpu_ratios(results: list[Result]) -> dict[Load, list[float]]:
    """ours/coturn CPU per relayed packet of each pair of runs (same load, same repeat)."""
    cpu = {(r.load, r.repeat, r.server): r.cpu_per_100k for r in results}
    ratios: dict[Load, list[float]] = {}
    for (load, repeat, server), ours in cpu.items():
        coturn = cpu.get((load, repeat, "coturn"))
        if server == "ours" and coturn:
            ratios.setdefault(load, []).append(ours / coturn)
    return ratios


TITLES = {"udp": "TURN over UDP", "tcp": "TURN over TCP (uclient -t)", "tls": "TURN over TLS (uclient -t -S)"}


def report(results: list[Result], args: argparse.Namespace) -> str:
    """One table per transport, one row per (payload, clients, mode, server): medians over the repeats, and the
    worst loss and the worst CPU ratio of a pair of runs in brackets."""
    groups: dict[tuple[Load, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.load, r.server), []).append(r)
    ratios = cpu_ratios(results)
    lines = [
        f"turnutils_uclient [-t [-S]] -c -m CLIENTS -n {int(args.seconds * 1000 / args.interval)} -l LENGTH "
        f"-z {args.interval} [-s], {args.repeat} runs each, ours and coturn alternating; medians (worst), "
        "relayed = datagrams the echo peer received (client -> peer) + datagrams it echoed less those dropped "
        "at the server's relay sockets (peer -> client, as the relay read them); loss to peer = (sent by uclient "
        "- received by the peer) / sent; round-trip loss = uclient's own count, which over TLS misses messages "
        "coturn did send (see bench/turn_relay.py); drops = datagrams the kernel dropped at the echo peer's "
        "socket (0: it kept up) / at the server's relay sockets; pkt/s over the time the datagrams arrived at "
        "the peer",
    ]
    for transport in split(args.transports):
        lines += [
            "", f"### {TITLES[transport]}", "",
            "| payload | clients | mode | server | to peer pkt/s | relayed pkt/s | loss to peer (worst) "
            "| round-trip loss, uclient (worst) | drops peer / relay | CPU s / 100k relayed "
            "| CPU ours/coturn (worst) |",
            "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [result_row(load, server, runs, ratios.get(load, []) if server == "ours" else [])
                  for (load, server), runs in groups.items() if load.transport == transport]
    return "\n".join(lines)


def result_row(load: Load, server: str, runs: list[Result], ratios: list[float]) -> str:
    ratio = f"{median(ratios):.2f} ({max(ratios):.2f})" if ratios else ""
    return (
        f"| {load.length} B | {load.clients} | {load.mode} | {server} | "
        f"{median(r.to_peer_per_second for r in runs):,.0f} | {median(r.relayed_per_second for r in runs):,.0f} | "
        f"{median(r.to_peer_lost_percent for r in runs):.2f}% ({max(r.to_peer_lost_percent for r in runs):.2f}%) | "
        f"{median(r.lost_percent for r in runs):.2f}% ({max(r.lost_percent for r in runs):.2f}%) | "
        f"{sum(r.peer.dropped for r in runs)} / {sum(r.relay_drops for r in runs)} | "
        f"{median(r.cpu_per_100k for r in runs):.3f} | {ratio} |"
    )


# Latency (--latency): the probe of bench/turn_latency.py under uclient background load.


@dataclass
class LatencyRun:
    level: str  # "10%" ... of the load coturn carries without loss, or "idle" for the direct baseline
    clients: int
    server: str
    probe: Probe
    background_loss: float | None  # uclient's loss during the probe, None without background load


def lossless_clients(coturn: Endpoint, peer: Peer, args: argparse.Namespace) -> int:
    """The most uclient clients (channel mode, UDP) of ``args.ramp`` coturn relays without loss, before the first
    count that loses packets."""
    found = 0
    ramp = argparse.Namespace(**{**vars(args), "seconds": args.ramp_seconds})
    for clients in numbers(args.ramp):
        result = run_load(coturn, Load("udp", background_length(args), clients, "channel"), peer, ramp)
        print(f"ramp: coturn, {clients} clients: loss {result.lost_percent:.2f}%", file=sys.stderr)
        if result.lost_percent > 0:
            break
        found = clients
    else:
        print(f"ramp: no loss up to {found} clients; a longer --ramp may find more", file=sys.stderr)
    if not found:
        sys.exit(f"coturn lost packets at {args.ramp.split(',')[0]} clients already: give --lossless-clients N")
    return found


def background_length(args: argparse.Namespace) -> int:
    return numbers(args.lengths)[0]


def probe_under_load(server: Endpoint, clients: int, peer: Peer, args: argparse.Namespace
                     ) -> tuple[Probe, float]:
    """The latency probe through ``server`` while uclient loads it with ``clients`` clients (channel mode, UDP),
    and uclient's loss: the probe starts :data:`WARMUP` seconds after uclient's clients start sending, and
    uclient sends until the probe is done."""
    load = Load("udp", background_length(args), clients, "channel")
    messages = int((WARMUP + args.seconds + 2) * 1000 / args.interval)
    # Line-buffered (stdbuf), so that its progress lines arrive as it prints them.
    command = [tool("stdbuf"), "-oL", *uclient_command(server.port_for(load.transport), load, peer.port, messages,
                                                            args.interval)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as uclient:  # noqa: S603
        wait_until_sending(uclient)
        time.sleep(WARMUP)
        probe = through_relay(("127.0.0.1", server.port), SECRET, args.seconds, args.probe_rate)
        output, _ = uclient.communicate(timeout=args.seconds * 10 + 60)
    return probe, parse_uclient(output)[2]


def wait_until_sending(uclient: subprocess.Popen[str]) -> None:
    """Read uclient's progress lines (one a second) until its clients send: it allocates them all first, which
    takes seconds for 50 clients."""
    assert uclient.stdout is not None
    for line in uclient.stdout:
        sent = re.search(r"tot_send_msgs=(\d+)", line)
        if sent and int(sent.group(1)) > 0:
            return
    raise RuntimeError("turnutils_uclient ended before it sent anything")


def latency(servers: dict[str, Endpoint], peer: Peer, args: argparse.Namespace) -> list[LatencyRun]:
    """The direct baseline, then each level: ``args.repeat`` times each server in turn."""
    runs = [LatencyRun("idle", 0, "direct UDP", direct(args.seconds, args.probe_rate), None)
            for _ in range(args.repeat)]
    top = args.lossless_clients or lossless_clients(servers["coturn"], peer, args)
    for level in LEVELS:
        clients = max(1, round(top * level / 100))
        for _ in range(args.repeat):
            for server in servers.values():
                probe, loss = probe_under_load(server, clients, peer, args)
                run = LatencyRun(f"{level}%", clients, server.name, probe, loss)
                print(f"latency {run.level} ({clients} clients) {server.name:6} "
                      f"to peer p50 {probe.to_peer.percentile(0.5):6.0f} µs, "
                      f"to client p50 {probe.to_client.percentile(0.5):6.0f} µs, probe loss "
                      f"{probe.loss_percent:.2f}%, background loss {loss:.2f}%", file=sys.stderr)
                runs.append(run)
    return runs


def to_peer(probe: Probe) -> Direction:
    return probe.to_peer


def to_client(probe: Probe) -> Direction:
    return probe.to_client


WAYS = (to_peer, to_client)


def delays(runs: list[LatencyRun], way: Callable[[Probe], Direction]) -> str:
    """``p50 / p99 (worst p99) / max`` in µs: medians over the runs, the worst p99, the longest delay of all."""
    p99 = [way(r.probe).percentile(0.99) for r in runs]
    longest = max(way(r.probe).percentile(1.0) for r in runs)
    return f"{median(way(r.probe).percentile(0.5) for r in runs):,.0f} / {median(p99):,.0f} ({max(p99):,.0f}) / " \
        f"{longest:,.0f}"


def typical(runs: list[LatencyRun], way: Callable[[Probe], Direction]) -> tuple[float, float]:
    """p50 and p99 one way, medians over the runs."""
    return median(way(r.probe).percentile(0.5) for r in runs), median(way(r.probe).percentile(0.99) for r in runs)


def added(group: list[LatencyRun], floor: list[LatencyRun], way: Callable[[Probe], Direction]) -> str:
    """The p50 and p99 one way less the direct probe's."""
    (p50, p99), (floor_p50, floor_p99) = typical(group, way), typical(floor, way)
    return f"{p50 - floor_p50:+,.0f} / {p99 - floor_p99:+,.0f}"


def latency_row(group: list[LatencyRun], floor: list[LatencyRun]) -> str:
    """One (level, server) row of the runs in ``group``."""
    first = group[0]
    extra = ["" if first.level == "idle" else added(group, floor, way) for way in WAYS]
    losses = [r.probe.loss_percent for r in group]
    background = [r.background_loss for r in group if r.background_loss is not None]
    return (
        f"| {first.level} | {first.clients} | {first.server} | {delays(group, to_peer)} | {extra[0]} | "
        f"{delays(group, to_client)} | {extra[1]} | {median(losses):.2f}% ({max(losses):.2f}%) | "
        + (f"{median(background):.2f}% ({max(background):.2f}%) |" if background else " |")
    )


def latency_report(runs: list[LatencyRun], args: argparse.Namespace) -> str:
    """One row per (level, server), the direct probe first."""
    groups: dict[tuple[str, str], list[LatencyRun]] = {}
    for run in runs:
        groups.setdefault((run.level, run.server), []).append(run)
    floor = [run for run in runs if run.level == "idle"]
    return "\n".join([
        f"Probe: {args.probe_rate:g} packets/s each way for {args.seconds:g} s, 160 B; background: "
        f"turnutils_uclient -c -m CLIENTS -l {background_length(args)} -z {args.interval} (channel, UDP); "
        f"{args.repeat} runs each, ours and coturn alternating; delays in µs, medians (worst); added = through "
        "the relay less the direct probe (idle)",
        "",
        "| load | clients | server | to peer p50 / p99 / max | added p50 / p99 | to client p50 / p99 / max "
        "| added p50 / p99 | probe loss (worst) | background loss (worst) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
        *(latency_row(group, floor) for group in groups.values()),
    ])


def split(text: str) -> list[str]:
    return [item for item in text.split(",") if item]


def numbers(text: str) -> list[int]:
    return [int(item) for item in split(text)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transports", default="udp", help="comma-separated, of udp, tcp, tls")
    parser.add_argument("--lengths", default="160", help="comma-separated payload sizes in bytes, e.g. 160,1200")
    parser.add_argument("--clients", default="50", help="comma-separated loads, e.g. 10,30,50")
    parser.add_argument("--interval", type=int, default=1, help="ms between packets of a client (-z)")
    parser.add_argument("--seconds", type=float, default=10, help="nominal sending time per run (and per probe)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per server and row")
    parser.add_argument("--servers", default="ours,coturn")
    parser.add_argument("--modes", default="channel,send")
    parser.add_argument("--latency", action="store_true", help="measure the delay each relay adds instead")
    parser.add_argument("--lossless-clients", type=int, help="--latency: coturn's lossless load; skips the ramp")
    parser.add_argument("--ramp", default="10,20,30,40,50,60", help="--latency: client counts tried on coturn")
    parser.add_argument("--ramp-seconds", type=float, default=3, help="--latency: sending time per ramp step")
    parser.add_argument("--probe-rate", type=float, default=200, help="--latency: probe packets/s each way")
    args = parser.parse_args()
    unknown = (set(split(args.transports)) - set(TRANSPORT_FLAGS)) | (set(split(args.servers)) - set(STARTERS))
    if unknown:
        parser.error(f"unknown transport or server: {', '.join(sorted(unknown))}")
    if args.latency and "coturn" not in split(args.servers) and not args.lossless_clients:
        parser.error("--latency finds its load on coturn: keep coturn in --servers or give --lossless-clients")
    return args


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="turn-bench-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        peer = Peer(stack)
        with_tls = not args.latency and "tls" in split(args.transports)
        servers = start_servers(split(args.servers), workdir, stack, with_tls)
        if args.latency:
            output = latency_report(latency(servers, peer, args), args)
        else:
            output = report(throughput(servers, peer, args), args)
    print(output)


if __name__ == "__main__":
    main()
