"""What ``turn.advertise: auto`` resolves to, where the relay binds, and the loopback-only rule.

The pure functions are fed interface lists; the namespace tests build a LAN with no default route (the
internet-down home LAN of issue 10) in network namespaces and run the real code and a real server there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from opencall.config import parse_config
from opencall.netinfo import is_lan_address, is_loopback, lan_addresses, url_host
from opencall.relay import loopback_only, loopback_problem, relay_addresses
from tests.support import test_config

HOME_LAN = ["127.0.0.1/8", "::1/128", "192.168.50.2/24", "fe80::1c2:3ff:fe44:5566%eth0/64", "fd42:50::2/64"]


def test_lan_addresses_without_a_route_come_from_the_interfaces() -> None:
    assert lan_addresses(HOME_LAN, None) == ("192.168.50.2", "fd42:50::2")


def test_the_routed_address_comes_first_then_ipv4_then_ipv6() -> None:
    interfaces = ["fd42:50::2/64", "192.168.50.2/24", "2001:db8:50::2/64", "10.8.0.1/24", "192.168.50.2/24"]
    assert lan_addresses(interfaces, "10.8.0.1") == ("10.8.0.1", "192.168.50.2", "fd42:50::2", "2001:db8:50::2")
    # The route's pick is offered even when the interface list missed it; never twice.
    assert lan_addresses(["192.168.50.2"], "172.16.0.9") == ("172.16.0.9", "192.168.50.2")


def test_loopback_link_local_unspecified_multicast_are_skipped() -> None:
    skipped = ["127.0.0.1/8", "127.0.1.1", "::1", "169.254.10.20/16", "fe80::1%eth0", "fe80::2/64", "0.0.0.0",
               "::", "224.0.0.251", "ff02::fb", "240.0.0.1"]
    assert lan_addresses(skipped, None) == ()
    assert lan_addresses(skipped, "169.254.10.20") == ()  # a link-local route pick is no better
    kept = ["10.1.2.3", "172.16.5.4", "192.168.1.10", "fd00::5", "2a01:4f8::1", "100.64.0.7"]
    assert lan_addresses(kept, None) == ("10.1.2.3", "172.16.5.4", "192.168.1.10", "100.64.0.7", "fd00::5",
                                         "2a01:4f8::1")


def test_interface_entries_may_be_ipaddress_objects() -> None:
    import ipaddress

    entries = [ipaddress.ip_interface("fd42:50::2/64"), ipaddress.ip_address("192.168.50.2"),
               ipaddress.ip_interface("127.0.0.1/8")]
    assert lan_addresses(entries, None) == ("192.168.50.2", "fd42:50::2")
    assert is_lan_address(ipaddress.ip_address("fd42:50::2"))
    assert not is_lan_address(ipaddress.ip_address("fe80::1"))


def test_loopback_names() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.3.2.1", "::1", "localhost", "LOCALHOST.", "box.localhost"]))
    assert not any(map(is_loopback, ["192.168.50.2", "fd42:50::2", "box.local", "opencall.example.org"]))
    assert url_host("fd42:50::2") == "[fd42:50::2]" and url_host("192.168.50.2") == "192.168.50.2"


def test_loopback_only_rule() -> None:
    assert loopback_only(["127.0.0.1"], ["0.0.0.0", "127.0.0.1"])
    assert loopback_only(["127.0.0.1"], ["127.0.0.1", "0.0.0.0"])
    assert loopback_only(["::1", "localhost"], ["::", "::1"])
    # Loopback advertised while listening on loopback: the tests' own setup, consistent and fine.
    assert not loopback_only(["127.0.0.1"], ["127.0.0.1", "127.0.0.1"])
    # One reachable address is enough; a LAN address is never "loopback only".
    assert not loopback_only(["127.0.0.1", "192.168.50.2"], ["0.0.0.0", "0.0.0.0"])
    assert not loopback_only(["192.168.50.2"], ["0.0.0.0", "0.0.0.0"])
    assert not loopback_only([], ["0.0.0.0"])


def test_loopback_problem_names_the_keys(tmp_path: Path) -> None:
    wildcard = parse_config({"server": {"host": "0.0.0.0"}, "turn": {"listen": "127.0.0.1"}}, tmp_path)
    problem = loopback_problem(wildcard, ("127.0.0.1",))
    assert problem is not None
    assert "turn.advertise: auto resolves to 127.0.0.1" in problem and "server.host is 0.0.0.0" in problem
    assert "turn.listen" not in problem
    assert loopback_problem(wildcard, ("192.168.50.2",)) is None
    off = parse_config({"turn": {"enabled": False}}, tmp_path)
    assert loopback_problem(off, ("127.0.0.1",)) is None
    local = parse_config({"server": {"host": "127.0.0.1"}, "turn": {"listen": "127.0.0.1", "advertise": "127.0.0.1"}},
                         tmp_path)
    assert loopback_problem(local, ("127.0.0.1",)) is None


def test_relay_addresses(tmp_path: Path) -> None:
    config = parse_config({}, tmp_path)
    assert relay_addresses(config, ("192.168.50.2", "10.0.0.4", "fd42:50::2", "2001:db8::2")) == (
        "192.168.50.2", "fd42:50::2")
    assert relay_addresses(config, ("192.168.50.2",)) == ("192.168.50.2", None)
    assert relay_addresses(config, ("fd42:50::2",)) == ("fd42:50::2", None)  # IPv6-only LAN: one IPv6 relay
    fixed = parse_config({"turn": {"relay_ip": "192.168.50.9"}}, tmp_path)
    assert relay_addresses(fixed, ("192.168.50.2", "fd42:50::2")) == ("192.168.50.9", None)
    named = parse_config({"turn": {"advertise": "box.example.org", "listen": "192.168.50.2"}}, tmp_path)
    assert relay_addresses(named, ("box.example.org",)) == ("192.168.50.2", None)


# ---------------------------------------------------------------------------------------------------------
# In network namespaces: a home LAN with no default route, and a box with no LAN at all.

FETCH = """
import json, sys, time, urllib.error, urllib.request
deadline = time.monotonic() + 30
while True:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
            print(json.dumps([response.status, json.loads(response.read())]))
    except urllib.error.HTTPError as exc:
        print(json.dumps([exc.code, json.loads(exc.read())]))
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
        continue
    break
