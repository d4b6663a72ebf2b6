"""Two phones, one box, no internet: calls on a home LAN built in network namespaces (issue 10).

The box runs the real `opencall serve` with the config the .deb installs; each phone is Debian's Chromium in its
own namespace, using the real web app by the box's address. Each scenario checks audio both ways with getStats,
reports the selected candidate pair and the call's timings; the last test reads the capture of the whole run.
Figures go to test-artifacts/lan/figures.json (docs/benchmarks.md, "LAN").
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Error as PlaywrightError

from opencall.mdns import host_label
from tests.lan.box import fetch
from tests.lan.calls import SELECTED_PAIR, Call, describe, hosts_asked_for, place_call, wait_recovered
from tests.lan.conftest import ROOT, Home
from tests.lan.phones import launch_phone, trust_ca

RECOVERY_LIMIT_MS = 10_000


@pytest.fixture
def lan_home(home: Home) -> Iterator[Home]:
    """The home LAN, put back to plain after each scenario changed it."""
    yield home
    home.lan.reset()


def urls(home: Home, host: str | None = None) -> dict[str, str]:
    url = home.box.url(host)
    return {name: url for name in home.phones}


def test_the_box_advertises_its_lan_addresses_with_no_route_out(lan_home: Home) -> None:
    """No default route: the relay is still advertised on the LAN addresses, never on loopback."""
    status, health = fetch(lan_home.phones["ph1"], lan_home.box.url(path="/healthz"))
    assert (status, health["relay"]) == (200, "ok"), health
    status, ice = fetch(lan_home.phones["ph1"], lan_home.box.url(path="/api/ice-config"))
    assert status == 200
    hosts = [server["urls"].split(":", 1)[1].rsplit(":", 1)[0] for server in ice["iceServers"]]
    assert set(hosts) == {"192.168.50.2", "[fd42:50::2]"}, ice
    assert "127.0.0.1" not in json.dumps(ice)
    assert "advertised as 192.168.50.2, fd42:50::2" in lan_home.box.log()


def test_first_contact_finds_the_box_by_name_and_trusts_its_ca(lan_home: Home) -> None:
    """A phone with a fresh browser: finds the box with a real mDNS query, sees the certificate error, downloads
    /ca.crt from the box's page, trusts it, and from then on loads the app with no certificate error."""
    phone = lan_home.phones["ph1"]
    name = host_label()
    started = time.monotonic()
    found = subprocess.run(phone.exec_argv(sys.executable, "-m", "tests.lan.mdns_query", name, "--timeout", "5"),
                           capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert found.returncode == 0, found.stdout + found.stderr
    answer = json.loads(found.stdout.splitlines()[0])
    resolve_ms = round((time.monotonic() - started) * 1000)
    assert "192.168.50.2" in answer["addresses"], answer
    service = answer["services"][0]
    assert service["port"] == lan_home.box.port and service["type"] == "_https._tcp.local.", answer
    address = "192.168.50.2"

    home_dir = lan_home.workdir / "first-contact"
    rules = [f"--host-resolver-rules=MAP {name}.local {address}"]  # what the phone's own mDNS resolver does
    url = f"https://{name}.local:{lan_home.box.port}/"
    browser = launch_phone(lan_home.playwright, phone, home_dir, rules)
    try:
        page = browser.new_context().new_page()
        with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
            page.goto(url)
        # The person taps through the warning once ("Proceed"), opens "Trust this box", downloads the CA.
        visit = browser.new_context(ignore_https_errors=True)
        trust = visit.new_page()
        trust.goto(url + "trust")
        with trust.expect_download() as download:
            trust.get_by_role("link", name="Download the certificate").click()
        ca_file = home_dir / "opencall-ca.crt"
        download.value.save_as(ca_file)
        assert ca_file.read_bytes() == lan_home.box.ca_cert.read_bytes()
    finally:
        browser.close()
    trust_ca(home_dir, ca_file)
    browser = launch_phone(lan_home.playwright, phone, home_dir, rules)
    try:
        page = browser.new_context().new_page()
        response = page.goto(url)
        assert response is not None and response.ok
        page.locator("#my-call-id").wait_for()
        assert page.evaluate("() => window.isSecureContext") is True
    finally:
        browser.close()
    lan_home.record("first contact", {"mdns_resolve_ms": resolve_ms, "name": f"{name}.local",
                                      "addresses": answer["addresses"]})


def test_plain_lan_calls_host_to_host(lan_home: Home) -> None:
    call = place_call(lan_home, urls(lan_home))
    assert call.figures["pair_types"]["ph1"] == ("host", "host"), call.figures["pair"]
    lan_home.record("plain LAN", call.figures)
    call.hang_up()


def test_wifi_client_isolation_calls_through_the_box_relay(lan_home: Home) -> None:
    lan_home.lan.isolate(*lan_home.phones.values())
    call = place_call(lan_home, urls(lan_home))
    assert "relay" in call.figures["pair_types"]["ph1"], call.figures["pair"]
    lan_home.record("Wi-Fi client isolation", call.figures)
    call.hang_up()


def test_guest_network_reaches_the_relay_over_turn_tls_only(lan_home: Home) -> None:
    """Phones isolated, and only TCP to the web app (8443) and TURN/TLS (5349) reaches the box."""
    lan = lan_home.lan
    lan.isolate(*lan_home.phones.values())
    box = lan_home.lan.hosts["box"]
    for phone in lan_home.phones.values():
        lan.guest_network(phone, box, tcp_ports=(lan_home.box.port, lan_home.box.config["turn"]["tls_port"]))
    call = place_call(lan_home, urls(lan_home))
    for name, pair in call.figures["raw_pairs"].items():
        local = pair["local"]
        assert (local["type"], local["relayProtocol"]) == ("relay", "tls"), (name, call.figures["pair"])
    lan_home.record("TURN/TLS only (guest network)", call.figures)
    call.hang_up()


@pytest.mark.parametrize("isolated", [False, True], ids=["open", "client isolation"])
def test_ipv6_only_lan(lan_home: Home, isolated: bool) -> None:
    """Phones with IPv6 only: host ↔ host over IPv6, or through the box's IPv6 relay address when isolated."""
    for phone in lan_home.phones.values():
        lan_home.lan.move(phone, "main", ipv4=False)
    if isolated:
        lan_home.lan.isolate(*lan_home.phones.values())
    call = place_call(lan_home, urls(lan_home, "[fd42:50::2]"))
    if isolated:
        # The phones reach the relay over IPv6; Chrome asks for the default (IPv4) relay address family (RFC 6156
        # §4.1.1), so the relayed leg between the two allocations runs inside the box.
        assert "relay" in call.figures["pair_types"]["ph1"], call.figures["pair"]
    else:
        assert call.figures["pair_types"]["ph1"] == ("host", "host"), call.figures["pair"]
        for pair in call.figures["raw_pairs"].values():
            assert ":" in pair["local"]["address"] and ":" in pair["remote"]["address"], call.figures["pair"]
    lan_home.record("IPv6-only LAN" + (" with client isolation" if isolated else ""), call.figures)
    call.hang_up()


@pytest.mark.parametrize("mover", ["callee", "caller"])
def test_a_phone_moving_to_another_subnet_recovers_by_ice_restart(lan_home: Home, mover: str) -> None:
    call: Call = place_call(lan_home, urls(lan_home))
    before = call.figures["raw_pairs"]
    phone = call.callee if mover == "callee" else call.caller
    moved_at = time.time() * 1000
    lan_home.lan.move(lan_home.phones[phone.name], "other")
    recovered_at = wait_recovered(call)
    took = round(recovered_at - moved_at)
    after = {p.name: p.tab.js("() => window.opencall.phone.state") for p in (call.caller, call.callee)}
    assert after == {call.caller.name: "active", call.callee.name: "active"}, after
    restarted = [line for line in call.caller.log if "ICE restart" in line]
    assert restarted, "the call came back without an ICE restart"
    pair = call.caller.tab.js(SELECTED_PAIR)
    assert pair["local"]["address"] != before[call.caller.name]["local"]["address"] or \
        pair["remote"]["address"] != before[call.caller.name]["remote"]["address"], (before, pair)
    lan_home.record(f"{mover} moves to another subnet mid-call", {
        **{k: v for k, v in call.figures.items() if k != "raw_pairs"},
        "recovered_ms": took, "pair_after": describe(pair),
        "timeline": sorted(call.caller.timeline(moved_at) + call.callee.timeline(moved_at))})
    assert took <= RECOVERY_LIMIT_MS, f"the call took {took} ms to recover (limit {RECOVERY_LIMIT_MS})"
    call.hang_up()


def test_nothing_left_the_lan(home: Home) -> None:
    """The capture of the whole run: no packet to an address outside the LAN's prefixes (multicast for
    mDNS/ND/IGMP is allowed and counted), no DNS query from the box; the phones' are counted. The app loaded
    nothing from anywhere but the box."""
    assert home.figures, "run the scenarios first: this test reads their capture"
    tally = home.capture.stop()
    summary = tally.summary()
    home.record("packets", summary)
    assert not tally.outside, f"packets left the LAN: {tally.outside[:10]}"
    assert tally.dns_queries["box"] == 0, summary
    asked = hosts_asked_for(home.requests)
    assert asked and asked <= {"192.168.50.2", "fd42:50::2", "[fd42:50::2]"}, asked
