"""What ``turn.advertise: auto`` resolves to on a real LAN, and the loopback-only rule, in network namespaces.

A LAN of its own per test (tests/lan/netlab.py) with no default route (the internet-down home LAN of issue 10):
the box at 192.168.50.2 and fd42:50::2, later on a second network too; and a box with no LAN at all. The real
code and a real server (the tests' config, plain HTTP) run in the box's namespace. The pure functions are tested
in tests/test_lan.py.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.lan.box import Box, fetch, run_in
from tests.lan.netlab import Host, Lan
from tests.support import test_config

BOX_V4, BOX_V6 = "192.168.50.2", "fd42:50::2"
OTHER_V4, OTHER_ROUTER = "192.168.60.2", "192.168.60.1"  # the box's second network, where the route to 10/8 is

RESOLVE = ("import json; from opencall.lan import auto_addresses, routed_address; "
           "print(json.dumps([routed_address(), auto_addresses()]))")


def _resolve(host: Host) -> tuple[str | None, list[str]]:
    done = run_in(host, sys.executable, "-c", RESOLVE)
    assert done.returncode == 0, done.stderr
    routed, addresses = json.loads(done.stdout)
    return routed, addresses


def _get(box: Box, path: str) -> tuple[int, Any]:
    """GET ``path`` from inside the box's namespace, at 127.0.0.1."""
    return fetch(box.host, box.url("127.0.0.1", path))


def test_a_lan_without_a_default_route_is_advertised(lan: Lan, boxes: Callable[..., Box], tmp_path: Path) -> None:
    """Internet down: no route to 10.255.255.255, yet the LAN addresses are chosen, each offered, and the
    relay relays from the IPv4 and the IPv6 one."""
    box_host = lan.add_host("box", 2)
    assert _resolve(box_host) == (None, [BOX_V4, BOX_V6])

    server = boxes(box_host, {"server": {"host": "0.0.0.0"}, "turn": {"listen": "::", "advertise": "auto"}},
                   config=test_config(tmp_path)).start()
    status, health = _get(server, "/healthz")
    assert (status, health["status"], health["relay"]) == (200, "ok", "ok"), health
    status, body = _get(server, "/api/ice-config")
    port = server.config["turn"]["port"]
    urls = [entry["urls"] for entry in body["iceServers"]]
    assert urls == [f"{scheme}:{host}:{port}{query}" for host in (BOX_V4, f"[{BOX_V6}]")
                    for scheme, query in (("stun", ""), ("turn", ""), ("turn", "?transport=tcp"))]
    log = server.log()
    assert f"relaying from {BOX_V4} and {BOX_V6}" in log
    assert f"advertised as {BOX_V4}, {BOX_V6}" in log and "loopback only" not in log
    server.stop()

    # A second LAN with a route to 10/8: the route's pick comes first, then the other addresses.
    dev = lan.add_interface(box_host, "other", ipv6=False)
    box_host.ip("route", "add", "10.0.0.0/8", "via", OTHER_ROUTER, "dev", dev)
    assert _resolve(box_host) == (OTHER_V4, [OTHER_V4, BOX_V4, BOX_V6])


def test_a_box_without_a_lan_is_unhealthy_when_serving_all_interfaces(lan: Lan, boxes: Callable[..., Box],
                                                                      tmp_path: Path) -> None:
    """Only loopback, listening on 0.0.0.0 (inside the namespace): WARNING, /healthz 503, doctor FAIL."""
    box_host = lan.add_host("nolan", 2)
    lan.unplug(box_host)
    assert _resolve(box_host) == (None, ["127.0.0.1"])
    server = boxes(box_host, {"server": {"host": "0.0.0.0"}, "turn": {"listen": "0.0.0.0", "advertise": "auto"}},
                   config=test_config(tmp_path)).start()
    status, health = _get(server, "/healthz")
    assert (status, health["status"], health["database"], health["relay"]) == (
        503, "down", "ok", "loopback only"), health
    warnings = [line for line in server.log().splitlines() if "WARNING" in line and "loopback only" in line]
    assert len(warnings) == 1, server.log()
    assert "turn.advertise: auto resolves to 127.0.0.1" in warnings[0]
    assert "Fix: set turn.advertise to this box's LAN address" in warnings[0]
    assert "bring up the LAN interface" in warnings[0]

    doctor = run_in(box_host, sys.executable, "-m", "opencall", "doctor", "--config", str(server.config_path))
    assert doctor.returncode == 1, doctor.stdout
    lines = doctor.stdout.splitlines()
    failed = [i for i, line in enumerate(lines) if line.split()[:1] == ["FAIL"]]
    assert [lines[i].split()[1:3] for i in failed] == [["relay", "address"]], doctor.stdout
    assert "advertised on loopback only" in lines[failed[0]]
    assert "fix: set turn.advertise to this box's LAN address" in lines[failed[0] + 1]
    assert "PASS  relay " in doctor.stdout  # the relay itself works, on this host
