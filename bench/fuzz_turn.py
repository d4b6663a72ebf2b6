"""Benchmark (not a test): structure-aware fuzzing of the relay's request path, a million inputs or more.

The same plans as tests/turn/test_fuzz.py (tests/turn/fuzzing.py: real seeds from aioice, aiortc and coturn's
turnutils_uclient, mutated in structure and in bytes, half of them signed with valid credentials), drawn with
``random.Random`` instead of hypothesis so that millions fit in minutes. Each input goes through a live relay's
UDP listener and, as a TCP client's frame, through ``on_stun``, in-process; each is timed in CPU seconds of
the loop's thread. Reported: inputs, exceptions (with the first one's input and traceback), CPU time per input
and path (max, p99, p99.9, mean), inputs over 5 ms, wall time. An input over 5 ms is timed again 20 times: it
is a stall when even its fastest run takes over 5 ms (one slow run on a shared 2-core machine is the machine's,
as a run that times the same input 10,000 times shows).

    python bench/fuzz_turn.py                      # 1,000,000 inputs, at most 30 minutes
    python bench/fuzz_turn.py --inputs 100000 --seed 7 --max-seconds 300

Loopback only: replies go to a socket of this process on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.turn import fuzzing

STALL = 0.005
BATCH = 200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=1800, help="stop early after this long")
    args = parser.parse_args()
    rng = random.Random(args.seed)  # noqa: S311 - reproducible fuzzing, not secrets
    harness = fuzzing.Harness()
    stats = fuzzing.Stats()
    started = time.monotonic()
    try:
        for plans in fuzzing.batches(rng, BATCH):
            harness.feed([fuzzing.build(plan, harness.identity) for plan in plans], stats)
            if stats.inputs >= args.inputs or time.monotonic() - started > args.max_seconds:
                break
            if stats.inputs % 100_000 < BATCH:
                print(f"  {stats.inputs:,} inputs, {len(stats.exceptions)} exceptions", flush=True)
        counters = harness.relay.counters.snapshot()
        confirmed = [(cost, data) for data in stats.stalls if (cost := harness.retime(data, 20)) > STALL]
    finally:
        harness.close()
    wall = time.monotonic() - started
    times = stats.times
    print(f"inputs: {stats.inputs:,} (x2 paths: UDP listener, TCP on_stun), seed {args.seed}, {wall:.0f} s wall")
    print(f"exceptions: {len(stats.exceptions)}; loop errors: {len(harness.loop_errors)}")
    print(f"CPU per input and path: max {stats.slowest[0] * 1e3:.3f} ms, p99.9 {stats.percentile(0.999) * 1e3:.3f} ms, "
          f"p99 {stats.percentile(0.99) * 1e3:.3f} ms, mean {statistics.fmean(times) * 1e6:.1f} µs")
    print(f"over {STALL * 1e3:.0f} ms once: {len(stats.stalls)}; over it in each of 20 runs more (stalls): "
          f"{len(confirmed)}; slowest input: {len(stats.slowest[1])} bytes, {stats.slowest[1][:24].hex()}…")
    for cost, data in confirmed[:5]:
        print(f"  stall: {cost * 1e3:.3f} ms at best, {data.hex()}")
    print("relay counters: " + ", ".join(f"{key}={value}" for key, value in counters.items()
                                         if value and not key.startswith("input_budget")))
    if stats.exceptions:
        print("first exception:\n" + stats.exceptions[0])
    failed = stats.exceptions or harness.loop_errors or confirmed or stats.inputs < args.inputs
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
