"""Calls placed through the web app in real Chromium: invite link, accept, audio, mute, hang up, history;
the decline path; a call to an offline Call ID; the relay-only variant."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.web.conftest import CALL_ID
from tests.web.helpers import (
    SELECTED_PAIR,
    audio_flows,
    call_and_accept,
    history_items,
    inbound_audio,
    register_in_ui,
    unique,
    wait_for,
    wait_home_with,
    wait_in_call,
)


def test_invite_call_with_audio_mute_hangup_and_history(open_tab) -> None:
    alice_name = unique("alice")
    alice = open_tab("/", size="desktop")
    register_in_ui(alice, alice_name)
    alice_id = alice.page.locator("#dash-call-id")
    expect(alice_id).to_have_text(CALL_ID)

    alice.page.get_by_role("button", name="New invite link").click()
    invite_url = alice.page.get_by_role("textbox", name="Invite link").input_value()
    assert re.fullmatch(rf"{re.escape(alice.base_url)}/invite/[0-9a-f-]{{36}}", invite_url), invite_url

    # Bob has no account: he arrives through the link and sees who invited him, online, with a Call button.
    bob = open_tab(invite_url.removeprefix(alice.base_url), size="phone")
    page = bob.page
    expect(page.get_by_role("heading", name=f"{alice_name} invited you to a call")).to_be_visible()
    expect(page.locator(".presence")).to_have_text(f"{alice_name} is online")
    expect(page.get_by_label("Their Call ID")).to_have_value(alice_id.inner_text())
    bob_id = wait_for(lambda: bob.js("() => window.opencall.signaling.callId"), what="Bob's Call ID")
    bob.shot("invite")
    page.get_by_role("button", name=f"Call {alice_name}").click()

    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.locator("#call-status")).to_have_text("Ringing…")
    bob.shot("call-outgoing")

    incoming = alice.page.get_by_role("alertdialog")
    expect(incoming).to_be_visible()
    expect(incoming.locator("#call-name")).to_have_text(f"Unverified: {bob_id}")  # no account: a typed name at best
    expect(alice.page.get_by_role("button", name="Accept")).to_be_focused()
    alice.shot("call-incoming")
    alice.page.get_by_role("button", name="Accept").click()

    wait_in_call(alice)
    wait_in_call(bob)
    expect(page.locator("#call-name")).to_have_text(alice_name)  # calleeDisplayName falls back to the username
    assert audio_flows(alice)["energy"] > 0, "Alice hears nothing from Bob's (beeping) fake microphone"
    audio_flows(bob)
    expect(page.locator(".call-quality")).to_have_attribute("data-route", "direct")
    expect(page.locator(".call-quality")).to_contain_text("ms")
    expect(page.locator(".call-timer")).not_to_have_text("0:00")
    bob.shot("call-active")
    alice.shot("call-active")

    # Mute: the button says so, Bob's track is disabled, and Alice hears silence (no audio energy arrives).
    mute = page.get_by_role("button", name="Mute")
    mute.click()
    expect(page.get_by_role("button", name="Unmute")).to_have_attribute("aria-pressed", "true")
    assert bob.js("() => window.opencall.phone.session.localStream.getAudioTracks().every((t) => !t.enabled)")

    def silent_second() -> bool:  # once the jitter buffer has played out what was sent before the mute
        before = inbound_audio(alice)["energy"]
        page.wait_for_timeout(1000)
        return inbound_audio(alice)["energy"] - before < 1e-4

    wait_for(silent_second, timeout=8, interval=0, what="silence from a muted peer")
    page.get_by_role("button", name="Unmute").click()
    expect(page.get_by_role("button", name="Mute")).to_have_attribute("aria-pressed", "false")

    # Hang up: both sides go Home, the peer connections are closed and the microphone tracks stopped.
    for tab in (alice, bob):
        tab.js("() => { window.__lastSession = window.opencall.phone.session; }")
    page.get_by_role("button", name="Hang up").click()
    wait_home_with(bob, "Call ended")
    wait_home_with(alice, "hung up")
    for tab in (alice, bob):
        released = tab.js("""() => { const s = window.__lastSession; return {
            pc: s.pc.signalingState, tracks: s.localStream.getTracks().map((t) => t.readyState),
            phone: window.opencall.phone.state }; }""")
        assert released == {"pc": "closed", "tracks": ["ended"], "phone": "idle"}, released
    bob.shot("home-after-call")

    # Alice's history lists the answered incoming call from Bob's Call ID.
    alice.open("/dashboard")
    refresh = alice.page.get_by_role("button", name="Refresh call history")
    item = history_items(alice).filter(has_text=bob_id)

    def listed() -> bool:
        if item.count():
            return True
        refresh.click()
        alice.page.wait_for_timeout(300)
        return False

    wait_for(listed, what="the call in Alice's history")
    expect(item.first).to_have_attribute("data-status", "answered")
    expect(item.first).to_have_attribute("data-direction", "incoming")
    expect(item.first.locator(".duration")).to_have_text(re.compile(r"^\d+:\d\d$"))
    alice.shot("dashboard-history")


def test_decline(open_tab) -> None:
    dave_name = unique("dave")
    dave = open_tab("/", size="phone")
    register_in_ui(dave, dave_name)
    dave.open("/")
    dave_id = dave.call_id()
    expect(dave.page.get_by_text("This is your permanent Call ID")).to_be_visible()

    carol = open_tab("/", size="desktop")
    page = carol.page
    carol_id = carol.call_id()
    page.get_by_label("Your name").fill("Carol")
    page.get_by_label("Your name").press("Enter")
    expect(page.get_by_text("Saved")).to_be_visible()

    # The call box upper-cases what is typed and explains the characters Call IDs never use.
    box = page.get_by_label("Their Call ID")
    box.press_sequentially(dave_id[:3].lower() + "O")
    expect(box).to_have_value(dave_id[:3] + "O")
    expect(page.locator("#call-target-error")).to_contain_text("never contain the letter O or the digit 0")
    carol.shot("home-callid-typo")
    box.fill(dave_id.lower())
    expect(box).to_have_value(dave_id)
    expect(page.locator("#call-target-error")).to_have_text("")
    box.press("Enter")

    incoming = dave.page.get_by_role("alertdialog")
    expect(incoming.locator("#call-name")).to_have_text("Unverified: Carol")
    expect(incoming).to_contain_text(f"Call ID {carol_id}")
    dave.shot("call-incoming")
    expect(carol.page.locator("#call-status")).to_have_text("Ringing…")
    carol.shot("call-outgoing")
    dave.page.get_by_role("button", name="Decline", exact=True).click()

    wait_home_with(carol, f"{dave_id} declined the call")
    expect(page.get_by_role("alert").filter(has_text="declined")).to_be_visible()
    expect(page.get_by_label("Their Call ID")).to_have_value(dave_id)  # ready to try again
    wait_home_with(dave, "You declined the call from Unverified: Carol")
    carol.shot("home-declined")
    assert carol.js("() => window.opencall.phone.session") is None

    dave.open("/dashboard")
    item = history_items(dave).filter(has_text="Carol")

    def listed() -> bool:
        if item.count():
            return True
        dave.page.get_by_role("button", name="Refresh call history").click()
        dave.page.wait_for_timeout(300)
        return False

    wait_for(listed, what="the declined call in Dave's history")
    expect(item.first).to_have_attribute("data-status", "rejected")


def test_call_to_an_offline_call_id(open_tab) -> None:
    tab = open_tab("/", size="phone")
    page = tab.page
    own = tab.call_id()
    box = page.get_by_label("Their Call ID")
    box.fill("K7XM2")
    page.get_by_role("button", name="Call", exact=True).click()
    expect(page.locator("#call-target-error")).to_contain_text("A Call ID has 8 characters")
    expect(box).to_be_focused()

    box.fill(own)
    page.get_by_role("button", name="Call", exact=True).click()
    expect(page.locator("#call-target-error")).to_contain_text("your own Call ID")

    offline = "ZZ22" + ("Q9" if own[4:6] != "Q9" else "R8") + "XW"
    box.fill(offline)
    page.get_by_role("button", name="Call", exact=True).click()
    wait_home_with(tab, f"{offline} is not online")
    expect(page.get_by_role("alert").filter(has_text="is not online")).to_be_focused()
    expect(box).to_have_value(offline)
    assert tab.js("() => window.opencall.phone.state") == "idle"
    tab.shot("home-offline-error")


def test_server_lost_mid_call_ends_the_call(open_tab, make_server) -> None:
    """api.md's error table: a server disconnect mid-call ends it; the client reconnects and registers anew."""
    own = make_server(name="lost")
    callee = open_tab("/", size="phone", on=own)
    callee_id = callee.call_id()
    caller = open_tab("/", size="desktop", on=own)
    caller_id = caller.call_id()
    call_and_accept(caller, callee, callee_id)
    for tab in (caller, callee):
        tab.js("() => { window.__lastSession = window.opencall.phone.session; }")

    own.stop()
    for tab in (caller, callee):
        wait_home_with(tab, "Lost the connection to the server")
        expect(tab.page.locator("#conn")).not_to_have_text("Online")
        assert tab.js("() => window.__lastSession.pc.signalingState") == "closed"
    caller.shot("home-server-lost")

    own.start()  # same port: the pages reconnect by themselves and register again (a fresh anonymous Call ID)
    for tab, old_id in ((caller, caller_id), (callee, callee_id)):
        expect(tab.page.locator("#conn")).to_have_text("Online", timeout=15_000)
        expect(tab.page.locator("#my-call-id")).not_to_have_text(old_id)


def test_relay_only_call_uses_the_turn_relay(open_tab) -> None:
    """With the test-only switch (?forceRelay=1, see docs/web.md) the call must go through our TURN relay."""
    callee = open_tab("/?forceRelay=1", size="phone")
    callee_id = callee.call_id()
    caller = open_tab("/?forceRelay=1", size="desktop")
    caller.call_id()
    assert caller.js("() => window.opencall.phone.forceRelay") is True
    call_and_accept(caller, callee, callee_id)
    for tab in (caller, callee):
        assert tab.js(SELECTED_PAIR) == {"local": "relay", "remote": "relay"}
        audio_flows(tab)
    expect(caller.page.locator(".call-quality")).to_have_attribute("data-route", "relay")
    caller.shot("call-relayed")
    caller.page.get_by_role("button", name="Hang up").click()
    wait_home_with(callee, "hung up")
