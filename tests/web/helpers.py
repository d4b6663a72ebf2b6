"""Steps shared by the browser tests: sign-up through the UI, reading WebRTC stats, waiting on the server."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from tests.web.conftest import Tab

INBOUND_AUDIO = """async () => {
  const session = window.opencall.phone.session;
  if (!session || !session.pc) return null;
  let bytes = 0, energy = 0;
  (await session.pc.getStats()).forEach((r) => {
    if (r.type !== 'inbound-rtp' || r.kind !== 'audio') return;
    bytes += r.bytesReceived || 0;
    energy += r.totalAudioEnergy || 0;
  });
  return {bytes, energy};
}"""

SELECTED_PAIR = """async () => {
  const pc = window.opencall.phone.session.pc;
  const stats = new Map();
  (await pc.getStats()).forEach((r) => stats.set(r.id, r));
  let pair = null;
  for (const r of stats.values()) {
    if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
  }
  if (!pair) return null;
  const type = (id) => stats.get(id).candidateType;
  return {local: type(pair.localCandidateId), remote: type(pair.remoteCandidateId)};
}"""


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def register_in_ui(tab: Tab, username: str, password: str = "secret123") -> None:
    """Create an account through the register page; ends on the dashboard."""
    tab.open("/register")
    page = tab.page
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(f"{tab.base_url}/dashboard")
    expect(page.get_by_role("heading", name=f"Hi, {username}")).to_be_visible()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.2,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def inbound_audio(tab: Tab) -> dict[str, float]:
    value = tab.js(INBOUND_AUDIO)
    assert value is not None, "no call in progress"
    return value


def audio_flows(tab: Tab, seconds: float = 1.5) -> dict[str, float]:
    """Inbound audio bytes grow in getStats over ``seconds``; returns the deltas."""
    first = inbound_audio(tab)
    tab.page.wait_for_timeout(int(seconds * 1000))
    second = inbound_audio(tab)
    delta = {key: second[key] - first[key] for key in first}
    assert delta["bytes"] > 1000, f"inbound audio bytes did not grow: {first} -> {second}"
    return delta


def wait_in_call(tab: Tab) -> None:
    """The in-call screen is up and the peer connection is connected."""
    expect(tab.page.locator("#call-layer")).to_have_attribute("data-state", "active")
    expect(tab.page.get_by_role("button", name="Hang up")).to_be_visible()


def call_and_accept(caller: Tab, callee: Tab, callee_id: str) -> None:
    """Place a call from ``caller``'s Home to ``callee_id``, accept it on ``callee``, wait until both are in it."""
    caller.page.get_by_label("Their Call ID").fill(callee_id)
    caller.page.get_by_role("button", name="Call", exact=True).click()
    callee.page.get_by_role("button", name="Accept").click()
    wait_in_call(caller)
    wait_in_call(callee)


def wait_home_with(tab: Tab, text: str) -> None:
    """Back on Home, with the outcome banner saying ``text``."""
    expect(tab.page.locator("#call-layer")).to_be_hidden()
    expect(tab.page.locator("[data-outcome]")).to_contain_text(text)
    expect(tab.page).to_have_url(f"{tab.base_url}/")


def history_items(tab: Tab) -> Any:
    return tab.page.locator("ol.history > li")
