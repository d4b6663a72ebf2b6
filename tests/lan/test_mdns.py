"""The box is found by name: the real ``opencall serve`` in the box's namespace announces ``<name>.local`` and its
web service with mDNS, and a real mDNS querier (tests/lan/mdns_query.py) in a phone's namespace resolves them.

A LAN of its own per test (tests/lan/netlab.py: 192.168.50.0/24 and fd42:50::/64, no default route, nothing
linked to this host's interfaces): the box at .2, a phone at .11; multicast never leaves it. Every namespace is
deleted by name whatever happens. Needs root and iproute2's ``ip``: without them these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from cryptography import x509

from tests.lan.box import ROOT, Box, fetch
from tests.lan.netlab import Host, Lan, run

BOX_V4, BOX_V6 = "192.168.50.2", "fd42:50::2"
NEW_V4 = "192.168.50.4"  # the box's next lease
NAME = "opencall-test"
PORT = 8443  # each namespace has its own ports: the default port is free in the box's
ANNOUNCED = f"announcing https://{NAME}.local:{PORT}/ on the LAN (mDNS)"
CONFIG: dict[str, Any] = {
    "server": {"host": "0.0.0.0", "port": PORT, "tls": "auto"},
    "turn": {"enabled": False},
    "mdns": {"enabled": True, "name": NAME},
}


def query(phone: Host, *args: str, timeout: float = 5) -> tuple[int, dict[str, Any]]:
    """``python -m tests.lan.mdns_query NAME`` from the phone: (exit status, its JSON)."""
    done = subprocess.run(phone.exec_argv(sys.executable, "-m", "tests.lan.mdns_query", NAME, "--timeout",
                                          str(timeout), *args),
                          capture_output=True, text=True, timeout=timeout + 30, cwd=ROOT)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout.splitlines()[0])


@pytest.fixture
def box_factory(box_and_phone: tuple[Host, Host], boxes: Callable[..., Box]) -> Iterator[Callable[..., Box]]:
    """Boxes with this module's config on the box's host; each must have stopped cleanly (exit 0)."""
    made: list[Box] = []

    def make(overrides: Mapping[str, Any] | None = None, fake_avahi: bool = False) -> Box:
        made.append(boxes(box_and_phone[0], overrides, config=CONFIG, fake_avahi=fake_avahi))
        return made[-1]

    yield make
    for box in made:
        assert box.stop() in (None, 0), box.log()


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no answer from the querier in {timeout}s")
    return proc.stdout.readline()


def test_the_phone_finds_the_box_by_name_and_hears_its_goodbye(box_and_phone: tuple[Host, Host],
                                                               box_factory: Callable[..., Box]) -> None:
    _, phone = box_and_phone
    box = box_factory().start(wait_for=re.escape(ANNOUNCED))
    ca = box.workdir / "data" / "tls" / "ca.crt"
    querier = subprocess.Popen(
        phone.exec_argv(sys.executable, "-m", "tests.lan.mdns_query", NAME, "--timeout", "5",
                        "--fetch", "/healthz", "--cafile", str(ca), "--wait-goodbye", "15"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        found = json.loads(_read_line(querier, 30))
        assert found["name"] == f"{NAME}.local."
        assert sorted(found["addresses"]) == [BOX_V4, BOX_V6]  # A and AAAA: LAN addresses only, no link-local
        assert len(found["services"]) == 1
        service = found["services"][0]
        assert {k: v for k, v in service.items() if k != "addresses"} == {
            "instance": f"OpenCall on {NAME}._https._tcp.local.", "type": "_https._tcp.local.",
            "server": f"{NAME}.local.", "port": PORT, "txt": {"path": "/"}}
        assert sorted(service["addresses"]) == [BOX_V4, BOX_V6]
        # What a phone's browser does with https://opencall-test.local:8443/: the certificate is valid for that name.
        assert found["fetch"] == {"url": f"https://{NAME}.local:{PORT}/healthz", "address": BOX_V4, "status": 200}

        assert box.stop() == 0, box.log()
        goodbye = json.loads(querier.communicate(timeout=30)[0])
    finally:
        if querier.poll() is None:
            querier.kill()
            querier.communicate()
    assert goodbye["goodbye"] is True, goodbye
    assert {f"A {NAME}.local.", f"AAAA {NAME}.local.", f"SRV OpenCall on {NAME}._https._tcp.local.",
            "PTR _https._tcp.local."} <= set(goodbye["records"])
    assert box.log().count(ANNOUNCED) == 1
    assert box.log_lines("WARNING") == [] and box.log_lines("ERROR") == []
    # Gone from the LAN: nothing answers for the name any more.
    status, after = query(phone, "--timeout", "2", timeout=2)
    assert (status, after["addresses"], after["services"]) == (1, [], [])
    names = x509.load_pem_x509_certificate((box.workdir / "data" / "tls" / "server.crt").read_bytes())
    san = names.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{NAME}.local" in san.get_values_for_type(x509.DNSName)


def test_with_mdns_off_nothing_answers(box_and_phone: tuple[Host, Host], box_factory: Callable[..., Box]) -> None:
    box_host, phone = box_and_phone
    box = box_factory({"mdns": {"enabled": False}}).start(wait_for=r"ready: serving")
    status, found = query(phone, "--timeout", "3", timeout=3)
    assert (status, found["addresses"], found["services"]) == (1, [], [])
    sockets = run(*box_host.exec_argv("ss", "-Hulnp")).stdout
    assert ":5353" not in sockets, sockets  # not even listening
    assert "mDNS" not in box.log()


def test_beside_avahi_and_over_plain_http(box_and_phone: tuple[Host, Host], box_factory: Callable[..., Box]) -> None:
    """A host running Avahi: logged at INFO, and the box still announces; ``tls: off`` announces ``_http._tcp``."""
    box = box_factory({"server": {"tls": "off"}}, fake_avahi=True)
    box.start(wait_for=re.escape(f"announcing http://{NAME}.local:{PORT}/ on the LAN (mDNS)"))
    assert any("Avahi runs on this host" in line for line in box.log_lines("INFO")), box.log()
    status, found = query(box_and_phone[1], "--fetch", "/healthz")
    assert status == 0, found
    assert [(s["type"], s["port"], s["txt"]) for s in found["services"]] == [("_http._tcp.local.", PORT, {"path": "/"})]
    assert found["fetch"]["status"] == 200
    assert box.log_lines("WARNING") == []


def test_without_a_lan_interface_it_warns_once_and_keeps_serving(lan: Lan, box_and_phone: tuple[Host, Host],
                                                                  box_factory: Callable[..., Box]) -> None:
    box_host, _ = box_and_phone
    lan.unplug(box_host)  # the box has loopback only
    box = box_factory({"server": {"host": "127.0.0.1"}}).start(wait_for=r"WARNING opencall\.mdns")
    warnings = box.log_lines("WARNING")
    assert len(warnings) == 1 and "mDNS announcement off" in warnings[0], box.log()
    assert fetch(box_host, f"https://127.0.0.1:{PORT}/healthz")[0] == 200
    assert box.proc is not None and box.proc.poll() is None


REFRESH = """
import asyncio, sys
from opencall.mdns import Announcement, Announcer

