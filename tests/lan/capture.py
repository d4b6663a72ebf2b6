"""tcpdump on the LAN's router for a whole run, and a reader that counts what each host sent where.

The capture runs on every interface of the router's namespace (``-i any``: LINUX_SLL2 frames that carry the
interface index and the direction). A packet a host sends is counted once: as it enters the host's bridge port.
"""

from __future__ import annotations

import ipaddress
import struct
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.lan.netlab import LAN_PREFIXES, Lan
from tests.support import stop_process

LINKTYPE_LINUX_SLL2 = 276
OUTGOING = 4  # SLL2 packet type: sent by this namespace, not received on the port
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
UDP, TCP, HOP_BY_HOP = 17, 6, 0


@dataclass(frozen=True)
class Packet:
    """One IP packet as it entered a bridge port."""

    port: str
    src: ipaddress.IPv4Address | ipaddress.IPv6Address
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address
    proto: int
    sport: int | None
    dport: int | None

    @property
    def is_dns(self) -> bool:
        """A unicast DNS query (port 53); mDNS (5353) is multicast on the LAN and counted apart."""
        return self.dport == 53

    @property
    def is_mdns(self) -> bool:
        return self.dport == 5353 or self.sport == 5353

    @property
    def leaves_lan(self) -> bool:
        """Addressed outside the home's prefixes and not multicast: what must never be sent."""
        return not self.dst.is_multicast and not any(self.dst in net for net in LAN_PREFIXES) \
            and self.dst != ipaddress.ip_address("255.255.255.255")


def _ports(proto: int, payload: bytes) -> tuple[int | None, int | None]:
    if proto in (UDP, TCP) and len(payload) >= 4:
        sport, dport = struct.unpack("!HH", payload[:4])
        return sport, dport
    return None, None


def _ip(frame: bytes, ethertype: int) -> tuple[object, object, int, bytes] | None:
    if ethertype == ETH_IPV4 and len(frame) >= 20:
        ihl = (frame[0] & 0x0F) * 4
        return (ipaddress.IPv4Address(frame[12:16]), ipaddress.IPv4Address(frame[16:20]), frame[9], frame[ihl:])
    if ethertype == ETH_IPV6 and len(frame) >= 40:
        proto, payload = frame[6], frame[40:]
        if proto == HOP_BY_HOP and len(payload) >= 2:  # MLD reports carry one hop-by-hop header
            proto, payload = payload[0], payload[(payload[1] + 1) * 8:]
        return (ipaddress.IPv6Address(frame[8:24]), ipaddress.IPv6Address(frame[24:40]), proto, payload)
    return None


def read_pcap(path: Path, ports: dict[int, str]) -> Iterator[Packet]:
    """The IP packets that entered the bridge ports in ``path`` (a LINUX_SLL2 capture)."""
    data = path.read_bytes()
    if len(data) < 24:
        return
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != LINKTYPE_LINUX_SLL2:
        raise ValueError(f"expected a LINUX_SLL2 capture, got link type {linktype}")
    offset = 24
    while offset + 16 <= len(data):
        caplen = struct.unpack(endian + "I", data[offset + 8:offset + 12])[0]
        record = data[offset + 16:offset + 16 + caplen]
        offset += 16 + caplen
        if len(record) < 20:
            continue
        ethertype, _, ifindex = struct.unpack("!HHI", record[:8])
        packet_type = record[10]
        port = ports.get(ifindex, "")
        if packet_type == OUTGOING or not port.startswith("p-"):
            continue
        parsed = _ip(record[20:], ethertype)
        if parsed is None:
            continue
        src, dst, proto, payload = parsed
        sport, dport = _ports(proto, payload)
        yield Packet(port[2:], src, dst, proto, sport, dport)  # type: ignore[arg-type]


@dataclass
class Tally:
    """What the capture saw, per sending host."""

    packets: Counter[str] = field(default_factory=Counter)
    multicast: Counter[str] = field(default_factory=Counter)
    mdns: Counter[str] = field(default_factory=Counter)
    dns_queries: Counter[str] = field(default_factory=Counter)
    outside: list[Packet] = field(default_factory=list)

    @classmethod
    def of(cls, packets: Iterator[Packet]) -> Tally:
        tally = cls()
        for packet in packets:
            tally.packets[packet.port] += 1
            if packet.dst.is_multicast:
                tally.multicast[packet.port] += 1
            if packet.is_mdns:
                tally.mdns[packet.port] += 1
            if packet.is_dns:
                tally.dns_queries[packet.port] += 1
            if packet.leaves_lan:
                tally.outside.append(packet)
        return tally

    def summary(self) -> dict[str, dict[str, int]]:
        hosts = sorted(self.packets)
        return {host: {"packets": self.packets[host], "multicast": self.multicast[host], "mdns": self.mdns[host],
                       "dns_queries": self.dns_queries[host],
                       "outside": sum(1 for p in self.outside if p.port == host)} for host in hosts}


class Capture:
    """tcpdump on every interface of the router's namespace, from start to stop."""

    def __init__(self, lan: Lan, path: Path) -> None:
        self.lan, self.path = lan, path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Capture:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.lan.router, "tcpdump", "-i", "any", "-y", "LINUX_SLL2", "-n", "-U",
             "-s", "256", "-w", str(self.path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not (self.path.exists() and self.path.stat().st_size >= 24):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"tcpdump did not start: {err}")
            time.sleep(0.05)
        return self

    def stop(self) -> Tally:
        """Stop tcpdump (it flushes on SIGTERM) and tally the capture."""
        stop_process(self.proc, timeout=10)
        return Tally.of(read_pcap(self.path, self.lan.port_names()))
