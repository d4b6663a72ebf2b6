"""The ``opencall`` command: serve, init, check-config, doctor, user and version.

Every error leaves as one line on stderr (``opencall: …``) with a non-zero status, never a traceback:
2 for a bad config or bad arguments, 1 for everything else.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from opencall import __version__
from opencall.config import SYSTEM_CONFIG, Config, ConfigError, check_files, find_config

EXIT_FAILURE, EXIT_CONFIG = 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad arguments: one line and exit 2 (argparse would print the usage block first)."""
        self.exit(EXIT_CONFIG, f"opencall: {message} (see: {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="opencall", description="Self-hosted 1:1 calling appliance.")
    parser.add_argument("--version", action="version", version=f"opencall {__version__}")
    with_config = _Parser(add_help=False)
    with_config.add_argument("--config", metavar="PATH", help="config file (default: $OPENCALL_CONFIG, "
                             f"else {SYSTEM_CONFIG} when it exists, else the embedded defaults)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", parents=[with_config], help="run the web app, REST API, signaling and relay")
    commands.add_parser("check-config", parents=[with_config],
                        help="validate the config file and print the effective settings")
    commands.add_parser("doctor", parents=[with_config],
                        help="check config, ports, certificate, database and relay; print fixes")
    init = commands.add_parser("init", help="write a new config file with a fresh TURN secret")
    init.add_argument("path", metavar="PATH", type=Path, help="file to create (never overwritten)")
    commands.add_parser("version", help="print the version")

    user = commands.add_parser("user", help="manage accounts")
    actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", parents=[with_config], help="create an account (password from a prompt "
                             "or the first line of stdin)")
    add.add_argument("username")
    add.add_argument("--email", required=True)
    actions.add_parser("remove", parents=[with_config], help="delete an account").add_argument("username")
    reset = actions.add_parser("reset-password", parents=[with_config],
                               help="set a new password and sign out every session and socket")
    reset.add_argument("username")
    reset.add_argument("--rotate-key", action="store_true", help="replace the API key too (prints the new one)")
    actions.add_parser("list", parents=[with_config], help="list the accounts")
    return parser


def check_config(config: Config) -> int:
    """Print the effective settings of a valid config."""
    scheme = "https" if config.tls_enabled else "http"
    print("config OK")
    print(f"  web:      {scheme}://{config.server.host}:{config.server.port}")
    print(f"  data_dir: {config.data_dir}")
    print(f"  database: {config.resolved_database_url}")
    print(f"  log_file: {config.log_file}")
    turn = config.turn
    print(f"  turn:     {'on, port ' + str(turn.port) if turn.enabled else 'off'}")
    metrics = config.metrics
    print(f"  metrics:  {'on, from ' + ', '.join(metrics.allow) if metrics.enabled else 'off'}"
          f"{' or with the bearer token' if metrics.enabled and metrics.token else ''}")
    return 0


def _user(args: argparse.Namespace, config: Config) -> int:
    from opencall.commands import users

    if args.action == "list":
        print(asyncio.run(users.list_users(config)))
    elif args.action == "remove":
        print(asyncio.run(users.remove(config, args.username)))
    elif args.action == "add":
        print(asyncio.run(users.add(config, args.username, args.email, users.read_password())))
    else:
        print(asyncio.run(users.reset_password(config, args.username, users.read_password("New password"),
                                               rotate_key=args.rotate_key)))
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "version":
        print(f"opencall {__version__}")
        return 0
    if args.command == "init":
        from opencall.commands.init_config import init_config

        path = init_config(args.path)
        config = find_config(path)[0]
        start = "opencall serve" if path == SYSTEM_CONFIG else f"opencall serve --config {path}"
        print(f"wrote {path} (mode 0600, with a new turn.secret); data_dir: {config.data_dir}, "
              f"log_file: {config.log_file}; run: {start}")
        return 0
    config, which = find_config(args.config)
    if args.command in ("check-config", "serve"):
        check_files(config)
    if args.command == "serve":
        from opencall.commands.serve import serve

        return serve(config, which)
    print(which, flush=True)  # the first line: which config this command acts on
    if args.command == "check-config":
        return check_config(config)
    from opencall.privileges import drop_to_owner

    drop_to_owner(config.data_dir)  # as root: act as the service user, never leave root-owned files
    if args.command == "doctor":
        from opencall.commands.doctor import doctor

        return doctor(config)
    return _user(args, config)


def _fail(message: str, status: int = EXIT_FAILURE) -> int:
    if logging.getLogger().handlers:  # serve set up logging: it writes stderr and the log file
        logging.getLogger("opencall").error("%s", message)
    else:
        print(f"opencall: {message}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``opencall`` console script."""
    args = _parser().parse_args(argv)
    from opencall.commands.init_config import InitError
    from opencall.commands.users import UserCommandError
    from opencall.db.setup import DatabaseError

    try:
        return _run(args)
    except ConfigError as exc:
        return _fail(f"config error: {exc}", EXIT_CONFIG)
    except (InitError, UserCommandError, DatabaseError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        what = "cannot start" if args.command == "serve" else "error"
        return _fail(f"{what}: {exc}")
    except KeyboardInterrupt:
        return 0 if args.command == "serve" else 130
    except Exception as exc:  # the promise: one line, never a traceback
        return _fail(f"{args.command} failed: {type(exc).__name__}: {exc}")
