"""``opencall doctor``: check config, ports, certificate, database and the relay; print pass/fail with fixes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from tortoise import Tortoise
from tortoise.connection import get_connection
from tortoise.migrations.executor import MigrationExecutor

from opencall.commands.checks import (
    Result,
    check_advertise,
    check_certificate,
    check_ports,
    local_host,
    running_health,
    turn_secret,
)
from opencall.commands.relayprobe import RelayProbeError, relay_echo
from opencall.config import Config
from opencall.db.models import User
from opencall.db.setup import DatabaseError, connect, redacted, sqlite_path

START_FIX = "start the service: systemctl start opencall (or opencall serve)"


async def check_database(config: Config) -> Result:
    """The database opens (within seconds), every migration is applied, and it answers a query."""
    url = config.resolved_database_url
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return Result("database", False, f"{path} does not exist yet",
                      "start the service once: it creates and migrates the database")
    try:
        settings = await connect(url)
    except DatabaseError as exc:
        detail, _, fix = str(exc).partition("; fix: ")
        return Result("database", False, detail, fix)
    try:
        executor = MigrationExecutor(get_connection("default"), settings["apps"])
        pending = [step for step in await executor.plan(None) if not step.backward]
        users = await User.all().count() if not pending else 0
    except Exception as exc:  # any driver or schema error: report it, do not crash the report
        return Result("database", False, f"cannot use {redacted(url)}: {exc}",
                      "check database_url, that the database server runs, and the folder's permissions")
    finally:
        await Tortoise.close_connections()
    if pending:
        names = ", ".join(step.migration.name for step in pending)
        return Result("database", False, f"{len(pending)} migration(s) not applied: {names}",
                      "restart the service: it applies migrations at startup")
    return Result("database", True, f"{redacted(url)}: migrated, {users} user(s)")


async def check_relay(config: Config, running: bool, relay_state: str | None = None) -> Result:
    """A real allocation on our TURN server and a packet echoed through it.

    ``relay_state`` is what the running server's /healthz says about its relay, when it runs.
    """
    turn = config.turn
    if not turn.enabled:
        return Result("relay", True, "turn.enabled is false: no relay to test")
    secret = turn_secret(config)
    if secret is None:
        return Result("relay", False, "no TURN secret: turn.secret is null and data_dir has none yet",
                      "start the service once: it generates the secret into data_dir")
    host = local_host(turn.listen)
    try:
        echo = await relay_echo(host, turn.port, secret, ttl=min(600, turn.credential_ttl))
    except RelayProbeError as exc:
        if not running:
            fix = START_FIX
        elif relay_state not in (None, "ok", "loopback only"):
            fix = f"the running server's relay is not up (/healthz: relay {relay_state}); read journalctl -u opencall"
        elif "credentials" in str(exc):
            fix = "the running server uses another TURN secret: restart it after changing turn.secret"
        else:
            fix = (f"read the log (journalctl -u opencall); check turn.relay_ip, turn.relay_ports and "
                   f"turn.allowed_peers; open UDP {turn.port} and {turn.relay_ports[0]}-{turn.relay_ports[1]}")
        return Result("relay", False, str(exc), fix)
    relayed = f"{echo.relayed[0]}:{echo.relayed[1]}"
    return Result("relay", True, f"allocated {relayed} via {host}:{turn.port}/udp; a packet echoed through it "
                                 f"in {echo.round_trip_ms:.1f} ms")


def report(results: Iterable[Result]) -> tuple[str, int]:
    """The printed pass/fail list and the number of failures."""
    lines, failed = [], 0
    for result in results:
        failed += not result.ok
        lines.append(f"  {'PASS' if result.ok else 'FAIL'}  {result.name:<22} {result.detail}")
        if not result.ok and result.fix:
            lines.append(f"        {'':<22} fix: {result.fix}")
    return "\n".join(lines), failed


async def _async_checks(config: Config, running: bool, relay_state: str | None) -> list[Result]:
    return [await check_database(config), await check_relay(config, running, relay_state)]


def doctor(config: Config) -> int:
    """Run every check and print the report; 0 when all pass, 1 otherwise."""
    health = running_health(config)
    running = health is not None
    state = (f"running (/healthz: status {health['status']}, database {health['database']}, "
             f"relay {health['relay']})" if health else "not running")
    results = [Result("config", True, str(config.source or "embedded defaults")), Result("server", True, state)]
    results += check_ports(config, running)
    results += check_certificate(config, running)
    relay_state = str(health["relay"]) if health else None
    results.append(check_advertise(config, relay_state))
    results += asyncio.run(_async_checks(config, running, relay_state))
    text, failed = report(results)
    print(text)
    print(f"{len(results)} checks, {failed} failed" if failed else f"{len(results)} checks, all passed")
    return 1 if failed else 0
