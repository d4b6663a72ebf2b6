"""Surviving a network change (docs/web.md "Surviving a network change"): a call outlives its server connection.

A replaced connection registers with the session's resume token and takes the call back (`call-resumed`, the
other side gets `peer-reconnected`), and the caller restarts ICE. The media watchdog notices a stall of the
inbound audio before ICE or TCP do, and replaces the connection itself. Two real Chromium tabs, a real server.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.conftest import Tab
from tests.web.helpers import audio_flows, call_and_accept, register_in_ui, unique, wait_for, wait_home_with

RECOVERY = "() => window.opencall.phone.recovery()"
SETTLED = """() => { const pc = window.opencall.phone.session && window.opencall.phone.session.pc;
  return Boolean(pc) && pc.connectionState === 'connected' && pc.signalingState === 'stable'; }"""
# Stop (null) or resume sending our microphone: the other side's inbound audio stops or flows again.
SEND = """(on) => { const s = window.opencall.phone.session;
  return s.pc.getSenders()[0].replaceTrack(on ? s.localStream.getAudioTracks()[0] : null); }"""


def recovery(tab: Tab) -> dict[str, Any]:
    value = tab.js(RECOVERY)
    assert value["call"] is not None, f"{tab.size}: the call is gone: {value}"
    return value


def console_lines(tab: Tab) -> list[str]:
    seen: list[str] = []
    tab.page.on("console", lambda message: seen.append(message.text))
    return seen


def still_in_the_same_call(tabs: tuple[Tab, ...]) -> None:
    """The call that was set up is still the one going on (same peer connection), active, settled, audible."""
    for tab in tabs:
        wait_for(lambda tab=tab: tab.js(SETTLED), timeout=10, what=f"{tab.size}: connected and stable again")
        assert tab.js("() => window.opencall.phone.session.pc === window.__pc"), "a new call was set up"
        assert tab.js("() => window.opencall.phone.state") == "active"
        expect(tab.page.locator("#call-layer")).to_have_attribute("data-state", "active")
    for tab in tabs:
        audio_flows(tab)


def answered_calls(tab: Tab) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = tab.js("async () => (await (await fetch('/api/call-history')).json()).calls")
    return calls


@pytest.mark.parametrize("dropped", ["caller", "callee"])
def test_a_dropped_server_connection_resumes_the_call(open_tab, dropped: str) -> None:
    caller = open_tab("/", size="desktop")
    register_in_ui(caller, unique("roam"))  # an account, for the history at the end
    caller.open("/")
    caller_id = caller.call_id()
    callee = open_tab("/", size="phone")
    callee_id = callee.call_id()
    call_and_accept(caller, callee, callee_id)
    for tab in (caller, callee):
        tab.js("() => { window.__pc = window.opencall.phone.session.pc; }")
        audio_flows(tab)
    victim, other = (caller, callee) if dropped == "caller" else (callee, caller)
    token = victim.js("() => window.opencall.signaling.resumeToken")
    assert isinstance(token, str) and len(token) == 32
    logs = {tab.size: console_lines(tab) for tab in (caller, callee)}

    # The connection closes under the page, as a network change closes it.
    victim.js("() => window.opencall.signaling.socket.io.engine.close()")

    def resumed() -> bool:
        state = recovery(victim)
        return state["signaling"]["connected"] and state["call"]["resumes"] == 1
    wait_for(resumed, timeout=5, what=f"the {dropped}'s new connection to resume the call")
    assert victim.js("() => window.opencall.signaling.callId") == (caller_id if dropped == "caller" else callee_id)
    assert victim.js("() => window.opencall.signaling.resumeToken") not in (None, token)  # single-use: a new one
    # Whoever was replaced, the caller restarts ICE (on call-resumed, or on the callee's peer-reconnected).
    wait_for(lambda: recovery(caller)["call"]["restartsSent"] >= 1, timeout=5, what="the caller's ICE restart")
    assert recovery(callee)["call"]["restartsSent"] == 0  # the callee never offers
    still_in_the_same_call((caller, callee))
    assert recovery(other)["signaling"]["connects"] == 1  # the other side kept its connection
    assert any("call-resumed" in line or "resumed on the new connection" in line for line in logs[victim.size])
    if dropped == "callee":
        assert any("reconnected to the server" in line for line in logs["desktop"]), logs["desktop"]

    caller.page.get_by_role("button", name="Hang up").click()
    wait_home_with(callee, "hung up")
    history = wait_for(lambda: answered_calls(caller), what="the call in the caller's history")
    assert [(c["direction"], c["peer"], c["status"]) for c in history] == [("outgoing", callee_id, "answered")]


def test_the_media_watchdog_replaces_the_connection_when_audio_stops(open_tab) -> None:
    callee = open_tab("/", size="phone")
    callee_id = callee.call_id()
    caller = open_tab("/", size="desktop")
    caller.call_id()
    call_and_accept(caller, callee, callee_id)
    for tab in (caller, callee):
        tab.js("() => { window.__pc = window.opencall.phone.session.pc; }")
        audio_flows(tab)
    logs = {tab.size: console_lines(tab) for tab in (caller, callee)}

    # The callee stops sending: the caller hears nothing for 2 s, replaces its server connection (which
    # resumes the call) and restarts ICE.
    callee.js(SEND, False)

    def caller_recovered() -> dict[str, Any] | None:
        state = recovery(caller)
        call = state["call"]
        done = (call["watchdog"]["stalls"] == 1 and state["signaling"]["forcedReconnects"] == 1
                and call["resumes"] == 1 and call["restartsSent"] >= 1)
        return state if done else None
    wait_for(caller_recovered, timeout=8, what="the caller's watchdog to replace the connection and restart ICE")
    # Once per stall: still silent two seconds on, it has not fired again.
    caller.page.wait_for_timeout(2500)
    state = recovery(caller)
    assert state["call"]["watchdog"]["stalled"] is True, state
    assert (state["call"]["watchdog"]["stalls"], state["signaling"]["forcedReconnects"]) == (1, 1), state
    callee_state = recovery(callee)
    assert (callee_state["call"]["watchdog"]["stalls"], callee_state["signaling"]["forcedReconnects"]) == (0, 0)
    assert any("media watchdog: no audio packets" in line for line in logs["desktop"]), logs["desktop"]

    # Packets flow again: the watchdog re-arms.
    callee.js(SEND, True)
    wait_for(lambda: recovery(caller)["call"]["watchdog"]["stalled"] is False, timeout=5, what="the watchdog to re-arm")
    still_in_the_same_call((caller, callee))
    restarts_before = recovery(caller)["call"]["restartsSent"]

    # The caller stops sending: the callee's watchdog replaces the callee's connection (it never restarts ICE
    # itself); its resume tells the caller (peer-reconnected), which restarts ICE.
    caller.js(SEND, False)

    def callee_recovered() -> bool:
        state = recovery(callee)
        return (state["call"]["watchdog"]["stalls"] == 1 and state["signaling"]["forcedReconnects"] == 1
                and state["call"]["resumes"] == 1)
    wait_for(callee_recovered, timeout=8, what="the callee's watchdog to replace its connection")
    wait_for(lambda: recovery(caller)["call"]["restartsSent"] > restarts_before, timeout=5,
             what="the caller's ICE restart after peer-reconnected")
    assert recovery(callee)["call"]["restartsSent"] == 0
    caller.js(SEND, True)
    still_in_the_same_call((caller, callee))
    assert recovery(caller)["call"]["watchdog"]["stalls"] == 1  # the caller kept hearing the callee

    caller.page.get_by_role("button", name="Hang up").click()
    wait_home_with(callee, "hung up")
