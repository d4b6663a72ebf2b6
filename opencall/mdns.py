"""The box announces itself on the LAN with multicast DNS, so a phone opens ``https://<name>.local:8443/``.

Announced (RFC 6762 multicast DNS, RFC 6763 DNS-SD), by python-zeroconf's own responder:

- ``<name>.local`` A and AAAA records for the box's LAN addresses;
- one service, ``OpenCall on <name>._https._tcp.local.`` (``_http._tcp`` when ``server.tls`` is off), with
  SRV ``<name>.local:<server.port>`` and TXT ``path=/``.

The responder shares UDP port 5353 with Avahi when the host runs it (both set SO_REUSEADDR/SO_REUSEPORT), so
the box behaves the same with or without Avahi (docs/operations.md). The addresses are checked every
:data:`REFRESH_EVERY` seconds and re-announced when they change (a new DHCP lease). Nothing here may take the
server down: when multicast DNS cannot start, one WARNING is logged and the box still serves by address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ifaddr
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from opencall.config import Config, MdnsConfig
from opencall.lan import lan_addresses, routed_address
from opencall.services.tasks import cancel
from turn.netinfo import host_interfaces

log = logging.getLogger("opencall.mdns")

HTTPS_SERVICE = "_https._tcp.local."
HTTP_SERVICE = "_http._tcp.local."
AVAHI_SOCKET = Path("/run/avahi-daemon/socket")
REFRESH_EVERY = 30.0  # seconds between checks of the box's addresses
STOP_TIMEOUT = 3.0  # seconds shutdown waits for the goodbye packets at most
FALLBACK_NAME = "opencall"


def host_label(hostname: str | None = None) -> str:
    """This host's name as one lower-case DNS label (RFC 1123): ``My_Box.lan`` -> ``my-box``."""
    first = (hostname if hostname is not None else socket.gethostname()).lower().split(".", 1)[0]
    label = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", first)).strip("-")[:63].rstrip("-")
    return label or FALLBACK_NAME


def local_name(mdns: MdnsConfig) -> str:
    """The label announced as ``<label>.local``: ``mdns.name``, or this host's name for ``auto``."""
    return host_label() if mdns.name == "auto" else mdns.name


def box_addresses() -> list[str]:
    """The box's LAN addresses (no loopback, link-local, multicast or reserved ones): what ``<name>.local``
    resolves to. The same as ``turn.advertise: auto``, without its loopback fallback."""
    return list(lan_addresses(host_interfaces(), routed_address()))


def avahi_running(socket_path: Path | None = None) -> bool:
    """Whether the host's Avahi daemon runs: its control socket (:data:`AVAHI_SOCKET`) exists."""
    return (socket_path or AVAHI_SOCKET).exists()


@dataclass(frozen=True)
class Announcement:
    """What the box announces: its ``.local`` name and the web app's service."""

    name: str  # one DNS label, without .local
    port: int
    tls: bool

    @classmethod
    def from_config(cls, config: Config) -> Announcement:
        return cls(name=local_name(config.mdns), port=config.server.port, tls=config.tls_enabled)

    @property
    def server(self) -> str:
        return f"{self.name}.local."

    @property
    def service_type(self) -> str:
        return HTTPS_SERVICE if self.tls else HTTP_SERVICE

    @property
    def instance(self) -> str:
        return f"OpenCall on {self.name}.{self.service_type}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.name}.local:{self.port}/"

    def service_info(self, addresses: list[str], instance: str | None = None) -> AsyncServiceInfo:
        """The DNS-SD records of the service for ``addresses``; zeroconf adds A/AAAA for the server name.

        ``instance`` is the name registered, when probing had to rename :attr:`instance` (RFC 6762 §9).
        """
        return AsyncServiceInfo(self.service_type, instance or self.instance, port=self.port,
                                properties={"path": "/"}, server=self.server, parsed_addresses=addresses)


