"""Benchmark (not a test): CPU per relayed packet of several trees of our relay, side by side with coturn.

What one change to the hot path buys, measured as issue 15 asks ("measure why side by side"): each variant is
``NAME=DIR``, a checkout whose ``turn/`` is run with ``python -m turn`` and bench/turn_relay.py's settings (a
``git worktree`` of an older commit, or a copy with one change); ``coturn`` adds the anchor. The same
``turnutils_uclient`` load (channel or send mode) runs against each in turn, ``--repeat`` times, alternating;
CPU is the server's scheduler run time (``/proc/<pid>/task/*/schedstat``, nanoseconds, every thread) over the
run, and a relayed packet is one crossing of the relay (2 x what uclient received back; at these loads nothing
is lost). Everything binds to 127.0.0.1.

    git worktree add /tmp/before 49faa67
    python bench/relay_variants.py before=/tmp/before now=. coturn
    python bench/relay_variants.py --mode send --length 1200 now=. coturn
"""

from __future__ import annotations

import argparse
import contextlib
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.turn_relay import Load, start_coturn, start_ours, tool, uclient_command, wait_for_udp
from tests.support import free_port, stop_process


def run_seconds(pid: int) -> float:
    """CPU time the scheduler gave all threads of ``pid`` so far, in seconds (ns resolution)."""
    return sum(int((task / "schedstat").read_text().split()[0]) for task in Path(f"/proc/{pid}/task").iterdir()) / 1e9


def relayed_once(port: int, peer_port: int, args: argparse.Namespace) -> int:
    """Run uclient's load once against ``port``; the packets the relay relayed."""
    command = uclient_command(port, Load("udp", args.length, args.clients, args.mode), peer_port,
                              int(args.seconds * 1000))
    output = subprocess.run(command, capture_output=True, text=True, check=True,  # noqa: S603
                            timeout=args.seconds * 10 + 60).stdout
    return 2 * int(re.findall(r"tot_recv_msgs=(\d+)", output)[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", help="NAME=DIR (a tree with turn/), or coturn")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--mode", choices=("channel", "send"), default="channel")
    parser.add_argument("--length", type=int, default=160, help="payload bytes")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    costs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="relay-variants-") as folder, contextlib.ExitStack() as stack:
        work = Path(folder)
        peer_port = free_port()
        peer = subprocess.Popen([tool("turnutils_peer"), "-L", "127.0.0.1", "-p", str(peer_port)],  # noqa: S603
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(stop_process, peer)
        servers = []
        for index, variant in enumerate(args.variants):
            port, relay_ports = free_port(), (50000 + 1000 * index, 50999 + 1000 * index)
            name, _, tree = variant.partition("=")
            process = (start_coturn(work, port, relay_ports) if name == "coturn"
                       else start_ours(work, port, relay_ports, tree=Path(tree).resolve()))
            stack.callback(stop_process, process)
            wait_for_udp(port)
            servers.append((name, process, port))
        for run in range(args.repeat):
            for name, process, port in servers:
                before = run_seconds(process.pid)
                relayed = relayed_once(port, peer_port, args)
                cost = (run_seconds(process.pid) - before) / relayed * 1e6
                costs.setdefault(name, []).append(cost)
                print(f"run {run + 1} {name:>10}: {cost:6.2f} µs per relayed packet", file=sys.stderr)
    anchor = statistics.median(costs["coturn"]) if "coturn" in costs else None
    print(f"{args.mode}, {args.length}-byte payloads, {args.clients} clients, {args.repeat} runs each\n")
    print("| variant | CPU µs / relayed packet (median) | runs | / coturn |\n|---|---:|---|---:|")
    for name, runs in costs.items():
        median = statistics.median(runs)
        ratio = f"{median / anchor:.2f}" if anchor else ""
        print(f"| {name} | {median:.2f} | {', '.join(f'{cost:.2f}' for cost in runs)} | {ratio} |")


if __name__ == "__main__":
    main()
