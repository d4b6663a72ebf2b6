"""The LANs of tests/lan: the home (``home``: built once per module that uses it, captured from start to end) and
a fresh LAN per test (``lan``, with ``boxes`` to run the box on it); every namespace is removed by name on exit.

These tests need root and iproute2 (CI runs as root): without them they fail, never skip.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.lan.box import Box
from tests.lan.capture import Capture, Tally
from tests.lan.netlab import Host, Lan, leftover_namespaces
from tests.lan.phones import launch_phone, trust_ca

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "lan"


def require_root_and_tools(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.fail("tests/lan build network namespaces: run them as root (CI does)", pytrace=False)
    for tool in tools or ("ip", "tcpdump", "nft", "certutil"):
        if shutil.which(tool) is None:
            pytest.fail(f"tests/lan need {tool}: ./scripts/test installs it (iproute2, tcpdump, nftables, "
                        "libnss3-tools)", pytrace=False)


@dataclass
class Home:
    """The LAN, its capture, the box and the phones' browsers, plus what the tests measured."""

    lan: Lan
    box: Box
    phones: dict[str, Host]
    browsers: dict[str, Browser]
    playwright: Playwright
    workdir: Path
    capture: Capture
    figures: dict[str, Any] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)  # every URL the phones' pages asked for
    tally: Tally | None = None

    def record(self, name: str, values: dict[str, Any]) -> None:
        self.figures[name] = values
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "figures.json").write_text(json.dumps(self.figures, indent=2, sort_keys=True))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """192.168.50.0/24 + fd42:50::/64 with no default route: the box at .2, phones at .11 and .12."""
    require_root_and_tools()
    workdir = tmp_path_factory.mktemp("lan")
    lan = Lan()
    with lan, sync_playwright() as playwright:
        box_host = lan.add_host("box", 2)
        phones = {name: lan.add_host(name, index) for name, index in (("ph1", 11), ("ph2", 12))}
        capture = Capture(lan, workdir / "lan.pcap").start()
        box = Box(box_host, workdir / "box")
        browsers: dict[str, Browser] = {}
        try:
            box.start()
            for name, host in phones.items():
                trust_ca(workdir / name, box.ca_cert)  # each phone trusted the box once (test_first_contact)
                browsers[name] = launch_phone(playwright, host, workdir / name)
            yield Home(lan, box, phones, browsers, playwright, workdir, capture)
        finally:
            for browser in browsers.values():
                browser.close()
            box.stop()
            capture.stop()
            if box.log_file.exists():
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                shutil.copy(box.log_file, ARTIFACTS / "box.log")
    assert not leftover_namespaces(lan.tag), "namespaces left behind"


@pytest.fixture
def lan() -> Iterator[Lan]:
    """A LAN of its own for one test: the router with its bridge, no hosts yet (the test adds them)."""
    require_root_and_tools("ip")
    with Lan() as made:
        yield made
    assert not leftover_namespaces(made.tag), "namespaces left behind"


@pytest.fixture
def box_and_phone(lan: Lan) -> tuple[Host, Host]:
    """On the test's LAN, as in the home: the box at .2 and a phone at .11 (192.168.50.0/24, fd42:50::/64)."""
    return lan.add_host("box", 2), lan.add_host("ph1", 11)


@pytest.fixture
def boxes(lan: Lan, tmp_path: Path) -> Iterator[Callable[..., Box]]:
    """``boxes(host, overrides, **options)``: a :class:`Box` on ``lan`` in a folder of its own (not started),
    stopped at the end of the test, before the LAN goes."""
    made: list[Box] = []

    def make(host: Host, overrides: Mapping[str, Any] | None = None, **options: Any) -> Box:
        made.append(Box(host, tmp_path / f"box{len(made)}", overrides, **options))
        return made[-1]

    yield make
    for box in made:
        box.stop()
