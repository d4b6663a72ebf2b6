"""Who is calling, and who may ring you, in real Chromium (docs/api.md "Who is calling, and who may ring you"):
a signed-in caller is named by its account on the ringing screen, in the call and in the history, a typed name is
"Unverified: …"; "Decline and block", the Blocked callers panel and the strangers switch stop a caller (it hears
"did not answer", the callee's page never rings) and unblocking lets it ring again; a revoked invite stops its
claimant. One server with a short ``ring_timeout`` serves the file, so a refused call ends in 8 s."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, expect

from tests.support import Server, serve
from tests.web.conftest import Tab
from tests.web.helpers import history_items, register_in_ui, unique, wait_for, wait_home_with, wait_in_call

RING_TIMEOUT = 8  # long enough to look at the ringing screen on a busy machine, short enough to wait out

# Counts the `incoming-call` events the page's socket receives, whatever the UI does with them.
COUNT_RINGS = """() => {
  window.__rings = 0;
  window.opencall.signaling.addEventListener('incoming-call', () => { window.__rings += 1; });
}"""


@pytest.fixture(scope="module")
def ringing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose unanswered (and refused) calls end after RING_TIMEOUT seconds."""
    yield from serve(tmp_path_factory, "ringing", {"ring_timeout": RING_TIMEOUT})


def signed_in_home(open_tab, server: Server, prefix: str, size: str = "desktop") -> tuple[Tab, str, str]:
    """A new account, back on Home and online: (tab, username, permanent Call ID)."""
    name = unique(prefix)
    tab = open_tab("/", size=size, on=server)
    register_in_ui(tab, name)
    tab.open("/")
    return tab, name, tab.call_id()


def anonymous_caller(open_tab, server: Server, typed_name: str | None) -> Tab:
    tab = open_tab("/", size="phone", on=server)
    tab.call_id()
    if typed_name:
        tab.page.get_by_label("Your name").fill(typed_name)
        tab.page.get_by_label("Your name").press("Enter")
        expect(tab.page.get_by_text("Saved")).to_be_visible()
    return tab


def dial(caller: Tab, callee_id: str) -> None:
    caller.page.get_by_label("Their Call ID").fill(callee_id)
    caller.page.get_by_role("button", name="Call", exact=True).click()


def refused(caller: Tab, callee: Tab, callee_id: str) -> None:
    """``caller`` calls and is refused as blocks refuse: "did not answer" after the ring timeout, and the callee's
    page never hears of the call."""
    callee.js(COUNT_RINGS)
    dial(caller, callee_id)
    expect(caller.page.locator("#call-status")).to_have_text("Ringing…")
    wait_home_with(caller, f"{callee_id} did not answer")
    assert callee.js("() => window.__rings") == 0, "the blocked call reached the callee's page"
    expect(callee.page.get_by_role("alertdialog")).to_have_count(0)


def history_entry(tab: Tab, text: str) -> Locator:
    """The first history entry containing ``text``, refreshing the list until the call is written."""
    item = history_items(tab).filter(has_text=text)

    def listed() -> bool:
        if item.count():
            return True
        tab.page.get_by_role("button", name="Refresh call history").click()
        tab.page.wait_for_timeout(300)
        return False

    wait_for(listed, what=f"a call with {text} in the history")
    return item.first