async def main() -> None:
    announcer = Announcer(Announcement(name=sys.argv[1], port=8443, tls=True), refresh_every=0.3)
    announcer.start()
    while not announcer.announced:
        await asyncio.sleep(0.05)
    print("announced", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the test closes stdin
    await announcer.stop()

asyncio.run(main())
"""


def test_a_new_address_is_announced(box_and_phone: tuple[Host, Host]) -> None:
    """The box's address changes (a new DHCP lease): the announcer re-announces within its refresh period."""
    box_host, phone = box_and_phone
    announcer = subprocess.Popen(box_host.exec_argv(sys.executable, "-c", REFRESH, NAME), cwd=ROOT,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _read_line(announcer, 30).strip() == "announced"
        assert sorted(query(phone)[1]["addresses"]) == [BOX_V4, BOX_V6]
        box_host.ip("addr", "del", f"{BOX_V4}/24", "dev", "eth0")
        box_host.ip("addr", "add", f"{NEW_V4}/24", "dev", "eth0")
        deadline = time.monotonic() + 10
        addresses: list[str] = []
        while time.monotonic() < deadline and NEW_V4 not in addresses:
            time.sleep(0.5)
            addresses = query(phone, "--timeout", "2", timeout=2)[1]["addresses"]
        assert NEW_V4 in addresses
        assert announcer.stdin is not None
        announcer.stdin.close()
        assert announcer.wait(timeout=15) == 0, announcer.stderr.read() if announcer.stderr else ""
    finally:
        if announcer.poll() is None:
            announcer.kill()
            announcer.wait()
