"""The Prometheus text exposition (format 0.0.4) of /metrics: plain functions from numbers to lines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from opencall.services.ratelimit import RateLimiter
from opencall.services.registry import Registry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Relay counter (turn.counters.Counters snapshot key) -> (metric, type, help, labels).
RELAY_METRICS: tuple[tuple[str, str, str, str, dict[str, str]], ...] = (
    ("allocations", "opencall_turn_allocations", "gauge", "TURN allocations open now.", {}),
    ("allocations_created", "opencall_turn_allocations_created_total", "counter",
     "TURN allocations created since start.", {}),
    ("packets_to_peers", "opencall_turn_relayed_packets_total", "counter",
     "Payloads relayed by TURN since start.", {"direction": "to_peer"}),
    ("packets_to_clients", "opencall_turn_relayed_packets_total", "counter",
     "Payloads relayed by TURN since start.", {"direction": "to_client"}),
    ("bytes_to_peers", "opencall_turn_relayed_bytes_total", "counter",
     "Payload bytes relayed by TURN since start.", {"direction": "to_peer"}),
    ("bytes_to_clients", "opencall_turn_relayed_bytes_total", "counter",
     "Payload bytes relayed by TURN since start.", {"direction": "to_client"}),
    ("auth_failures", "opencall_turn_auth_failures_total", "counter",
     "TURN requests with wrong, forged or expired credentials.", {}),
)


@dataclass
class Exposition:
    """Lines of one exposition; each metric family gets its HELP and TYPE once."""

    lines: list[str] = field(default_factory=list)
    _declared: set[str] = field(default_factory=set)

    def add(self, name: str, kind: str, help_text: str, value: float,
            labels: Mapping[str, str] | None = None) -> None:
        if name not in self._declared:
            self._declared.add(name)
            self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        label_text = ",".join(f'{key}="{_escape(val)}"' for key, val in (labels or {}).items())
        self.lines.append(f"{name}{{{label_text}}} {value:g}" if label_text else f"{name} {value:g}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def live_calls(registry: Registry) -> dict[str, int]:
    """Calls in progress by state (``ringing``, ``active``), counted once however many sockets share them."""
    calls = {id(peer.call): peer.call for peer in registry.peers.values() if peer.call is not None}
    counts = {"ringing": 0, "active": 0}
    for call in calls.values():
        state = getattr(call, "state", None)
        if state in counts:
            counts[state] += 1
    return counts


@dataclass(frozen=True)
class Snapshot:
    """Everything one scrape reports, read at one moment."""

    version: str
    sockets: int
    calls: Mapping[str, int]
    outcomes: Mapping[str, int]  # finished calls by status, from the calls table
    rate_limit_refusals: Mapping[str, int]
    relay_state: str
    relay_counters: Mapping[str, int] | None


def refusals(limiters: Iterable[tuple[str, RateLimiter]]) -> dict[str, int]:
    """Refused events per named limiter."""
    return {name: limiter.refused for name, limiter in limiters}


def render(snapshot: Snapshot) -> str:
    """The exposition text for ``snapshot``."""
    out = Exposition()
    out.add("opencall_info", "gauge", "OpenCall version.", 1, {"version": snapshot.version})
    out.add("opencall_sockets_connected", "gauge", "Socket.IO connections open now.", snapshot.sockets)
    for state, count in snapshot.calls.items():
        out.add("opencall_calls", "gauge", "Calls in progress by state.", count, {"state": state})
    for outcome in sorted({"answered", "rejected", "missed", *snapshot.outcomes}):
        out.add("opencall_calls_finished_total", "counter", "Finished calls by outcome (the call history).",
                snapshot.outcomes.get(outcome, 0), {"outcome": outcome})
    for limit, count in sorted(snapshot.rate_limit_refusals.items()):
        out.add("opencall_rate_limit_hits_total", "counter", "Requests refused by a rate limit since start.",
                count, {"limit": limit})
    out.add("opencall_relay_up", "gauge", "1 when the TURN relay is running.",
            1 if snapshot.relay_state == "ok" else 0)
    counters = snapshot.relay_counters
    if counters is not None:  # absent, rather than zero, while no relay is attached
        for key, name, kind, help_text, labels in RELAY_METRICS:
            if key in counters:
                out.add(name, kind, help_text, counters[key], labels)
    return out.text()
