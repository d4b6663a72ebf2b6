"""Profile (not a test): where our relay spends its time under coturn's uclient load, with py-spy.

Starts ``python -m turn`` as bench/turn_relay.py does, a ``turnutils_peer`` echo, then ``turnutils_uclient``
against it while ``py-spy record`` samples the relay; prints the lines that hold the most samples (self time)
and the loss uclient saw. Everything binds to 127.0.0.1. Needs Debian's coturn package and py-spy (the bench
extra: ``pip install '.[bench]'``).

    python bench/profile_relay.py                  # 50 clients, ChannelData, 160-byte packets, -z 1
    python bench/profile_relay.py --mode send      # Send/Data indications
    python bench/profile_relay.py --split          # kernel and user CPU per packet, ours and coturn (perf)

``--split`` answers "how much of the gap to coturn can Python close at all": it runs the same uclient load
against our relay and coturn in turn, samples each with ``perf record`` (Debian's linux-perf) and splits its CPU
per relayed packet into time in the kernel (system calls, the network stack, waking the receivers: what any
relay pays for the same datagrams) and time in user space (for coturn its C, for us the interpreter, uvloop and
libc).
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.turn_relay import Load, cpu_seconds, start_coturn, start_ours, tool, uclient_command, wait_for_udp
from tests.support import free_port


def self_time(samples: Path, top: int) -> list[tuple[float, str]]:
    """The ``top`` frames holding the most samples as the innermost frame, in per cent of all samples."""
    leaves: Counter[str] = Counter()
    total = 0
    for line in samples.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            leaves[stack.split(";")[-1]] += int(count)
            total += int(count)
    return [(100 * n / total, frame) for frame, n in leaves.most_common(top)]


def kernel_share(recording: Path) -> float:
    """The share of ``perf record``'s samples taken in the kernel."""
    report = subprocess.run(["perf", "report", "--input", str(recording), "--stdio", "--sort", "dso"],  # noqa: S603,S607
                            capture_output=True, text=True, check=True).stdout
    shares = [(float(line.split("%")[0]), line.split()[-1]) for line in report.splitlines()
              if line.strip() and not line.startswith("#") and "%" in line]
    return sum(share for share, dso in shares if dso == "[kernel.kallsyms]") / sum(share for share, _ in shares)


def split(args: argparse.Namespace) -> None:
    """CPU per relayed packet of ours and coturn, split into kernel and user time by perf's samples."""
    with tempfile.TemporaryDirectory(prefix="profile-relay-") as folder:
        work = Path(folder)
        peer_port = free_port(socket.SOCK_DGRAM)
        peer = subprocess.Popen([tool("turnutils_peer"), "-L", "127.0.0.1", "-p", str(peer_port)],  # noqa: S603
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            print("| server | CPU µs / relayed packet | kernel | user | kernel share |\n|---|---:|---:|---:|---:|")
            for index, (name, start) in enumerate((("ours", start_ours), ("coturn", start_coturn))):
                port = free_port(socket.SOCK_DGRAM)
                server = start(work, port, (50000 + 1000 * index, 50999 + 1000 * index))
                try:
                    wait_for_udp(port)
                    recording = work / f"{name}.perf"
                    perf = subprocess.Popen(  # noqa: S603
                        ["perf", "record", "-F", "2000", "-o", str(recording), "-p", str(server.pid)],  # noqa: S607
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    before = cpu_seconds(server.pid)
                    output = subprocess.run(uclient(args, port, peer_port), capture_output=True, text=True,  # noqa: S603
                                            timeout=args.seconds * 10 + 60, check=True).stdout
                    cpu = cpu_seconds(server.pid) - before
                    perf.send_signal(signal.SIGINT)
                    perf.wait(timeout=60)
                finally:
                    server.terminate()
                    server.wait(timeout=10)
                received = int(re.findall(r"tot_recv_msgs=(\d+)", output)[-1])
                per_packet = cpu / (2 * received) * 1e6
                kernel = kernel_share(recording)
                print(f"| {name} | {per_packet:.2f} | {per_packet * kernel:.2f} | {per_packet * (1 - kernel):.2f} | "
                      f"{kernel:.0%} |")
        finally:
            peer.terminate()


def uclient(args: argparse.Namespace, port: int, peer_port: int) -> list[str]:
    """turnutils_uclient's command line for the load of ``args``."""
    return uclient_command(port, Load("udp", args.length, args.clients, args.mode), peer_port, args.seconds * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--mode", choices=("channel", "send"), default="channel")
    parser.add_argument("--length", type=int, default=160, help="payload bytes")
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--split", action="store_true", help="kernel and user CPU per packet, ours and coturn")
    args = parser.parse_args()
    if args.split:
        split(args)
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    with tempfile.TemporaryDirectory(prefix="profile-relay-") as folder:
        work = Path(folder)
        port, peer_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
        relay = start_ours(work, port, (50000, 52000))
        peer = subprocess.Popen([tool("turnutils_peer"), "-L", "127.0.0.1", "-p", str(peer_port)],  # noqa: S603
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_udp(port)
            samples = work / "samples.txt"
            recorder = subprocess.Popen(  # noqa: S603
                [spy, "record", "--pid", str(relay.pid), "--duration", str(args.seconds), "--rate", "250",
                 "--format", "raw", "--output", str(samples), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            output = subprocess.run(uclient(args, port, peer_port), capture_output=True, text=True,  # noqa: S603
                                    timeout=args.seconds * 10 + 60, check=True).stdout
            recorder.wait(timeout=60)
            print(next((line for line in reversed(output.splitlines()) if "lost packets" in line), "no loss line"))
            for share, frame in self_time(samples, args.top):
                print(f"{share:5.1f}%  {frame}")
        finally:
            relay.terminate()
            peer.terminate()


if __name__ == "__main__":
    main()
