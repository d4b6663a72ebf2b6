"""A counting UDP echo peer for bench/turn_relay.py: every datagram goes straight back to its sender.

It stands where coturn's ``turnutils_peer`` stood, and counts what crossed the relay, the same way for any
server and any client transport: the datagrams it received (client -> peer crossings of the relay) and the ones
it echoed (handed to the relay for the peer -> client crossing). One blocking ``recvfrom_into`` / ``sendto``
pair a datagram, in a process of its own, with a large receive buffer; the kernel's count of datagrams dropped
at its socket (the ``drops`` column of /proc/net/udp) says whether it kept up.

    python bench/echo_peer.py [PORT]    # binds 127.0.0.1:PORT (0, the default: any free port)

It prints ``port N`` once bound, then on each SIGUSR1 one line ``received R echoed E dropped D active S``:
totals since it started (the caller takes differences), and the seconds from the first datagram after the
previous report to the latest one (the time a run's traffic lasted at the peer). SIGTERM ends it.
"""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType

RECEIVE_BUFFER = 4 * 1024 * 1024  # bytes asked for; the kernel caps it at net.core.rmem_max
MAX_DATAGRAM = 65535


class Counters:
    """Datagrams received and echoed so far, and when the first and the last arrived since the last report."""

    def __init__(self) -> None:
        self.received = 0
        self.echoed = 0
        self.first: float | None = None
        self.last = 0.0

    def report(self, port: int) -> str:
        """The totals, and the seconds from the first datagram since the last report to the latest one."""
        active = self.last - self.first if self.first is not None else 0.0
        self.first = None
        return f"received {self.received} echoed {self.echoed} dropped {dropped(port)} active {active:.6f}"


def dropped(port: int) -> int:
    """Datagrams the kernel dropped at the UDP socket bound to 127.0.0.1:``port`` (its queue was full)."""
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local:
            return int(fields[-1])
    return 0


def serve(sock: socket.socket, counters: Counters) -> None:
    """Echo forever. A plain loop, not an event loop: two system calls a datagram and nothing else."""
    buffer = bytearray(MAX_DATAGRAM)
    view = memoryview(buffer)
    while True:
        length, sender = sock.recvfrom_into(buffer)
        counters.last = time.monotonic()
        if counters.first is None:
            counters.first = counters.last
        counters.received += 1
        try:
            sock.sendto(view[:length], sender)
        except OSError:
            continue
        counters.echoed += 1


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    counters = Counters()

    def report(_signal: int, _frame: FrameType | None) -> None:
        print(counters.report(port), flush=True)

    signal.signal(signal.SIGUSR1, report)
    signal.signal(signal.SIGTERM, lambda _signal, _frame: sys.exit(0))
    print(f"port {port}", flush=True)
    serve(sock, counters)


if __name__ == "__main__":
    main()