def test_signed_in_caller_is_named_by_account(open_tab, ringing) -> None:
    alice, alice_name, alice_id = signed_in_home(open_tab, ringing, "alice")
    bob, bob_name, bob_id = signed_in_home(open_tab, ringing, "bob", size="phone")
    bob.page.get_by_label("Your name").fill("Mom")  # a typed name is shown, but only beside the account name
    bob.page.get_by_label("Your name").press("Enter")
    expect(bob.page.get_by_text("Saved")).to_be_visible()

    dial(bob, alice_id)
    incoming = alice.page.get_by_role("alertdialog")
    expect(incoming.locator("#call-name")).to_have_text(bob_name)
    expect(incoming.locator("#call-name")).to_have_attribute("data-verified", "true")
    expect(incoming.locator(".identity.verified")).to_have_text("Signed-in account on this box")
    expect(incoming.locator(".call-alias")).to_have_text("Calls themselves “Mom”")
    expect(incoming).to_contain_text(f"Call ID {bob_id}")
    assert "Unverified" not in incoming.inner_text()
    assert alice.page.title() == f"Incoming call · {bob_name}"
    alice.shot("call-incoming-verified")

    alice.page.get_by_role("button", name="Accept").click()
    wait_in_call(bob)
    wait_in_call(alice)
    expect(bob.page.locator("#call-name")).to_have_text(alice_name)  # calleeUsername: the in-call header
    expect(bob.page.locator(".identity.verified")).to_be_visible()
    expect(alice.page.locator("#call-name")).to_have_text(bob_name)
    alice.page.get_by_role("button", name="Hang up").click()
    wait_home_with(bob, f"{alice_name} hung up")

    alice.open("/dashboard")
    entry = history_entry(alice, bob_name)
    expect(entry.locator(".peer")).to_have_text(bob_name)
    expect(entry.locator(".peer")).to_have_attribute("data-verified", "true")
    expect(entry.locator(".identity.verified")).to_have_text("Account")
    expect(entry.locator(".peer-alias")).to_have_text("“Mom”")
    expect(entry).to_have_attribute("data-direction", "incoming")


def test_decline_and_block_then_unblock(open_tab, ringing) -> None:
    alice, _, alice_id = signed_in_home(open_tab, ringing, "alice")
    carol = anonymous_caller(open_tab, ringing, "Mom")
    carol_id = carol.call_id()

    dial(carol, alice_id)
    incoming = alice.page.get_by_role("alertdialog")
    expect(incoming.locator("#call-name")).to_have_text("Unverified: Mom")
    expect(incoming.locator("#call-name")).to_have_attribute("data-verified", "false")
    expect(incoming.locator(".identity.unverified")).to_have_text("Not signed in: anyone can type any name")
    expect(incoming).to_contain_text(f"Call ID {carol_id}")
    alice.shot("call-incoming-unverified")
    alice.page.get_by_role("button", name="Decline and block").click()
    wait_home_with(carol, f"{alice_id} declined the call")
    wait_home_with(alice, f"You declined the call from Unverified: Mom and blocked {carol_id}")
    expect(alice.page.locator(".toast")).to_contain_text("Blocked Unverified: Mom")

    refused(carol, alice, alice_id)

    # The dashboard lists the block and the declined call (whose Block button says it is blocked already).
    alice.open("/dashboard")
    blocked = alice.page.locator(".blocked-item").filter(has_text=carol_id)
    expect(blocked.locator(".blocked-label")).to_have_text("Unverified: Mom")
    expect(blocked.locator("time")).to_be_visible()
    entry = history_entry(alice, "Unverified: Mom")
    expect(entry.locator(".peer")).to_have_attribute("data-verified", "false")
    expect(entry.locator(".identity.unverified")).to_have_text("Unverified")
    expect(entry.get_by_role("button", name=f"Block {carol_id}")).to_be_disabled()
    expect(entry.get_by_role("button", name=f"Block {carol_id}")).to_have_text("Blocked")
    assert history_items(alice).count() == 1, "the refused call is in the callee's history"
    alice.shot("dashboard-blocked")

    alice.page.get_by_role("button", name=f"Unblock {carol_id}").click()
    expect(alice.page.locator(".blocked-item")).to_have_count(0)
    expect(alice.page.get_by_text("Nobody is blocked.")).to_be_visible()
    expect(entry.get_by_role("button", name=f"Block {carol_id}")).to_be_enabled()

    expect(alice.page.locator("#dash-call-id")).to_have_text(alice_id)  # online again after the page load
    dial(carol, alice_id)  # Alice is on her dashboard: the call rings there
    expect(alice.page.get_by_role("alertdialog").locator("#call-name")).to_have_text("Unverified: Mom")
    alice.page.get_by_role("button", name="Decline", exact=True).click()
    wait_home_with(carol, "declined the call")


