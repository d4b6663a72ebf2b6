"""Browser fixtures: Debian's Chromium driven by Playwright for Python, against the real server.

Never `playwright install`: the tests use /usr/bin/chromium (apt-get install -y chromium), with the flags of
docs/architecture.md, "Pitfalls" (fake microphone, no permission prompts, loopback ICE candidates allowed).

Every page runs under the server's own Content-Security-Policy and Permissions-Policy (opencall/api/headers.py),
and a test fails at teardown on any violation of them (:func:`watch_policies`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
except ImportError as exc:  # a collection error, never a skip
    raise ImportError(
        "Playwright for Python is missing: install the test extra (pip install '.[test]'). "
        "Do not run `playwright install`: these tests drive Debian's /usr/bin/chromium."
    ) from exc

from tests.support import Server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--allow-loopback-in-peer-connection",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SIZES = {"phone": PHONE, "desktop": DESKTOP}
CALL_ID = re.compile(r"^[A-HJ-NP-Z2-9]{8}$")
TIMEOUT_MS = 15_000
expect.set_options(timeout=10_000)

# Turns each `securitypolicyviolation` event of a page into a console error the tests collect (Chromium also logs
# its own "Refused to …" line for most, but not all, violations).
REPORT_VIOLATIONS = """document.addEventListener('securitypolicyviolation', (e) => {
  console.error(`CSP violation: ${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} `
    + `(${e.sourceFile || e.documentURI}:${e.lineNumber}) sample: ${e.sample}`);
}, true);"""
POLICY_MESSAGE = re.compile(r"CSP violation|Content Security Policy|Content-Security-Policy|Permissions-Policy")


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: the browser tests need Debian's Chromium (apt-get install -y chromium)",
                    pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Tab:
    """A page of the web app with the errors it raised."""

    page: Page
    base_url: str
    size: str
    errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def open(self, path: str = "/") -> Tab:
        self.page.goto(self.base_url + path)
        return self

    def call_id(self) -> str:
        """This tab's Call ID once the socket has registered."""
        locator = self.page.locator("#my-call-id")
        expect(locator).to_have_text(CALL_ID)
        return locator.inner_text().strip()

    def shot(self, name: str) -> Path:
        """A screenshot of what the user sees now, saved as test-artifacts/web/<name>-<size>.png."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}-{self.size}.png"
        self.page.wait_for_timeout(250)  # let entrance animations settle
        self.page.screenshot(path=str(path))
        return path

    def js(self, script: str, arg: Any = None) -> Any:
        return self.page.evaluate(script, arg)


def watch_policies(context: BrowserContext, violations: list[str]) -> None:
    """Collect in ``violations`` every CSP violation of ``context``'s pages and every console message about the
    security policies (a Permissions-Policy the browser cannot parse included)."""
    context.add_init_script(REPORT_VIOLATIONS)
    context.on("console", lambda message: violations.append(message.text)
               if POLICY_MESSAGE.search(message.text) else None)


@pytest.fixture
def open_tab(browser: Browser, server: Server) -> Iterator[Callable[..., Tab]]:
    """Open the app in a fresh browser context (its own cookies: one person each) at phone or desktop size,
    on the shared server or on ``on``."""
    contexts: list[tuple[BrowserContext, Tab]] = []

    def open_(path: str = "/", size: str = "phone", on: Server | None = None) -> Tab:
        base_url = (on or server).base_url
        context = browser.new_context(viewport=SIZES[size], base_url=base_url)
        context.grant_permissions(["microphone"], origin=base_url)
        context.set_default_timeout(TIMEOUT_MS)
        seen: list[str] = []
        watch_policies(context, seen)
        page = context.new_page()
        tab = Tab(page, base_url, size, violations=seen)
        page.on("pageerror", lambda error: tab.errors.append(str(error)))
        contexts.append((context, tab))
        return tab.open(path)

    yield open_
    errors, violations = [], []
    for context, tab in contexts:
        # Release peer connections (and TURN allocations) before the page goes away; a page that already
        # navigated elsewhere has nothing to release.
        with contextlib.suppress(Exception):
            tab.js("() => window.opencall && window.opencall.phone.session && window.opencall.phone.hangup()")
        errors += tab.errors
        context.close()
        violations += tab.violations
    assert not errors, f"uncaught errors in the page: {errors}"
    assert not violations, f"security policy violations in the page: {violations}"
