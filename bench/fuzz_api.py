"""Fuzz the REST API and the Socket.IO events of a real ``opencall serve`` (127.0.0.1) with many more inputs than CI.

REST: schemathesis with every operation of the OpenAPI document the server serves at /api/openapi.json, positive
and negative data, four kinds of client (API key, bearer, session cookie, none), the checks not_a_server_error,
status_code_conformance, content_type_conformance and response_schema_conformance (tests/api/schema_fuzz.py);
failures are counted and the run goes on. Socket.IO: the malformed events of tests/signaling/event_fuzz.py, each
judged against the contract. Afterwards the server must answer /healthz and a fresh register, and its log must
hold no traceback.

Example (the figures in docs/benchmarks.md)::

    python bench/fuzz_api.py --rest-examples 150 --socket-examples 5000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.api import schema_fuzz
from tests.signaling.event_fuzz import Fuzzer, inputs, judge
from tests.support import NO_CALL_LIMITS, Server, test_config


def fuzz_rest(server: Server, examples: int) -> None:
    tally, took = schema_fuzz.fuzz(server, max_examples=examples, keep_going=True)
    print(f"REST: {tally.inputs} requests over {len(tally.operations)} operations in {took:.1f} s "
          f"({tally.inputs / took:.0f}/s); server errors {tally.server_errors}, schema breaks "
          f"{tally.schema_breaks}, other failures {tally.other_failures}")
    print("  statuses:", dict(sorted(tally.statuses.items())))
    for example in tally.examples:
        print(example)


def fuzz_socket(server: Server, examples: int) -> None:
    loop = asyncio.new_event_loop()
    fuzzer = Fuzzer(server.base_url)
    problems: list[str] = []

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(item=inputs)
    def one(item: tuple[str, object]) -> None:
        event, payload = item
        answered = loop.run_until_complete(fuzzer.send(event, payload))
        problem = judge(event, payload, answered)
        if problem is not None:
            problems.append(f"{problem}: {event!r} {str(payload)[:200]!r} -> {str(answered)[:200]}")

    started = time.monotonic()
    one()
    took = time.monotonic() - started
    sent = fuzzer.sent
    fuzzer.sent = 0  # a fresh socket: the register after the fuzzing
    registered = loop.run_until_complete(fuzzer.send("register", {"displayName": "After"}))
    loop.run_until_complete(fuzzer.close())
    loop.close()
    print(f"Socket.IO: {sent} inputs in {took:.1f} s ({sent / took:.0f}/s); answers outside the contract "
          f"{len(problems)}; a fresh register afterwards: {registered[0] if registered else 'nothing'}")
    for problem in problems[:20]:
        print("  ", problem)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rest-examples", type=int, default=400, help="per operation and generation mode")
    parser.add_argument("--socket-examples", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opencall-fuzz-") as folder:
        workdir = Path(folder)
        server = Server(workdir, test_config(workdir, NO_CALL_LIMITS)).start()
        try:
            fuzz_rest(server, args.rest_examples)
            fuzz_socket(server, args.socket_examples)
            healthy = httpx.get(f"{server.base_url}/healthz", timeout=10).status_code == 200
            log = server.stderr_path.read_text(errors="replace")
            tracebacks = log.count("Traceback")
            print(f"afterwards: /healthz {'200' if healthy else 'FAILED'}, tracebacks in the log {tracebacks}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
