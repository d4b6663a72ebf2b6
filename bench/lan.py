"""Figures of the LAN scenarios (docs/benchmarks.md, "LAN"): runs tests/lan/test_home_lan.py several times and
prints the median of each timing per scenario, the selected pairs seen, and the capture's packet counts.

    python bench/lan.py --runs 5          # as root: it builds network namespaces

Each run is the whole test module (a fresh LAN, box and phones); its figures come from
test-artifacts/lan/figures.json, which the tests write.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "test-artifacts" / "lan" / "figures.json"
TIMINGS = ("call_to_ringing_ms", "answer_to_first_audio_ms", "recovered_ms", "mdns_resolve_ms")


def one_run() -> dict[str, Any]:
    FIGURES.unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/lan/test_home_lan.py"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-15:])
        print(f"run failed (exit {done.returncode}):\n{tail}", file=sys.stderr)
    return json.loads(FIGURES.read_text()) if FIGURES.exists() else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    timings: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    pairs: dict[str, set[str]] = defaultdict(set)
    packets: list[dict[str, dict[str, int]]] = []
    for run in range(args.runs):
        figures = one_run()
        print(f"run {run + 1}/{args.runs}: {len(figures)} scenarios", file=sys.stderr)
        for scenario, values in figures.items():
            if scenario == "packets":
                packets.append(values)
                continue
            for key in TIMINGS:
                if key in values:
                    timings[scenario][key].append(values[key])
            for side, pair in values.get("pair", {}).items():
                pairs[scenario].add(f"{side}: {pair}")
            if "pair_after" in values:
                pairs[scenario].add(f"after: {values['pair_after']}")
    print(f"| scenario | runs | {' | '.join(TIMINGS)} ms: median (min-max) | selected pair |")
    print("|---|---|" + "---|" * len(TIMINGS) + "---|")
    for scenario in sorted(timings):
        counts = {len(v) for v in timings[scenario].values()}
        cells = [f"{statistics.median(v):.0f} ({min(v):.0f}-{max(v):.0f})" if (v := timings[scenario].get(key)) else ""
                 for key in TIMINGS]
        print(f"| {scenario} | {max(counts)} | {' | '.join(cells)} | {'; '.join(sorted(pairs[scenario]))} |")
    if packets:
        print("\npackets per host (median over runs): sent / multicast / mDNS / DNS queries / to outside the LAN")
        for host in sorted(packets[0]):
            row = {key: statistics.median(run.get(host, {}).get(key, 0) for run in packets)
                   for key in ("packets", "multicast", "mdns", "dns_queries", "outside")}
            print(f"  {host}: {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
