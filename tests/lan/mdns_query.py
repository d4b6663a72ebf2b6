"""A phone's mDNS lookup of the box: ``<NAME>.local`` and its web service, with python-zeroconf's querier.

Run it inside a phone's network namespace (``ip netns exec PHONE python -m tests.lan.mdns_query ...``)::

    python -m tests.lan.mdns_query NAME [--timeout 5] [--type _https._tcp.local. ...]
                                        [--fetch /healthz --cafile ca.crt] [--wait-goodbye SECONDS]

It prints one JSON object on one line, and exits 0 when ``NAME.local`` resolved, 1 when nothing answered::

    {"name": "opencall-test.local.",
     "addresses": ["192.168.77.2", "fd00:77::2"],              # A and AAAA records of NAME.local
     "services": [{"instance": "OpenCall on opencall-test._https._tcp.local.", "type": "_https._tcp.local.",
                   "server": "opencall-test.local.", "port": 8443, "txt": {"path": "/"},
                   "addresses": ["192.168.77.2", "fd00:77::2"]}],   # instances whose SRV names NAME.local
     "fetch": {"url": "https://opencall-test.local:8443/healthz", "address": "192.168.77.2", "status": 200}}

``fetch`` (only with ``--fetch PATH``) is a GET of that path on the first service, connected to the resolved
address with TLS verified for ``NAME.local`` against ``--cafile`` (plain HTTP for an ``_http._tcp`` service):
what a phone's browser does with ``https://NAME.local:PORT/PATH``. It holds ``"error"`` instead of
``"status"`` when that failed.

With ``--wait-goodbye SECONDS`` it then keeps listening and prints a second line once the box withdrew its
records (mDNS goodbye packets: the same records with TTL 0, RFC 6762 §10.1), or when SECONDS passed::

    {"goodbye": true, "records": ["A opencall-test.local.", "PTR _https._tcp.local.", ...]}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import socket
import ssl
import sys
import time
from typing import Any

from zeroconf import (
    AddressResolver,
    DNSRecord,
    InterfaceChoice,
    IPVersion,
    RecordUpdate,
    RecordUpdateListener,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

SERVICE_TYPES = ("_https._tcp.local.", "_http._tcp.local.")
RECORD_TYPES = {1: "A", 28: "AAAA", 12: "PTR", 33: "SRV", 16: "TXT", 47: "NSEC"}


class Goodbyes(RecordUpdateListener):
    """Collects the records of NAME.local and its services that arrive with TTL 0."""

    def __init__(self, host: str) -> None:
        self.host = host.lower()
        self.instances: set[str] = set()
        self.records: list[str] = []
        self.event = asyncio.Event()

    def _ours(self, record: DNSRecord) -> bool:
        name = record.name.lower()
        alias = getattr(record, "alias", "").lower()
        return name == self.host or name in self.instances or alias in self.instances

    def async_update_records(self, zc: Zeroconf, now: float, records: list[RecordUpdate]) -> None:
        for update in records:
            record = update.new
            if record.ttl == 0 and self._ours(record):
                self.records.append(f"{RECORD_TYPES.get(record.type, record.type)} {record.name}")
                if record.name.lower() == self.host:
                    self.event.set()


async def resolve(zc: AsyncZeroconf, name: str, timeout: float, types: list[str]) -> dict[str, Any]:
    """NAME.local's addresses and the services whose SRV record names it, within ``timeout`` seconds."""
    host = f"{name}.local."
    deadline = time.monotonic() + timeout
    seen: list[tuple[str, str]] = []

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is not ServiceStateChange.Removed and (service_type, name) not in seen:
            seen.append((service_type, name))

    browser = AsyncServiceBrowser(zc.zeroconf, types, handlers=[on_change])
    try:
        resolver = AddressResolver(host)
        await resolver.async_request(zc.zeroconf, timeout * 1000)
        addresses = resolver.parsed_addresses()
        services: list[dict[str, Any]] = []
        checked: set[tuple[str, str]] = set()
        while time.monotonic() < deadline and not (addresses and services):
            for service_type, instance in [s for s in seen if s not in checked]:
                checked.add((service_type, instance))
                info = AsyncServiceInfo(service_type, instance)
                left = max(deadline - time.monotonic(), 0.5)
                if await info.async_request(zc.zeroconf, left * 1000) and (info.server or "").lower() == host:
                    services.append({
                        "instance": instance, "type": service_type, "server": info.server, "port": info.port,
                        "txt": info.decoded_properties, "addresses": info.parsed_addresses(),
                    })
            if not (addresses and services):
                await asyncio.sleep(0.1)
        if not addresses and services:  # the service's address records answered NAME.local too
            addresses = services[0]["addresses"]
    finally:
        await browser.async_cancel()
    return {"name": host, "addresses": addresses, "services": services}


def fetch(name: str, service: dict[str, Any], path: str, cafile: str | None, timeout: float) -> dict[str, Any]:
    """GET ``path`` of the service as a browser opening ``https://NAME.local:PORT/PATH`` would."""
    tls = service["type"].startswith("_https.")
    address = service["addresses"][0] if service["addresses"] else ""
    host = f"{name}.local"
    answer: dict[str, Any] = {"url": f"{'https' if tls else 'http'}://{host}:{service['port']}{path}",
                              "address": address}
    try:
        connection = socket.create_connection((address, service["port"]), timeout=timeout)
        if tls:
            context = ssl.create_default_context(cafile=cafile)
            connection = context.wrap_socket(connection, server_hostname=host)  # verifies the name
        client = http.client.HTTPConnection(host, service["port"], timeout=timeout)
        client.sock = connection
        client.request("GET", path, headers={"Host": f"{host}:{service['port']}"})
        answer["status"] = client.getresponse().status
        client.close()
    except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
        answer["error"] = f"{type(exc).__name__}: {exc}"
    return answer


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lan.mdns_query", description=__doc__.split("\n")[0])
    parser.add_argument("name", help="the box's mDNS name, without .local")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for answers (default 5)")
    parser.add_argument("--type", action="append", dest="types", help=f"service types to browse {SERVICE_TYPES}")
    parser.add_argument("--fetch", metavar="PATH", help="GET PATH of the first service found")
    parser.add_argument("--cafile", help="CA certificate that --fetch trusts (the box's /ca.crt)")
    parser.add_argument("--wait-goodbye", type=float, metavar="SECONDS",
                        help="then wait up to SECONDS for the box's goodbye packets and print a second line")
    args = parser.parse_args(argv)
    name = args.name.lower().removesuffix(".").removesuffix(".local")
    async with AsyncZeroconf(interfaces=InterfaceChoice.All, ip_version=IPVersion.All) as zc:
        result = await resolve(zc, name, args.timeout, args.types or list(SERVICE_TYPES))
        if args.fetch and result["services"]:
            result["fetch"] = await asyncio.to_thread(fetch, name, result["services"][0], args.fetch, args.cafile,
                                                      args.timeout)
        print(json.dumps(result), flush=True)
        if args.wait_goodbye is not None:
            goodbyes = Goodbyes(result["name"])
            goodbyes.instances = {service["instance"].lower() for service in result["services"]}
            zc.zeroconf.async_add_listener(goodbyes, None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(goodbyes.event.wait(), args.wait_goodbye)
            await asyncio.sleep(0.5)  # the rest of the same announcement (PTR, SRV, TXT) arrives with it
            print(json.dumps({"goodbye": goodbyes.event.is_set(), "records": sorted(set(goodbyes.records))}),
                  flush=True)
    return 0 if result["addresses"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
