"""``python -m turn --config FILE``: run the relay on its own, for tests and benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from turn.config import FILE_KEYS, load_config
from turn.server import TurnServer

EPILOG = f"""\
The config file is YAML (or JSON) with these keys; only secret is required:
  secret          HMAC secret of the time-limited credentials (username "<expiry>:<user>")
  listen, port    STUN/TURN over UDP and TCP (default 0.0.0.0, 3478)
  tls_port        TURN over TLS, with tls_cert and tls_key (PEM files; relative to the config file)
  relay_ip        address of the relay sockets (required when listen is a wildcard)
  relay_ports     e.g. 49152-65535 (within 1024-65535)
  realm           default opencall
  allowed_peers   CIDRs peers may be relayed to; auto = this host's subnets + relay_ip (default [auto])
  denied_peers    CIDRs never relayed to
  max_allocations, max_allocations_per_user, software, allocation_lifetime, max_allocation_lifetime,
  permission_lifetime, channel_lifetime, nonce_lifetime, unauthenticated_rate, unauthenticated_burst

All keys: {", ".join(FILE_KEYS)}.

Example:
  secret: change-me
  listen: 127.0.0.1
  port: 3478
  relay_ports: 50000-50999
  allowed_peers: [127.0.0.0/8]
"""


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the relay until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m turn", description="Run the OpenCall STUN/TURN relay alone.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML or JSON config file")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except (OSError, ValueError) as exc:
        print(f"turn: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(_serve(TurnServer(config)))
    except OSError as exc:
        print(f"turn: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(server: TurnServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    print("ready", flush=True)
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await server.stop()


if __name__ == "__main__":
    sys.exit(main())
