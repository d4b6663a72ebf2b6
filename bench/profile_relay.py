"""Profile (not a test): where our relay spends its time under coturn's uclient load, with py-spy.

Starts ``python -m turn`` as bench/turn_relay.py does, a ``turnutils_peer`` echo, then ``turnutils_uclient``
against it while ``py-spy record`` samples the relay; prints the lines that hold the most samples (self time)
and the loss uclient saw. Everything binds to 127.0.0.1. Needs Debian's coturn package and py-spy (the bench
extra: ``pip install '.[bench]'``).

    python bench/profile_relay.py                  # 50 clients, ChannelData, 160-byte packets, -z 1
    python bench/profile_relay.py --mode send      # Send/Data indications
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.turn_relay import SECRET, start_ours, tool, wait_for_udp
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--mode", choices=("channel", "send"), default="channel")
    parser.add_argument("--length", type=int, default=160, help="payload bytes")
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
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
            load = [tool("turnutils_uclient"), "-c", "-m", str(args.clients), "-n", str(args.seconds * 1000),
                    "-l", str(args.length), "-z", "1", "-W", SECRET, "-u", "bench", "-p", str(port),
                    "-e", "127.0.0.1", "-r", str(peer_port), *(["-s"] if args.mode == "send" else []), "127.0.0.1"]
            output = subprocess.run(load, capture_output=True, text=True, timeout=args.seconds * 10 + 60,  # noqa: S603
                                    check=True).stdout
            recorder.wait(timeout=60)
            print(next((line for line in reversed(output.splitlines()) if "lost packets" in line), "no loss line"))
            for share, frame in self_time(samples, args.top):
                print(f"{share:5.1f}%  {frame}")
        finally:
            relay.terminate()
            peer.terminate()


if __name__ == "__main__":
    main()
