"""The logic of bench/hostile.py that its figures rest on: the verdict against the targets, the latency window,
and the attack messages, which the relay's own decoder must read as the bench means them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from aioice.stun import Method

from turn import stun
from turn.credentials import make_credentials

BENCH = Path(__file__).resolve().parent.parent / "bench" / "hostile.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_hostile", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


hostile = load_bench()


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert hostile.percentile(values, 0.50) == 50
    assert hostile.percentile(values, 0.99) == 99
    assert hostile.percentile([3.0, 1.0, 2.0], 0.99) == 3
    assert hostile.percentile([], 0.5) != hostile.percentile([], 0.5)  # nan when there is nothing


def test_latency_window_and_fresh_probes() -> None:
    outcome = hostile.Outcome("x", 1)
    samples = [(0.5, 9.0, True, False)]  # before the attack: left out
    samples += [(1.0 + i / 100, 0.001 * (i + 1), True, False) for i in range(100)]
    samples += [(1.5, 0.3, False, True), (1.6, 0.01, True, True)]
    late = [(0.5, 1.0), (1.2, 0.002), (1.3, 0.004)]
    hostile.summarise(outcome, samples, late, 1.0, 2.0)
    assert outcome.prober_late_p99_ms == 4.0
    assert (outcome.probes, outcome.probe_errors) == (100, 0)
    assert (outcome.p50_ms, outcome.p99_ms, outcome.max_ms) == (50.0, 99.0, 100.0)
    assert (outcome.fresh_ok, outcome.fresh_total) == (1, 2)


def met(**changes: object) -> list[str]:
    outcome = hostile.Outcome("x", 10, probes=500, p50_ms=3.0, p99_ms=49.9, max_ms=249.9, rss_before_mb=80.0,
                              rss_peak_mb=179.9, stun_after_ms=1.0, https_after_ms=5.0)
    for name, value in changes.items():
        setattr(outcome, name, value)
    missed: list[str] = outcome.missed()
    return missed


def test_each_target_can_be_missed() -> None:
    assert met() == []
    assert met(p99_ms=50.0) == ["/healthz p99 50.0 ms >= 50 ms"]
    assert met(max_ms=250.0) == ["/healthz max 250.0 ms >= 250 ms"]
    assert met(rss_peak_mb=180.0) == ["RSS grew 100.0 MB >= 100 MB"]
    assert met(stun_after_ms=None) == ["no answer to a fresh STUN Binding afterwards"]
    assert met(https_after_ms=None) == ["no answer to a fresh HTTPS request afterwards"]
    assert met(probe_errors=2) == ["2 /healthz requests failed"]
    assert len(met(probes=0, p99_ms=float("nan"), max_ms=float("nan"))) == 2  # no figures is no pass


def test_permission_request_is_signed_and_names_every_peer() -> None:
    credentials = make_credentials(hostile.SECRET, "bench", 3600)
    key = hostile.long_term_key(credentials.username, credentials.credential)
    peers = [("127.3.0.1", 5000), ("127.3.200.9", 61000)]
    data = hostile.permission_request(b"".join(hostile.xor_peer(*peer) for peer in peers), credentials.username,
                                      b"nonce", key)
    decoded = stun.decode(data)
    assert decoded.message.message_method == Method.CREATE_PERMISSION
    assert decoded.peers == peers
    assert stun.check_integrity(decoded, key)
    assert not stun.check_integrity(decoded, hostile.long_term_key(credentials.username, "wrong"))


def test_attribute_flood_is_the_packet_of_the_issue() -> None:
    data = hostile.attribute_flood()
    assert 60_000 < len(data) < 65_536 and int.from_bytes(data[2:4], "big") == len(data) - 20
    kinds = {int.from_bytes(data[i : i + 2], "big") for i in range(20, len(data), 4)}
    assert len(kinds) == 16_000 and all(0x4000 <= kind < 0x8000 for kind in kinds)  # comprehension-required


def test_attacks_and_their_durations_are_picked_by_name() -> None:
    assert hostile.parse_attacks("slowloris:25, credential-flood", 10, None) == [("slowloris", 25.0),
                                                                                ("credential-flood", 10.0)]
    assert hostile.parse_attacks("slowloris:25", 10, 3.0) == [("slowloris", 3.0)]  # --quick
    assert hostile.parse_args(["--attacks", "slowloris,idle:2", "--baseline", "4"]).attacks == [
        ("idle", 4.0), ("slowloris", 10.0), ("idle", 2.0)]
    for bad in ("nosuch", "slowloris:soon", "slowloris:0", "slowloris:3600"):
        with pytest.raises(ValueError, match=r"slowloris|nosuch"):
            hostile.parse_attacks(bad, 10, None)
