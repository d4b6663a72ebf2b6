"""Every page of the web app at phone and desktop size: content, no sideways scrolling, screenshots in
test-artifacts/web/; the dashboard's API key and invite tools; the invite page's friendly errors; contact."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.support import Server
from tests.web.conftest import Tab
from tests.web.helpers import register_in_ui, unique

NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


def fits(tab: Tab, name: str) -> None:
    """The page fits the viewport's width; keep a screenshot of it."""
    assert tab.js(NO_SIDEWAYS_SCROLL), f"{name} scrolls sideways at {tab.size} size"
    tab.shot(name)


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_every_page(open_tab, server: Server, size: str) -> None:
    tab = open_tab("/", size=size)
    page = tab.page
    expect(page.get_by_role("heading", name="Your Call ID")).to_be_visible()
    tab.call_id()
    expect(page.locator("#conn")).to_have_text("Online")
    fits(tab, "home")

    # Client-side navigation moves focus to the new page's heading.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API").click()
    expect(page).to_have_url(f"{server.base_url}/docs")
    expect(page.get_by_role("heading", name="OpenCall API", level=1)).to_be_focused()
    expect(page.get_by_role("heading", name="Socket.IO signaling")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="POST /api/client-log")).to_be_visible()
    fits(tab, "docs")
    page.go_back()
    expect(page.get_by_role("heading", name="Your Call ID")).to_be_visible()

    tab.open("/trust")
    expect(page.get_by_role("heading", name="Trust this box")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("not using its own certificate")  # the test server: tls off
    fits(tab, "trust")

    tab.open("/contact")
    page.get_by_role("button", name="Send message").click()
    expect(page.get_by_label("Subject")).to_be_focused()
    expect(page.locator("#message-error")).to_contain_text("at least 5 characters")
    fits(tab, "contact-errors")
    page.get_by_label("Subject").fill("Hello from the browser test")
    page.get_by_label("Your email").fill("tester@example.com")
    page.get_by_label("Message").fill("The web client works on this box.")
    page.get_by_role("button", name="Send message").click()
    expect(page.get_by_role("status").filter(has_text="your message was sent")).to_be_visible()
    fits(tab, "contact-sent")

    tab.open("/login")
    page.get_by_label("Username").fill("nobody-" + size)
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid username or password")
    fits(tab, "login-error")

    tab.open("/dashboard")  # signed out: the dashboard sends you to sign in first
    expect(page).to_have_url(f"{server.base_url}/login?next=/dashboard")

    register_in_ui(tab, unique("pat"))
    expect(page.locator("#dash-call-id")).to_have_text(re.compile(r"^[A-HJ-NP-Z2-9]{8}$"))
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Account")).to_be_visible()
    fits(tab, "dashboard")

    tab.open("/register")
    fits(tab, "register")
    tab.open("/login")
    expect(page.get_by_role("status").filter(has_text="already signed in")).to_be_visible()
    fits(tab, "login")


def test_dashboard_api_key_and_invites(open_tab, server: Server) -> None:
    tab = open_tab("/", size="phone")
    page = tab.page
    register_in_ui(tab, unique("kim"))

    key = page.locator("#api-key")
    expect(key).to_have_text(re.compile(r"^oc_•+[0-9a-f]{4}$"))  # hidden until asked for
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("button", name="Hide")).to_have_attribute("aria-pressed", "true")
    expect(key).to_have_text(re.compile(r"^oc_[0-9a-f]{32}$"))
    old_key = key.inner_text()

    page.get_by_role("button", name="Rotate…").click()
    dialog = page.get_by_role("dialog", name="Rotate your API key?")
    expect(dialog).to_be_visible()
    expect(page.get_by_role("button", name="Keep the current key")).to_be_focused()
    tab.shot("dashboard-rotate-confirm")
    page.keyboard.press("Escape")  # a native modal dialog: Escape cancels
    expect(dialog).to_be_hidden()
    expect(key).to_have_text(old_key)

    page.get_by_role("button", name="Rotate…").click()
    dialog.get_by_role("button", name="Rotate key").click()
    expect(page.get_by_role("status").filter(has_text="New API key ready")).to_be_visible()
    expect(key).not_to_have_text(old_key)
    new_key = key.inner_text()
    assert new_key.startswith("oc_")
    with httpx.Client(base_url=server.base_url) as http:
        assert http.get("/api/key", headers={"x-api-key": old_key}).status_code == 401
        assert http.get("/api/key", headers={"x-api-key": new_key}).json() == {"apiKey": new_key}

    page.get_by_role("button", name="New invite link").click()
    first = page.get_by_role("textbox", name="Invite link")
    expect(first).to_have_value(re.compile(rf"^{re.escape(server.base_url)}/invite/[0-9a-f-]{{36}}$"))
    expect(page.get_by_role("button", name="Copy invite link")).to_be_visible()
    fits(tab, "dashboard-invite")

    # The creator's own link, then the first visitor (claims it), then a second visitor (already used).
    invite_path = first.input_value().removeprefix(server.base_url)
    tab.open(invite_path)
    expect(page.get_by_text("This is your own invite link")).to_be_visible()
    expect(page.locator("#conn")).to_have_text("Online")  # Kim is online again on this page: the link can call
    visitor = open_tab(invite_path, size="desktop")
    expect(visitor.page.get_by_role("button", name=re.compile(r"^Call kim"))).to_be_visible()
    fits(visitor, "invite")
    late = open_tab(invite_path, size="phone")
    expect(late.page.get_by_role("heading", name="This invite was already used")).to_be_visible()
    fits(late, "invite-used")
    unknown = open_tab("/invite/5f3c2b8e-6d41-4a90-bf2a-9e0c7f1d2a44", size="desktop")
    expect(unknown.page.get_by_role("heading", name=re.compile(r"^This invite link doesn.t exist$"))).to_be_visible()
    fits(unknown, "invite-unknown")

    tab.open("/dashboard")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{server.base_url}/")
    expect(page.get_by_text("This Call ID is temporary")).to_be_visible()
