"""The box is found by name: the real ``opencall serve`` in one network namespace announces ``<name>.local`` and its
web service with mDNS, and a real mDNS querier (tests/lan/mdns_query.py) in a phone's namespace resolves them.

Two namespaces joined by a veth pair (192.168.77.0/24 and fd00:77::/64, no default route, nothing linked to this
host's interfaces); multicast never leaves them. Both are deleted by name whatever happens. Needs root and
iproute2's ``ip``: without them these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import selectors
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

pytestmark = pytest.mark.lan

ROOT = Path(__file__).resolve().parents[2]
BOX_V4, PHONE_V4 = "192.168.77.2", "192.168.77.3"
BOX_V6, PHONE_V6 = "fd00:77::2", "fd00:77::3"
NAME = "opencall-test"
PORT = 8443  # each namespace has its own ports: the default port is free in the box's
ANNOUNCED = f"announcing https://{NAME}.local:{PORT}/ on the LAN (mDNS)"
READY_TIMEOUT = 30.0


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done


@dataclass
class Lan:
    box: str
    phone: str

    def exec_argv(self, netns: str, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", netns, *argv]

    def query(self, *args: str, timeout: float = 5) -> tuple[int, dict[str, Any]]:
        """``python -m tests.lan.mdns_query NAME`` from the phone: (exit status, its JSON)."""
        done = subprocess.run(self.exec_argv(self.phone, sys.executable, "-m", "tests.lan.mdns_query", NAME,
                                             "--timeout", str(timeout), *args),
                              capture_output=True, text=True, timeout=timeout + 30, cwd=ROOT)
        assert done.stdout, done.stderr
        return done.returncode, json.loads(done.stdout.splitlines()[0])


@pytest.fixture
def lan() -> Iterator[Lan]:
    """The box's and a phone's namespaces, joined by one veth pair."""
    assert os.geteuid() == 0, "tests/lan need root (network namespaces); CI runs as root"
    assert shutil.which("ip"), "tests/lan need iproute2's ip: apt-get install iproute2"
    tag = secrets.token_hex(3)
    box, phone = f"ocm-box-{tag}", f"ocm-ph-{tag}"
    created: list[str] = []
    try:
        for netns in (box, phone):
            run("ip", "netns", "add", netns)
            created.append(netns)
            run("ip", "-n", netns, "link", "set", "lo", "up")
            for key in ("all", "default"):  # addresses usable at once: no duplicate address detection here
                run("ip", "netns", "exec", netns, "sysctl", "-qw", f"net.ipv6.conf.{key}.accept_dad=0")
        run("ip", "-n", box, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0", "netns", phone)
        for netns, v4, v6 in ((box, BOX_V4, BOX_V6), (phone, PHONE_V4, PHONE_V6)):
            run("ip", "-n", netns, "addr", "add", f"{v4}/24", "dev", "lan0")
            run("ip", "-n", netns, "addr", "add", f"{v6}/64", "dev", "lan0", "nodad")
            run("ip", "-n", netns, "link", "set", "lan0", "up")
        yield Lan(box=box, phone=phone)
    finally:
        for netns in created:
            run("ip", "netns", "del", netns, check=False)
    assert not {box, phone} & set(run("ip", "netns", "list").stdout.split())


class Box:
    """``opencall serve`` (this checkout's, installed in the venv) in the box's namespace."""

    def __init__(self, lan: Lan, workdir: Path, overrides: Mapping[str, Any], fake_avahi: bool = False) -> None:
        self.lan, self.workdir = lan, workdir
        workdir.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "server": {"host": "0.0.0.0", "port": PORT, "tls": "auto"},
            "data_dir": str(workdir / "data"),
            "log_file": str(workdir / "logs" / "opencall.log"),
            "turn": {"enabled": False},
            "mdns": {"enabled": True, "name": NAME},
        }
        for key, value in overrides.items():
            config[key] = {**config[key], **value} if isinstance(value, Mapping) else value
        self.config_path = workdir / "opencall.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.stderr_path = workdir / "stderr.txt"
        self.fake_avahi = fake_avahi
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_for: str) -> Box:
        """Start, and wait until the log has a line matching ``wait_for``."""
        serve = [sys.executable, "-m", "opencall", "serve", "--config", str(self.config_path)]
        if self.fake_avahi:
            # A private /run (ip netns exec gives the command its own mount namespace, a slave of the host's)
            # holding the socket Avahi would have: the host's /run is untouched.
            setup = ("mount -t tmpfs tmpfs /run && mkdir /run/avahi-daemon && \"$0\" -c "
                     "'import socket; socket.socket(socket.AF_UNIX).bind(\"/run/avahi-daemon/socket\")' && "
                     "exec \"$0\" \"$@\"")
            serve = ["sh", "-c", setup, *serve]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("OPENCALL_CONFIG", None)
        with self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(self.lan.exec_argv(self.lan.box, *serve), cwd="/", stdout=err, stderr=err,
                                         env=env)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if re.search(wait_for, self.log()):
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"the box exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.1)
        raise AssertionError(f"no log line matching {wait_for!r} in {READY_TIMEOUT}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                assert self.proc.wait(timeout=15) == 0, self.log()
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def log_lines(self, level: str) -> list[str]:
        return [line for line in self.log().splitlines() if f" {level} " in line]


@pytest.fixture
def box_factory(lan: Lan, tmp_path: Path) -> Iterator[Any]:
    boxes: list[Box] = []

    def make(overrides: Mapping[str, Any] | None = None, fake_avahi: bool = False) -> Box:
        box = Box(lan, tmp_path / f"box{len(boxes)}", overrides or {}, fake_avahi=fake_avahi)
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.stop()


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no answer from the querier in {timeout}s")
    return proc.stdout.readline()


def test_the_phone_finds_the_box_by_name_and_hears_its_goodbye(lan: Lan, box_factory: Any) -> None:
    box = box_factory().start(wait_for=re.escape(ANNOUNCED))
    ca = box.workdir / "data" / "tls" / "ca.crt"
    querier = subprocess.Popen(
        lan.exec_argv(lan.phone, sys.executable, "-m", "tests.lan.mdns_query", NAME, "--timeout", "5",
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

        box.stop()
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
    status, after = lan.query("--timeout", "2", timeout=2)
    assert (status, after["addresses"], after["services"]) == (1, [], [])
    names = x509.load_pem_x509_certificate((box.workdir / "data" / "tls" / "server.crt").read_bytes())
    san = names.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{NAME}.local" in san.get_values_for_type(x509.DNSName)


def test_with_mdns_off_nothing_answers(lan: Lan, box_factory: Any) -> None:
    box = box_factory({"mdns": {"enabled": False}}).start(wait_for=r"ready: serving")
    status, found = lan.query("--timeout", "3", timeout=3)
    assert (status, found["addresses"], found["services"]) == (1, [], [])
    sockets = run(*lan.exec_argv(lan.box, "ss", "-Hulnp")).stdout
    assert ":5353" not in sockets, sockets  # not even listening
    assert "mDNS" not in box.log()


def test_beside_avahi_and_over_plain_http(lan: Lan, box_factory: Any) -> None:
    """A host running Avahi: logged at INFO, and the box still announces; ``tls: off`` announces ``_http._tcp``."""
    box = box_factory({"server": {"tls": "off"}}, fake_avahi=True)
    box.start(wait_for=re.escape(f"announcing http://{NAME}.local:{PORT}/ on the LAN (mDNS)"))
    assert any("Avahi runs on this host" in line for line in box.log_lines("INFO")), box.log()
    status, found = lan.query("--fetch", "/healthz")
    assert status == 0, found
    assert [(s["type"], s["port"], s["txt"]) for s in found["services"]] == [("_http._tcp.local.", PORT, {"path": "/"})]
    assert found["fetch"]["status"] == 200
    assert box.log_lines("WARNING") == []


def test_without_a_lan_interface_it_warns_once_and_keeps_serving(lan: Lan, box_factory: Any) -> None:
    run("ip", "-n", lan.box, "link", "del", "lan0")  # the box has loopback only
    box = box_factory({"server": {"host": "127.0.0.1"}}).start(wait_for=r"WARNING opencall\.mdns")
    warnings = box.log_lines("WARNING")
    assert len(warnings) == 1 and "mDNS announcement off" in warnings[0], box.log()
    fetch = "import httpx; print(httpx.get('https://127.0.0.1:8443/healthz', verify=False).status_code)"
    assert run(*lan.exec_argv(lan.box, sys.executable, "-c", fetch)).stdout.strip() == "200"
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


def test_a_new_address_is_announced(lan: Lan) -> None:
    """The box's address changes (a new DHCP lease): the announcer re-announces within its refresh period."""
    announcer = subprocess.Popen(lan.exec_argv(lan.box, sys.executable, "-c", REFRESH, NAME), cwd=ROOT,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _read_line(announcer, 30).strip() == "announced"
        assert sorted(lan.query()[1]["addresses"]) == [BOX_V4, BOX_V6]
        run("ip", "-n", lan.box, "addr", "del", f"{BOX_V4}/24", "dev", "lan0")
        run("ip", "-n", lan.box, "addr", "add", "192.168.77.4/24", "dev", "lan0")
        deadline = time.monotonic() + 10
        addresses: list[str] = []
        while time.monotonic() < deadline and "192.168.77.4" not in addresses:
            time.sleep(0.5)
            addresses = lan.query("--timeout", "2", timeout=2)[1]["addresses"]
        assert "192.168.77.4" in addresses
        assert announcer.stdin is not None
        announcer.stdin.close()
        assert announcer.wait(timeout=15) == 0, announcer.stderr.read() if announcer.stderr else ""
    finally:
        if announcer.poll() is None:
            announcer.kill()
            announcer.wait()