"""

RESOLVE = ("import json; from opencall.netinfo import auto_addresses, routed_address; "
           "print(json.dumps([routed_address(), auto_addresses()]))")


def _ip(*args: str) -> None:
    """Run ``ip``; a missing ``ip`` is a failure (FileNotFoundError), never a skip."""
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def _in(ns: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENCALL_CONFIG"}
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout,
                          cwd="/", env=env)


def _resolve(ns: str) -> tuple[str | None, list[str]]:
    done = _in(ns, sys.executable, "-c", RESOLVE)
    assert done.returncode == 0, done.stderr
    routed, addresses = json.loads(done.stdout)
    return routed, addresses


def _get(ns: str, url: str) -> tuple[int, Any]:
    done = _in(ns, sys.executable, "-c", FETCH, url)
    assert done.returncode == 0, done.stderr
    status, body = json.loads(done.stdout)
    return status, body


@pytest.fixture
def namespaces() -> Iterator[list[str]]:
    """Names of the namespaces a test creates; each is deleted by name afterwards."""
    made: list[str] = []
    yield made
    for name in made:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)


def _namespace(made: list[str], role: str) -> str:
    name = f"oc{os.getpid()}-{role}"
    _ip("netns", "add", name)
    made.append(name)
    _ip("-n", name, "link", "set", "lo", "up")
    return name


def _link(box: str, peer: str, suffix: str, v4: str, v4_peer: str, v6: str | None = None) -> None:
    """A veth pair between two namespaces (nothing on the host's own network), addresses on both ends."""
    here, there = f"lan{suffix}", f"peer{suffix}"
    _ip("-n", box, "link", "add", here, "type", "veth", "peer", "name", there, "netns", peer)
    _ip("-n", box, "addr", "add", v4, "dev", here)
    if v6 is not None:
        _ip("-n", box, "addr", "add", v6, "dev", here, "nodad")
    _ip("-n", peer, "addr", "add", v4_peer, "dev", there)
    _ip("-n", box, "link", "set", here, "up")
    _ip("-n", peer, "link", "set", there, "up")


class _NsServer:
    """``opencall serve`` inside a namespace, reached with :data:`FETCH` from inside it."""

    def __init__(self, ns: str, workdir: Path, overrides: dict[str, Any]) -> None:
        self.ns, self.workdir = ns, workdir
        workdir.mkdir(parents=True)
        self.config = test_config(workdir, overrides)
        (workdir / "opencall.yaml").write_text(yaml.safe_dump(self.config))
        self.base_url = f"http://127.0.0.1:{self.config['server']['port']}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("OPENCALL_CONFIG", None)
        with (workdir / "stderr.txt").open("ab") as err:
            self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "opencall", "serve",
                                          "--config", str(workdir / "opencall.yaml")],
                                         cwd="/", stdout=err, stderr=err, env=env)

    def get(self, path: str) -> tuple[int, Any]:
        return _get(self.ns, self.base_url + path)

    def log(self) -> str:
        deadline = time.monotonic() + 5
        path = self.workdir / self.config["log_file"]
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        return path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_a_lan_without_a_default_route_is_advertised(namespaces: list[str], tmp_path: Path) -> None:
    """Internet down: no route to 10.255.255.255, yet the LAN addresses are chosen, each offered, and the
    relay relays from the IPv4 and the IPv6 one."""
    box, peer = _namespace(namespaces, "box"), _namespace(namespaces, "peer")
    _link(box, peer, "0", "192.168.77.2/24", "192.168.77.1/24", "fd00:77::2/64")
    assert _resolve(box) == (None, ["192.168.77.2", "fd00:77::2"])

    server = _NsServer(box, tmp_path / "srv", {"server": {"host": "0.0.0.0"},
                                                "turn": {"listen": "::", "advertise": "auto"}})
    try:
        status, health = server.get("/healthz")
        assert (status, health["status"], health["relay"]) == (200, "ok", "ok"), health
        status, body = server.get("/api/ice-config")
        port = server.config["turn"]["port"]
        urls = [entry["urls"] for entry in body["iceServers"]]
        assert urls == [f"{scheme}:{host}:{port}{query}" for host in ("192.168.77.2", "[fd00:77::2]")
                        for scheme, query in (("stun", ""), ("turn", ""), ("turn", "?transport=tcp"))]
        log = server.log()
        assert "relaying from 192.168.77.2 and fd00:77::2" in log
        assert "advertised as 192.168.77.2, fd00:77::2" in log and "loopback only" not in log
    finally:
        server.stop()

    # A second LAN with a route to 10/8: the route's pick comes first, then the other addresses.
    _link(box, peer, "1", "192.168.78.2/24", "192.168.78.1/24")
    _ip("-n", box, "route", "add", "10.0.0.0/8", "via", "192.168.78.1")
    assert _resolve(box) == ("192.168.78.2", ["192.168.78.2", "192.168.77.2", "fd00:77::2"])


