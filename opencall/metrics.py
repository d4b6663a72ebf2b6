"""The Prometheus text exposition (format 0.0.4) of /metrics: plain functions from numbers to lines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from opencall.services.ratelimit import RateLimiter
from turn.gate import GLOBAL_LIMIT, PER_IP_LIMIT, ConnectionGate

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
    ("connections", "opencall_turn_connections", "gauge", "TURN TCP and TLS connections open now.", {}),
    *(
        (key, "opencall_turn_connections_refused_total", "counter",
         "TURN TCP/TLS connections refused at accept, by cap.", {"reason": reason})
        for key, reason in (("connections_refused_global", "global_limit"),
                            ("connections_refused_per_ip", "per_ip_limit"))
    ),
    *(
        (key, "opencall_turn_connections_closed_total", "counter",
         "TURN TCP/TLS connections closed by the relay, by reason.", {"reason": reason})
        for key, reason in (("connections_closed_idle", "idle"), ("connections_closed_handshake", "tls_handshake"),
                            ("connections_closed_oversized", "oversized_frame"),
                            ("connections_closed_malformed", "malformed"))
    ),
    ("connections_paused", "opencall_turn_connections_paused_total", "counter",
     "Times the relay stopped reading a TCP/TLS client that did not read its replies.", {}),
    ("stream_drops", "opencall_turn_stream_drops_total", "counter",
     "Messages to TCP/TLS clients dropped because their queue was full (stream_write_buffer).", {}),
    ("peers_denied", "opencall_turn_peers_refused_total", "counter",
     "TURN permissions, channels and sends refused by the peer policy (403), all reasons.", {}),
    ("peers_unauthorized", "opencall_turn_peers_refused_by_call_policy_total", "counter",
     "Of those, permissions and channels refused because the peer is not the other party of a live call.", {}),
    ("input_budget_rate", "opencall_turn_input_budget", "gauge",
     "Per-source budget of STUN/TURN messages from sources without an allocation.", {"limit": "per_second"}),
    ("input_budget_burst", "opencall_turn_input_budget", "gauge",
     "Per-source budget of STUN/TURN messages from sources without an allocation.", {"limit": "burst"}),
    *(
        (key, "opencall_turn_dropped_total", "counter", "STUN/TURN input or replies dropped, by reason.",
         {"reason": reason})
        for key, reason in (("budget_drops", "input_budget"), ("allocation_budget_drops", "allocation_budget"),
                            ("malformed_drops", "malformed"), ("rate_limited", "reply_rate"),
                            ("amplification_drops", "amplification"))
    ),
    *(
        (key, "opencall_turn_error_responses_total", "counter", "STUN/TURN error responses, by code.",
         {"code": code})
        for key, code in (("bad_requests", "400"), ("unknown_attributes", "420"),
                          ("allocation_mismatches", "437"), ("stale_nonces", "438"), ("wrong_credentials", "441"))
    ),
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
    http_connections: Mapping[str, int] = field(default_factory=dict)  # http_snapshot() of the HTTPS gate
    client_log: Mapping[str, int] = field(default_factory=dict)  # services.client_log.ClientLog.counters()


def http_snapshot(gate: ConnectionGate) -> dict[str, int]:
    """The HTTPS connection gate's numbers: ``open`` and the refusals by reason."""
    return {"open": gate.open, **gate.refused}


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
    http = snapshot.http_connections
    if http:
        out.add("opencall_http_connections", "gauge", "HTTPS connections open now (TLS handshake done).",
                http.get("open", 0))
        for reason in (GLOBAL_LIMIT, PER_IP_LIMIT):
            out.add("opencall_http_connections_refused_total", "counter",
                    "HTTPS connections refused with 503, by cap.", http.get(reason, 0), {"reason": reason})
    for key, count in snapshot.client_log.items():  # {written,dropped}_{lines,bytes}
        outcome, _, unit = key.partition("_")
        out.add(f"opencall_client_log_{unit}_total", "counter", f"Browser log {unit} (POST /api/client-log) "
                "written to client.log, or dropped over client_log.bytes_per_minute.", count, {"outcome": outcome})
    out.add("opencall_relay_up", "gauge", "1 when the TURN relay is running.",
            1 if snapshot.relay_state == "ok" else 0)
    counters = snapshot.relay_counters
    if counters is not None:  # absent, rather than zero, while no relay is attached
        for key, name, kind, help_text, labels in RELAY_METRICS:
            if key in counters:
                out.add(name, kind, help_text, counters[key], labels)
    return out.text()
