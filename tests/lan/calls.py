"""Calls between the phones of the test LAN through the real web app, with the figures a scenario reports."""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, expect

from tests.lan.conftest import Home
from tests.web.conftest import PHONE, TIMEOUT_MS, Tab, watch_policies
from tests.web.helpers import audio_flows, call_and_accept, wait_for

# The selected candidate pair, each end as getStats describes it.
SELECTED_PAIR = """async () => {
  const pc = window.opencall.phone.session.pc;
  const stats = new Map();
  (await pc.getStats()).forEach((r) => stats.set(r.id, r));
  for (const r of stats.values()) {
    if (r.type !== 'transport' || !r.selectedCandidatePairId) continue;
    const pair = stats.get(r.selectedCandidatePairId);
    const end = (id) => {
      const c = stats.get(id);
      return {type: c.candidateType, address: c.address, port: c.port, protocol: c.protocol,
              relayProtocol: c.relayProtocol || null};
    };
    return {local: end(pair.localCandidateId), remote: end(pair.remoteCandidateId)};
  }
  return null;
}"""

INBOUND_PACKETS = """async () => {
  const s = window.opencall.phone.session;
  if (!s || !s.pc) return -1;
  let packets = 0;
  (await s.pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'audio') packets += r.packetsReceived || 0;
  });
  return packets;
}"""

# Started before Accept: the wall-clock time (ms) at which this page received its first audio packet.
WATCH_FIRST_AUDIO = """() => {
  window.__firstAudioAt = null;
  (async () => {
    const until = Date.now() + 20000;
    while (Date.now() < until) {
      const s = window.opencall.phone.session;
      if (s && s.pc) {
        let packets = 0;
        (await s.pc.getStats()).forEach((r) => {
          if (r.type === 'inbound-rtp' && r.kind === 'audio') packets += r.packetsReceived || 0;
        });
        if (packets > 0) { window.__firstAudioAt = Date.now(); return; }
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
}"""

APP_LOG = re.compile(r"^\[(?P<at>[^\]]+)\] \[\w+\] \[(?P<topic>\w+)\] (?P<text>.*)$")


@dataclass
class Phone:
    """One person's tab on a phone: the page, its console log (the app's own timestamped lines)."""

    name: str
    tab: Tab
    context: BrowserContext
    log: list[str] = field(default_factory=list)

    def logged_at(self, text: str) -> float:
        """When the app logged a line starting with ``text`` (ms since the epoch)."""
        for line in self.log:
            match = APP_LOG.match(line)
            if match and match["text"].startswith(text):
                return datetime.fromisoformat(match["at"].replace("Z", "+00:00")).timestamp() * 1000
        raise AssertionError(f"{self.name} never logged {text!r}; its log: {self.log[-20:]}")

    def timeline(self, since_ms: float) -> list[tuple[int, str, str]]:
        """The app's log lines from ``since_ms`` on: (ms after it, this phone, topic and text)."""
        lines = []
        for line in self.log:
            match = APP_LOG.match(line)
            if match:
                at = datetime.fromisoformat(match["at"].replace("Z", "+00:00")).timestamp() * 1000
                if at >= since_ms and "candidate" not in match["text"]:
                    lines.append((round(at - since_ms), self.name, f"[{match['topic']}] {match['text']}"))
        return lines

    def inbound_packets(self) -> int:
        return int(self.tab.js(INBOUND_PACKETS))


