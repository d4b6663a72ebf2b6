"""ICE restart during a call (docs/web.md "WebRTC choices"): the caller offers new ICE credentials over our
`renegotiate` event, the callee answers, and the call carries on over the new ICE session."""

from __future__ import annotations

import pytest

from tests.web.conftest import Tab
from tests.web.helpers import SELECTED_PAIR, audio_flows, call_and_accept, wait_for, wait_home_with, wait_in_call

# Each side's local and remote ICE username fragment, and the one of the candidate carrying the media now.
ICE_STATE = r"""async () => {
  const pc = window.opencall.phone.session.pc;
  const ufrag = (description) => (description.sdp.match(/^a=ice-ufrag:(\S+)\r?$/m) || [])[1] || null;
  const stats = new Map();
  (await pc.getStats()).forEach((r) => stats.set(r.id, r));
  let media = null;
  for (const r of stats.values()) {
    if (r.type === 'transport' && r.selectedCandidatePairId) {
      media = stats.get(stats.get(r.selectedCandidatePairId).localCandidateId).usernameFragment || null;
    }
  }
  return {local: ufrag(pc.localDescription), remote: ufrag(pc.remoteDescription), media,
          connection: pc.connectionState, signaling: pc.signalingState, phone: window.opencall.phone.state};
}"""


def ice_config_requests(tab: Tab) -> list[str]:
    """The /api/ice-config requests this tab makes from now on."""
    seen: list[str] = []
    tab.page.on("request", lambda request: seen.append(request.url) if "/api/ice-config" in request.url else None)
    return seen


@pytest.mark.parametrize("route", ["direct", "relay"])
def test_caller_restarts_ice_and_the_call_carries_on(open_tab, route: str) -> None:
    query = "?forceRelay=1" if route == "relay" else "?forceRelay=0"
    callee = open_tab(f"/{query}", size="phone")
    callee_id = callee.call_id()
    caller = open_tab(f"/{query}", size="desktop")
    caller.call_id()
    call_and_accept(caller, callee, callee_id)
    for tab in (caller, callee):
        audio_flows(tab)

    before = {tab.size: tab.js(ICE_STATE) for tab in (caller, callee)}
    assert before["desktop"]["local"] and before["phone"]["local"], before
    assert before["desktop"]["remote"] == before["phone"]["local"], before
    assert before["phone"]["remote"] == before["desktop"]["local"], before
    fetched = {tab.size: ice_config_requests(tab) for tab in (caller, callee)}

    # Only the caller restarts (so the two never offer at once): on the callee it is refused and changes nothing.
    assert callee.js("() => window.opencall.phone.restartIce()") is False
    assert callee.js(ICE_STATE)["local"] == before["phone"]["local"]
    assert caller.js("() => window.opencall.phone.restartIce()") is True

    last: list[dict[str, dict]] = []

    def restarted() -> dict[str, dict] | None:
        now = {tab.size: tab.js(ICE_STATE) for tab in (caller, callee)}
        last[:] = [now]
        fresh = all(now[side]["local"] not in (None, before[side]["local"]) for side in now)
        paired = now["desktop"]["remote"] == now["phone"]["local"] and now["phone"]["remote"] == now["desktop"]["local"]
        # The caller (the controlling ICE agent) picks the pair: its media runs on the new session. The callee
        # may keep sending on its old pair while that still works, as it does on loopback.
        moved = now["desktop"]["media"] == now["desktop"]["local"]
        return now if fresh and paired and moved else None

    try:
        after = wait_for(restarted, timeout=15, what="new ICE credentials on both sides, carrying the media")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; before: {before}; last seen: {last}") from None
    for side, state in after.items():
        assert (state["connection"], state["signaling"], state["phone"]) == ("connected", "stable", "active"), side
    # Both fetched fresh ICE servers (their TURN credentials may have expired since the call began).
    assert len(fetched["desktop"]) == 1 and len(fetched["phone"]) == 1, fetched
    for tab in (caller, callee):
        wait_in_call(tab)
        audio_flows(tab)  # inbound audio keeps growing after the restart
        if route == "relay":
            assert tab.js(SELECTED_PAIR) == {"local": "relay", "remote": "relay"}
    caller.page.get_by_role("button", name="Hang up").click()
    wait_home_with(callee, "hung up")
