"""What ``turn.advertise: auto`` resolves to, where the relay binds, and the loopback-only rule.

The pure functions, fed interface lists. The real code and a real server on a LAN with no default route (the
internet-down home LAN of issue 10), in network namespaces, are in tests/lan/test_advertise.py.
"""

from __future__ import annotations

from pathlib import Path

from opencall.config import parse_config
from opencall.lan import is_lan_address, is_loopback, lan_addresses, url_host
from opencall.relay.settings import loopback_only, loopback_problem, relay_addresses

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