def open_phone(home: Home, name: str, url: str) -> Phone:
    """The web app at ``url`` in a new context of phone ``name``'s browser (one person, fresh cookies)."""
    context = home.browsers[name].new_context(viewport=PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    base = url.rstrip("/")
    phone = Phone(name, Tab(page, base, "phone"), context)
    watch_policies(context, phone.tab.violations)
    page.on("console", lambda message: phone.log.append(message.text))
    page.on("pageerror", lambda error: phone.tab.errors.append(str(error)))
    page.on("request", lambda request: home.requests.append(request.url))
    phone.tab.open("/")
    return phone


def audio_steady(phone: Phone, windows: int = 4, seconds: float = 0.5) -> list[int]:
    """Audio keeps arriving with no freeze: packets grow in every one of ``windows`` spans of ``seconds``
    (Opus sends 50 packets a second)."""
    counts = [phone.inbound_packets()]
    for _ in range(windows):
        phone.tab.page.wait_for_timeout(int(seconds * 1000))
        counts.append(phone.inbound_packets())
    deltas = [b - a for a, b in itertools.pairwise(counts)]
    assert all(delta >= 10 for delta in deltas), f"{phone.name}: audio froze: packets per {seconds}s {deltas}"
    return deltas


def describe(pair: dict[str, Any]) -> str:
    """``relay(tls) 192.168.50.2 ↔ host fd42:50::12``."""
    def end(side: dict[str, Any]) -> str:
        kind = side["type"] + (f"({side['relayProtocol']})" if side.get("relayProtocol") else "")
        return f"{kind} {side['address']}/{side['protocol']}"
    return f"{end(pair['local'])} ↔ {end(pair['remote'])}"


@dataclass
class Call:
    caller: Phone
    callee: Phone
    figures: dict[str, Any]

    def hang_up(self) -> None:
        self.caller.tab.page.get_by_role("button", name="Hang up").click()
        expect(self.callee.tab.page.locator("#call-layer")).to_be_hidden()
        for phone in (self.caller, self.callee):
            assert not phone.tab.errors, f"{phone.name}: uncaught errors {phone.tab.errors}"
            assert not phone.tab.violations, f"{phone.name}: security policy violations {phone.tab.violations}"
            phone.context.close()


def place_call(home: Home, url_of: dict[str, str], caller: str = "ph1", callee: str = "ph2") -> Call:
    """ph1 calls ph2 through the app, ph2 answers; both hear each other. Returns the call with its figures:
    call → ringing and answer → first audio (ms, from the app's own clocks), and each side's selected pair."""
    them = open_phone(home, callee, url_of[callee])
    them_id = them.tab.call_id()
    me = open_phone(home, caller, url_of[caller])
    me.tab.call_id()
    for phone in (me, them):
        phone.tab.js(WATCH_FIRST_AUDIO)
    call_and_accept(me.tab, them.tab, them_id)
    first_audio = wait_for(lambda: all(p.tab.js("() => window.__firstAudioAt") for p in (me, them)),
                           timeout=15, what="the first audio packet on both phones")
    assert first_audio
    called, rang = me.logged_at("calling "), them.logged_at("incoming call from ")
    accepted = them.logged_at("accepting call from ")
    heard = max(p.tab.js("() => window.__firstAudioAt") for p in (me, them))
    for phone in (me, them):
        audio_flows(phone.tab)
        audio_steady(phone)
    pairs = {phone.name: me.tab.js(SELECTED_PAIR) if phone is me else them.tab.js(SELECTED_PAIR)
             for phone in (me, them)}
    figures = {
        "call_to_ringing_ms": round(rang - called),
        "answer_to_first_audio_ms": round(heard - accepted),
        "pair": {name: describe(pair) for name, pair in pairs.items()},
        "pair_types": {name: (pair["local"]["type"], pair["remote"]["type"]) for name, pair in pairs.items()},
        "raw_pairs": pairs,
    }
    return Call(me, them, figures)


def hosts_asked_for(urls: list[str]) -> set[str]:
    """The hosts the pages fetched from (data: and blob: URLs have none)."""
    return {urlsplit(url).hostname or "" for url in urls if not url.startswith(("data:", "blob:"))}


def wait_recovered(call: Call, timeout: float = 20.0) -> float:
    """After a network change: wait until audio has stalled and then flows both ways again (10 packets in the
    last half second on each phone); returns when it flowed again (ms since the epoch)."""
    phones = (call.caller, call.callee)
    history: list[tuple[float, dict[str, int]]] = []
    stalled = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history.append((time.time() * 1000, {p.name: p.inbound_packets() for p in phones}))
        then = next((counts for at, counts in reversed(history) if history[-1][0] - at >= 500), None)
        if then is not None:
            flowing = all(history[-1][1][name] - then[name] >= 10 for name in then)
            stalled = stalled or not flowing
            if stalled and flowing:
                return history[-1][0]
        time.sleep(0.1)
    raise AssertionError(f"audio did not stall and come back within {timeout}s: {history[-1]}")