def test_strangers_switch_and_block_form(open_tab, ringing) -> None:
    alice, _, alice_id = signed_in_home(open_tab, ringing, "alice")
    alice.open("/dashboard")
    expect(alice.page.locator("#dash-call-id")).to_have_text(alice_id)
    page = alice.page
    switch = page.get_by_role("switch", name="Do not disturb from strangers")
    expect(switch).to_be_enabled()
    expect(switch).not_to_be_checked()

    # The API's error texts, as they come.
    box = page.get_by_label("Block a Call ID")
    box.fill("K7XM")
    page.get_by_role("button", name="Block", exact=True).click()
    expect(page.locator("#blocks .banner.error")).to_have_text("callId must be a Call ID (8 characters)")
    box.fill(alice_id.lower())
    page.get_by_role("button", name="Block", exact=True).click()
    expect(page.locator("#blocks .banner.error")).to_have_text("You cannot block yourself")
    box.fill("ZZ22Q9XW")
    page.get_by_role("button", name="Block", exact=True).click()
    expect(page.locator(".blocked-item").filter(has_text="ZZ22Q9XW").locator(".blocked-label")).to_have_text(
        "A caller not seen yet")

    switch.check()
    expect(switch).to_be_checked()
    assert page.evaluate("async () => (await (await fetch('/api/blocks')).json()).strangers") is True
    page.locator("#blocks").scroll_into_view_if_needed()
    alice.shot("dashboard-strangers")

    dan = anonymous_caller(open_tab, ringing, None)
    dan_id = dan.call_id()
    refused(dan, alice, alice_id)

    switch.uncheck()
    expect(switch).not_to_be_checked()
    expect(switch).to_be_enabled()
    dial(dan, alice_id)
    incoming = alice.page.get_by_role("alertdialog")
    expect(incoming.locator("#call-name")).to_have_text(f"Unverified: {dan_id}")
    expect(incoming.get_by_role("button", name="Decline and block")).to_be_visible()
    alice.page.get_by_role("button", name="Decline", exact=True).click()
    wait_home_with(dan, "declined the call")


def test_revoked_invite_stops_its_claimant(open_tab, ringing) -> None:
    alice, _, _ = signed_in_home(open_tab, ringing, "alice")
    alice.open("/dashboard")
    page = alice.page
    page.get_by_role("button", name="New invite link").click()
    invite = page.locator(".invite-item").first
    expect(invite).to_have_attribute("data-state", "waiting")
    expect(invite.get_by_role("textbox", name="Invite link")).to_be_focused()
    url = invite.get_by_role("textbox", name="Invite link").input_value()
    assert re.fullmatch(rf"{re.escape(alice.base_url)}/invite/[0-9a-f-]{{36}}", url), url

    eve = open_tab(url.removeprefix(alice.base_url), size="phone", on=ringing)
    expect(eve.page.get_by_role("button", name=re.compile(r"^Call alice"))).to_be_visible()

    alice.open("/dashboard")
    invite = page.locator(".invite-item").first
    expect(invite).to_have_attribute("data-state", "claimed")
    expect(invite.locator(".invite-state")).to_contain_text("Claimed at")
    invite.get_by_role("button", name="Revoke").click()
    expect(invite).to_have_attribute("data-state", "revoked")
    expect(invite.locator(".invite-state")).to_contain_text("Revoked at")
    expect(invite.get_by_role("button", name="Revoke")).to_have_count(0)
    alice.shot("dashboard-invite-revoked")

    eve.page.reload()
    expect(eve.page.get_by_role("heading", name="This invite was withdrawn")).to_be_visible()
