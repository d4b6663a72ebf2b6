"""Benchmark (not a test): our relay against coturn under the same turnutils_uclient load, on loopback.

Both servers run side by side (ours via ``python -m turn`` on uvloop, coturn's ``turnserver`` with one relay
thread). For each load (number of uclient clients) and mode (ChannelData, and Send/Data indications with
``-s``), coturn's ``turnutils_uclient`` runs against each server in turn, relaying to a ``turnutils_peer`` echo
on 127.0.0.1. Reported per run: delivered packets/s, loss, and the server's CPU seconds (user + system, from
/proc/<pid>/stat) per 100k relayed packets; then the CPU ratio ours/coturn.

    python bench/turn_relay.py                          # 50 clients, 160-byte packets, -z 1, 3 runs each
    python bench/turn_relay.py --clients 10,30,50 --seconds 5 --repeat 1

A "relayed packet" is one crossing of the relay: each message uclient gets back went client -> peer and
peer -> client, so relayed = 2 x received (lost messages, which may or may not have crossed once, are not
counted: under loss the CPU figure is pessimistic). Needs Debian's coturn package. Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SECRET = "bench-secret"  # noqa: S105 - a throwaway secret for a loopback benchmark
REALM = "opencall"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    server: str
    clients: int
    mode: str
    sent: int
    received: int
    lost_percent: float
    seconds: float
    cpu_seconds: float

    @property
    def relayed(self) -> int:
        return 2 * self.received

    @property
    def delivered_per_second(self) -> float:
        return self.received / self.seconds if self.seconds else 0.0

    @property
    def relayed_per_second(self) -> float:
        return self.relayed / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_100k(self) -> float:
        return self.cpu_seconds / self.relayed * 100_000 if self.relayed else float("nan")


def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port


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


def start_ours(workdir: Path, port: int, relay_ports: tuple[int, int]) -> subprocess.Popen[bytes]:
    config = workdir / "turn.yaml"
    config.write_text(
        f"secret: {SECRET}\nrealm: {REALM}\nlisten: 127.0.0.1\nport: {port}\n"
        f"relay_ports: {relay_ports[0]}-{relay_ports[1]}\nallowed_peers: [127.0.0.0/8]\n"
        "max_allocations_per_user: 1000\n"
        # coturn has no quota per client address; all of uclient's clients, and their EVEN-PORT reservations,
        # come from 127.0.0.1
        "max_allocations_per_ip: 1000\n"
        # coturn has no per-source limit on unauthenticated replies; uclient opens all its allocations at once
        "unauthenticated_burst: 1000\nunauthenticated_input_burst: 1000\n"
    )
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "turn", "--config", str(config), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=(workdir / "ours.log").open("wb"),
    )


def start_coturn(workdir: Path, port: int, relay_ports: tuple[int, int]) -> subprocess.Popen[bytes]:
    """coturn with the settings of ours: UDP+TCP on one port, REST-API secret, loopback peers, no TLS."""
    return subprocess.Popen(  # noqa: S603
        [
            tool("turnserver"), "-n", "--listening-ip", "127.0.0.1", "--listening-port", str(port),
            "--relay-ip", "127.0.0.1", "--min-port", str(relay_ports[0]), "--max-port", str(relay_ports[1]),
            "--use-auth-secret", "--static-auth-secret", SECRET, "--realm", REALM,
            "--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-cli", "--fingerprint",
            "--relay-threads", "1",  # one event loop, like ours: CPU per packet is what is compared
            "--pidfile", str(workdir / "turnserver.pid"), "--userdb", str(workdir / "turndb"),
            "--log-file", str(workdir / "coturn.log"), "--simple-log", "--no-stdout-log",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def run_load(server: str, clients: int, mode: str, pid: int, port: int, peer_port: int,
             args: argparse.Namespace) -> Result:
    messages = int(args.seconds * 1000 / args.interval)
    command = [
        tool("turnutils_uclient"), "-c", "-m", str(clients), "-n", str(messages), "-l", str(args.length),
        "-z", str(args.interval), "-W", SECRET, "-u", "bench", "-p", str(port),
        "-e", "127.0.0.1", "-r", str(peer_port), *(["-s"] if mode == "send" else []), "127.0.0.1",
    ]
    before = cpu_seconds(pid)
    output = subprocess.run(command, capture_output=True, text=True, timeout=args.seconds * 10 + 60,  # noqa: S603
                            check=True).stdout
    cpu = cpu_seconds(pid) - before
    totals = re.findall(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", output)
    lost = re.search(r"Total lost packets \d+ \(([\d.]+)%\)", output)
    transmit = re.search(r"Total transmit time is (\d+)", output)
    if not totals or lost is None or transmit is None:
        raise RuntimeError(f"unexpected turnutils_uclient output:\n{output}")
    sent, received = map(int, totals[-1])
    return Result(server, clients, mode, sent, received, float(lost.group(1)), float(transmit.group(1)), cpu)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(results: list[Result], args: argparse.Namespace) -> str:
    """One row per (clients, mode, server): medians over the repeats, and the worst loss seen."""
    lines = [
        f"turnutils_uclient -c -m CLIENTS -n {int(args.seconds * 1000 / args.interval)} -l {args.length} "
        f"-z {args.interval} [-s], {args.repeat} runs each, ours and coturn alternating; medians, "
        "relayed = 2 x received",
        "",
        "| clients | mode | server | delivered pkt/s | relayed pkt/s | loss (worst run) | CPU s / 100k relayed "
        "| CPU ours/coturn |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    groups: dict[tuple[int, str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.clients, r.mode, r.server), []).append(r)
    cpu = {key: median([r.cpu_per_100k for r in runs]) for key, runs in groups.items()}
    for (clients, mode, server), runs in groups.items():
        coturn = cpu.get((clients, mode, "coturn"))
        ratio = f"{cpu[clients, mode, server] / coturn:.2f}" if server == "ours" and coturn else ""
        lines.append(
            f"| {clients} | {mode} | {server} | {median([r.delivered_per_second for r in runs]):,.0f} | "
            f"{median([r.relayed_per_second for r in runs]):,.0f} | "
            f"{median([r.lost_percent for r in runs]):.2f}% ({max(r.lost_percent for r in runs):.2f}%) | "
            f"{cpu[clients, mode, server]:.3f} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="50", help="comma-separated loads, e.g. 10,30,50")
    parser.add_argument("--length", type=int, default=160, help="payload bytes")
    parser.add_argument("--interval", type=int, default=1, help="ms between packets of a client (-z)")
    parser.add_argument("--seconds", type=float, default=10, help="nominal sending time per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per server, load and mode")
    parser.add_argument("--servers", default="ours,coturn")
    parser.add_argument("--modes", default="channel,send")
    args = parser.parse_args()
    starters = {"ours": start_ours, "coturn": start_coturn}
    results = []
    with tempfile.TemporaryDirectory(prefix="turn-bench-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        peer_port = free_port()
        peer = subprocess.Popen([tool("turnutils_peer"), "-L", "127.0.0.1", "-p", str(peer_port)],  # noqa: S603
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(stop, peer)
        servers = {}
        for index, name in enumerate(args.servers.split(",")):
            port = free_port()
            first = 52000 + index * 1000
            process = starters[name](workdir, port, (first, first + 999))
            stack.callback(stop, process)
            wait_for_udp(port)
            servers[name] = (process, port)
        for clients in (int(n) for n in args.clients.split(",")):
            for mode in args.modes.split(","):
                for _ in range(args.repeat):
                    for name, (process, port) in servers.items():
                        result = run_load(name, clients, mode, process.pid, port, peer_port, args)
                        print(f"{clients:3} clients {mode:7} {name:6} delivered "
                              f"{result.delivered_per_second:8,.0f}/s loss {result.lost_percent:6.2f}%  "
                              f"CPU/100k relayed {result.cpu_per_100k:.3f} s", file=sys.stderr)
                        results.append(result)
    print(report(results, args))


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(10)


if __name__ == "__main__":
    main()