def test_a_box_without_a_lan_is_unhealthy_when_serving_all_interfaces(namespaces: list[str],
                                                                      tmp_path: Path) -> None:
    """Only loopback, listening on 0.0.0.0 (inside the namespace): WARNING, /healthz 503, doctor FAIL."""
    box = _namespace(namespaces, "nolan")
    assert _resolve(box) == (None, ["127.0.0.1"])
    server = _NsServer(box, tmp_path / "srv", {"server": {"host": "0.0.0.0"},
                                                "turn": {"listen": "0.0.0.0", "advertise": "auto"}})
    try:
        status, health = server.get("/healthz")
        assert (status, health["status"], health["database"], health["relay"]) == (
            503, "down", "ok", "loopback only"), health
        warnings = [line for line in server.log().splitlines() if "WARNING" in line and "loopback only" in line]
        assert len(warnings) == 1, server.log()
        assert "turn.advertise: auto resolves to 127.0.0.1" in warnings[0]
        assert "Fix: set turn.advertise to this box's LAN address" in warnings[0]
        assert "bring up the LAN interface" in warnings[0]

        doctor = _in(box, sys.executable, "-m", "opencall", "doctor", "--config", str(server.workdir / "opencall.yaml"))
        assert doctor.returncode == 1, doctor.stdout
        lines = doctor.stdout.splitlines()
        failed = [i for i, line in enumerate(lines) if line.split()[:1] == ["FAIL"]]
        assert [lines[i].split()[1:3] for i in failed] == [["relay", "address"]], doctor.stdout
        assert "advertised on loopback only" in lines[failed[0]]
        assert "fix: set turn.advertise to this box's LAN address" in lines[failed[0] + 1]
        assert "PASS  relay " in doctor.stdout  # the relay itself works, on this host
    finally:
        server.stop()
