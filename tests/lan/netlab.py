"""A home LAN in network namespaces: a router with a bridge, the box, and phones, with no default route anywhere.

Layout (``tag`` keeps parallel runs apart; every namespace is deleted by name on exit)::

    oc<tag>-box  eth0 ──┐
    oc<tag>-ph1  eth0 ──┼── br0 in oc<tag>-lan (the home router: 192.168.50.1, 192.168.60.1, fd42:50::1, fd42:60::1)
    oc<tag>-ph2  eth0 ──┘

Every host has link-local IPv6 and routes only to the home's own prefixes (192.168.0.0/16 and fd42::/16) through
the router, never a default route: a home network with the internet down. Nothing is linked to the host's own
interfaces. Bridge ports can be isolated (Wi-Fi client isolation) and a phone can change subnet mid-call; a host
can have a second interface on the bridge, or be unplugged (loopback only: a box with no LAN).

Every test that builds namespaces does it here: tests/lan/conftest.py has the module's home (``home``) and a
fresh LAN per test (``lan``).
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

SUBNETS = {"main": ("192.168.50", "fd42:50:"), "other": ("192.168.60", "fd42:60:")}
HOME_PREFIXES = ("192.168.0.0/16", "fd42::/16")
LAN_PREFIXES = tuple(ipaddress.ip_network(p) for p in (*HOME_PREFIXES, "fe80::/10"))


class NetlabError(RuntimeError):
    """A command that builds the LAN failed."""


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command; a failure raises with its output."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetlabError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
    return done


@dataclass
class Host:
    """One namespace on the LAN: its name, its bridge port and the addresses it holds now."""

    name: str  # the short role name: box, ph1, ph2
    netns: str
    port: str  # its veth end on the bridge, in the router's namespace
    index: int  # the host part of its addresses
    ipv4: str | None = None
    ipv6: str | None = None
    subnet: str = "main"
    more_ports: list[str] = field(default_factory=list)  # bridge ports of its interfaces beyond eth0
    plugged: bool = True

    def exec_argv(self, *argv: str) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def ip(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "-n", self.netns, *argv, check=check)


@dataclass
class Lan:
    """The LAN; use as a context manager so the namespaces go away whatever happens."""

    tag: str = field(default_factory=lambda: secrets.token_hex(2))
    hosts: dict[str, Host] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)

    @property
    def router(self) -> str:
        return f"oc{self.tag}-lan"

    def __enter__(self) -> Lan:
        try:
            self._make_router()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _netns(self, name: str) -> str:
        netns = f"oc{self.tag}-{name}"
        run("ip", "netns", "add", netns)
        self.created.append(netns)
        run("ip", "-n", netns, "link", "set", "lo", "up")
        for key in ("all", "default"):  # addresses usable at once: no duplicate address detection on a test LAN
            run("ip", "netns", "exec", netns, "sysctl", "-qw", f"net.ipv6.conf.{key}.accept_dad=0")
        return netns

    def _make_router(self) -> None:
        netns = self._netns("lan")
        run("ip", "-n", netns, "link", "add", "br0", "type", "bridge")
        # Multicast (mDNS) is flooded to every port as a home switch does, with no snooping to learn first.
        run("ip", "-n", netns, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
        run("ip", "-n", netns, "link", "set", "br0", "up")
        for v4, v6 in SUBNETS.values():
            run("ip", "-n", netns, "addr", "add", f"{v4}.1/24", "dev", "br0")
            run("ip", "-n", netns, "addr", "add", f"{v6}:1/64", "dev", "br0", "nodad")
        for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
            run("ip", "netns", "exec", netns, "sysctl", "-qw", key)

    def add_host(self, name: str, index: int, ipv4: bool = True, ipv6: bool = True, subnet: str = "main") -> Host:
        """A host on the bridge with ``<subnet>.<index>`` addresses and routes to the home's prefixes."""
        netns = self._netns(name)
        host = Host(name=name, netns=netns, port=f"p-{name}", index=index)
        self._plug(host, host.port, "eth0")
        self.hosts[name] = host
        self.move(host, subnet, ipv4=ipv4, ipv6=ipv6)
        return host

    def _plug(self, host: Host, port: str, dev: str) -> None:
        """A veth from the bridge (``port``) to ``host`` (``dev``), both ends up."""
        run("ip", "-n", self.router, "link", "add", port, "type", "veth", "peer", "name", dev, "netns", host.netns)
        run("ip", "-n", self.router, "link", "set", port, "master", "br0", "up")
        run("ip", "netns", "exec", host.netns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.accept_dad=0")
        host.ip("link", "set", dev, "up")

    def add_interface(self, host: Host, subnet: str, ipv4: bool = True, ipv6: bool = True) -> str:
        """One more interface of ``host`` on the bridge, with ``<subnet>.<index>`` addresses and no route beyond
        that subnet (a box on two networks); returns the device's name (eth1, eth2, ...)."""
        number = len(host.more_ports) + 1
        port, dev = f"p-{host.name}-{number}", f"eth{number}"
        self._plug(host, port, dev)
        host.more_ports.append(port)
        v4, v6 = SUBNETS[subnet]
        if ipv4:
            host.ip("addr", "add", f"{v4}.{host.index}/24", "dev", dev)
        if ipv6:
            host.ip("addr", "add", f"{v6}:{host.index}/64", "dev", dev, "nodad")
        return dev

    def unplug(self, host: Host) -> None:
        """Pull ``host``'s cables: its interfaces go with their bridge ports and only loopback is left."""
        for port in (host.port, *host.more_ports):
            run("ip", "-n", self.router, "link", "del", port)
        host.more_ports.clear()
        host.ipv4 = host.ipv6 = None
        host.plugged = False

    def move(self, host: Host, subnet: str, ipv4: bool = True, ipv6: bool = True) -> None:
        """Give ``host`` addresses on ``subnet`` instead of the ones it had (a phone joining another network)."""
        v4, v6 = SUBNETS[subnet]
        for old, plen in ((host.ipv4, 24), (host.ipv6, 64)):
            if old:
                host.ip("addr", "del", f"{old}/{plen}", "dev", "eth0")
        host.subnet = subnet
        host.ipv4 = f"{v4}.{host.index}" if ipv4 else None
        host.ipv6 = f"{v6}:{host.index}" if ipv6 else None
        if host.ipv4:
            host.ip("addr", "add", f"{host.ipv4}/24", "dev", "eth0")
            host.ip("route", "replace", HOME_PREFIXES[0], "via", f"{v4}.1")
        if host.ipv6:
            host.ip("addr", "add", f"{host.ipv6}/64", "dev", "eth0", "nodad")
            host.ip("-6", "route", "replace", HOME_PREFIXES[1], "via", f"{v6}:1")

    def isolate(self, *hosts: Host) -> None:
        """Wi-Fi client isolation: these ports cannot reach each other, only the ports that are not isolated."""
        for host in hosts:
            run("ip", "-n", self.router, "link", "set", "dev", host.port, "type", "bridge_slave", "isolated", "on")

    def guest_network(self, phone: Host, box: Host, tcp_ports: Sequence[int]) -> None:
        """Between ``phone`` and ``box`` only TCP to ``tcp_ports`` passes (plus ARP and ICMPv6 neighbour
        discovery): a restrictive guest network that blocks UDP and every other port."""
        table = f"bridge oc{self.tag}"
        ports = ", ".join(str(port) for port in tcp_ports)
        rules = [f"add table {table}",
                 f"add chain {table} forward {{ type filter hook forward priority 0; policy accept; }}"]
        rules += [
            f"add rule {table} forward iifname {phone.port} oifname {box.port} meta l4proto udp drop",
            f"add rule {table} forward iifname {box.port} oifname {phone.port} meta l4proto udp drop",
            f"add rule {table} forward iifname {phone.port} oifname {box.port} tcp dport != {{ {ports} }} drop",
        ]
        run("ip", "netns", "exec", self.router, "nft", "\n".join(rules))

    def reset(self) -> None:
        """Back to the plain LAN: no isolated port, no filter, every host on the main subnet with both families."""
        run("ip", "netns", "exec", self.router, "nft", "delete", "table", "bridge", f"oc{self.tag}", check=False)
        for host in self.hosts.values():
            if not host.plugged:
                continue
            run("ip", "-n", self.router, "link", "set", "dev", host.port, "type", "bridge_slave", "isolated", "off")
            if host.subnet != "main" or not (host.ipv4 and host.ipv6):
                self.move(host, "main")

    def port_names(self) -> dict[int, str]:
        """The router's interfaces by ifindex (for reading a capture)."""
        links = json.loads(run("ip", "-n", self.router, "-j", "link").stdout)
        return {link["ifindex"]: link["ifname"] for link in links}

    def remove(self) -> None:
        """Delete every namespace this LAN made (their veths go with them)."""
        for netns in reversed(self.created):
            run("ip", "netns", "del", netns, check=False)
        self.created.clear()


def leftover_namespaces(tag: str) -> Sequence[str]:
    """Namespaces of ``tag`` still present (a test asserts there are none after removal)."""
    listed = run("ip", "netns", "list").stdout.split()
    return [name for name in listed if name.startswith(f"oc{tag}-")]
