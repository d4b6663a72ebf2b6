"""The ``opencall`` command: ``serve`` and ``check-config``."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from collections.abc import Sequence

from opencall import __version__
from opencall.config import Config, ConfigError, load_config

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opencall", description="Self-hosted 1:1 calling appliance.")
    parser.add_argument("--version", action="version", version=f"opencall {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "run the web app, REST API, signaling and relay"),
        ("check-config", "validate the config file and print the effective settings"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--config", metavar="PATH", help="config file (default: $OPENCALL_CONFIG, "
                             "else the embedded defaults)")
    return parser


def serve(config: Config) -> int:
    """Run the server in this process until it is stopped."""
    from opencall.app import advertised_host, create_app
    from opencall.logs import setup_logging
    from opencall.tls import certificate_files

    setup_logging(config.log_file, config.log_level)
    addresses = [advertised_host(config)]
    if not ipaddress.ip_address(config.server.host).is_unspecified:
        addresses.append(config.server.host)
    files = certificate_files(config, addresses)
    app = create_app(config)
    ssl = {"cert": str(files[0]), "key": str(files[1])} if files else None
    app.run(
        host=config.server.host,
        port=config.server.port,
        ssl=ssl,
        single_process=True,
        access_log=config.log_level == "debug",
        motd=False,
    )
    return 0


def check_config(config: Config) -> int:
    scheme = "https" if config.tls_enabled else "http"
    print(f"config OK: {config.source or 'embedded defaults'}")
    print(f"  web:      {scheme}://{config.server.host}:{config.server.port}")
    print(f"  data_dir: {config.data_dir}")
    print(f"  database: {config.resolved_database_url}")
    print(f"  log_file: {config.log_file}")
    turn = config.turn
    print(f"  turn:     {'on, port ' + str(turn.port) if turn.enabled else 'off'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"opencall: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        if args.command == "check-config":
            return check_config(config)
        return serve(config)
    except OSError as exc:
        if logging.getLogger().handlers:  # logging is set up: it writes stderr and the log file
            logging.getLogger("opencall").error("cannot start: %s", exc)
        else:
            print(f"opencall: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