class Announcer:
    """Announces an :class:`Announcement` while the server runs: :meth:`start`, then :meth:`stop`."""

    def __init__(self, announcement: Announcement, addresses: Callable[[], list[str]] = box_addresses,
                 refresh_every: float = REFRESH_EVERY) -> None:
        self.announcement = announcement
        self._addresses = addresses
        self._refresh_every = refresh_every
        self._zeroconf: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def announced(self) -> bool:
        """Whether the service is registered on the LAN right now."""
        return self._info is not None

    def start(self) -> None:
        """Open the responder and register in the background (probing takes about a second); never raises."""
        if avahi_running():
            log.info("Avahi runs on this host: announcing beside it (both share UDP port 5353)")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="opencall-mdns")

    async def _run(self) -> None:
        announcement = self.announcement
        try:
            addresses = self._addresses()
            self._zeroconf = _open_responder()
            info = announcement.service_info(addresses)
            await (await self._zeroconf.async_register_service(info, allow_name_change=True))
            self._info = info
        except Exception as exc:  # whatever breaks, the server keeps serving
            log.warning("mDNS announcement off: %s (the box is still reachable by its address)",
                        _describe(exc))
            await self._close()
            return
        log.info("announcing %s on the LAN (mDNS)", announcement.url)
        if not addresses:
            log.warning("mDNS: no LAN address yet; %s.local resolves once one appears", announcement.name)
        await self._keep_current(addresses)

    async def _keep_current(self, addresses: list[str]) -> None:
        """Re-announce when the box's addresses change (checked every ``refresh_every`` seconds)."""
        failed: list[str] | None = None  # the addresses last failed for: warn once per change, not per try
        while True:
            await asyncio.sleep(self._refresh_every)
            current = self._addresses()
            if sorted(current) == sorted(addresses) or self._zeroconf is None or self._info is None:
                continue
            try:
                interfaces = multicast_interfaces()
                await self._zeroconf.async_update_interfaces(interfaces, _ip_version(interfaces))
                info = self.announcement.service_info(current, instance=self._info.name)
                await (await self._zeroconf.async_update_service(info))
            except Exception as exc:
                if current != failed:
                    log.warning("mDNS: could not announce the new addresses %s: %s", current, _describe(exc))
                failed = current
                continue
            self._info, addresses, failed = info, current, None
            log.info("mDNS: %s.local now answers %s", self.announcement.name, ", ".join(current) or "nothing")

    async def stop(self) -> None:
        """Withdraw the service with goodbye packets (TTL 0, RFC 6762 §10.1) and close the responder."""
        await cancel(self._task)
        self._task = None
        try:
            await asyncio.wait_for(self._withdraw(), STOP_TIMEOUT)
        except Exception as exc:  # shutdown goes on regardless
            log.warning("mDNS: goodbye not sent: %s", _describe(exc))
        await self._close()

    async def _withdraw(self) -> None:
        if self._zeroconf is not None and self._info is not None:
            info, self._info = self._info, None
            await (await self._zeroconf.async_unregister_service(info))

    async def _close(self) -> None:
        zeroconf, self._zeroconf = self._zeroconf, None
        if zeroconf is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(zeroconf.async_close(), STOP_TIMEOUT)


def multicast_interfaces() -> list[str | int]:
    """The interfaces the responder listens and answers on: every one but loopback, each once (its first IPv4
    address, and its index when it has IPv6). Sending to ff02::fb on ``lo`` fails, so loopback is left out."""
    chosen: list[str | int] = []
    for adapter in ifaddr.get_adapters():
        ipv4 = [ip.ip for ip in adapter.ips if isinstance(ip.ip, str)]
        ipv6 = [ip.ip[0] for ip in adapter.ips if not isinstance(ip.ip, str)]
        if any(ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in ipv4 + ipv6):
            continue
        if ipv4:
            chosen.append(ipv4[0])
        if ipv6 and adapter.index is not None:
            chosen.append(adapter.index)
    return chosen


def _ip_version(interfaces: list[str | int]) -> IPVersion:
    v4, v6 = any(isinstance(i, str) for i in interfaces), any(isinstance(i, int) for i in interfaces)
    return IPVersion.All if v4 and v6 else IPVersion.V6Only if v6 else IPVersion.V4Only


def _open_responder() -> AsyncZeroconf:
    """A responder on :func:`multicast_interfaces`."""
    interfaces = multicast_interfaces()
    if not interfaces:
        raise RuntimeError("no network interface but loopback")
    return AsyncZeroconf(interfaces=interfaces, ip_version=_ip_version(interfaces))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
