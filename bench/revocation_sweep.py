"""The cost of the credential sweep (opencall/signaling/revocation.py) with N authenticated sockets.

The server runs the sweep every SWEEP_INTERVAL seconds over its connected authenticated sockets. This builds the
same state in-process — N accounts, each with a live session and an API key, one socket per account (half by
session cookie, half by API key) — on a fresh database (SQLite in a temporary folder, or ``--database-url``),
times ``revoked()`` (the sweep's two queries and its comparison), and checks that it finds exactly the sockets
whose credential was then revoked (a logout, a key rotation, a password reset, a removal).

``--live SECONDS`` measures the same on the real ``opencall serve`` (127.0.0.1): the server's CPU time
(``utime+stime`` from ``/proc/<pid>/stat``) over SECONDS with N registered anonymous sockets (which the sweep
skips), then with N registered authenticated ones (half by session cookie, half by API key, one account each);
the difference is what the sweep costs, since both phases carry the same sockets and pings.

Example (the figures in docs/benchmarks.md)::

    python bench/revocation_sweep.py --sockets 200 --rounds 500
    python bench/revocation_sweep.py --sockets 200 --live 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import socketio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opencall.db.models import ApiKey, Session, User
from opencall.db.setup import close_database, open_database
from opencall.services.accounts import new_api_key, password_stamp, token_hash
from opencall.services.clock import utcnow
from opencall.signaling.live import Peer
from opencall.signaling.revocation import SWEEP_INTERVAL, revoked
from tests.support import Server, api_key, register, test_config

CLK_TCK = os.sysconf("SC_CLK_TCK")
SESSION_COOKIE = "opencall_session"


async def populate(count: int) -> list[Peer]:
    """``count`` accounts with a session and a key each, and one authenticated socket per account."""
    now = utcnow()
    prefix = secrets.token_hex(3)
    users = [User(username=f"b{prefix}{n}", username_key=f"b{prefix}{n}", email=f"b{prefix}{n}@example.org",
                  password_hash=f"scrypt${secrets.token_hex(40)}") for n in range(count)]
    await User.bulk_create(users)
    users = await User.filter(username_key__startswith=f"b{prefix}").order_by("id")
    tokens = [secrets.token_urlsafe(32) for _ in users]
    keys = [new_api_key() for _ in users]
    expires = now + timedelta(days=30)
    await Session.bulk_create([Session(token_hash=token_hash(token), user=user, created_at=now, expires_at=expires)
                               for token, user in zip(tokens, users, strict=True)])
    await ApiKey.bulk_create([ApiKey(lookup_hash=token_hash(key), user=user, encrypted_key="-", created_at=now)
                              for key, user in zip(keys, users, strict=True)])
    return [Peer(sid=f"s{n}", user_id=user.id, username=user.username, ip="127.0.0.1",
                 api_key_hash=token_hash(keys[n]) if n % 2 else None,
                 session_hash=None if n % 2 else token_hash(tokens[n]),
                 password_stamp=password_stamp(user.password_hash)) for n, user in enumerate(users)]


async def revoke_some(peers: list[Peer]) -> set[str]:
    """Revoke four credentials the four ways there are; the sids of the sockets that must go."""
    cookie, key = [p for p in peers if p.session_hash], [p for p in peers if p.api_key_hash]
    await Session.filter(token_hash=cookie[0].session_hash).delete()  # a logout
    await ApiKey.filter(lookup_hash=key[0].api_key_hash).update(lookup_hash=token_hash(new_api_key()))  # rotation
    reset = f"scrypt${secrets.token_hex(40)}"  # a password reset, seen by a cookie socket and a key socket
    await User.filter(id__in=[cookie[1].user_id, key[1].user_id]).update(password_hash=reset)
    await User.filter(id=cookie[2].user_id).delete()  # a removal: its session and key go with it
    return {cookie[0].sid, key[0].sid, cookie[1].sid, key[1].sid, cookie[2].sid}


async def main(count: int, rounds: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        await open_database(database_url or f"sqlite://{folder}/opencall.db")
        try:
            peers = await populate(count)
            assert await revoked(peers) == []
            walls, cpus = [], []
            for _ in range(rounds):
                wall, cpu = time.perf_counter(), time.process_time()
                await revoked(peers)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            expected = await revoke_some(peers)
            found = {peer.sid for peer, _ in await revoked(peers)}
            assert found == expected, (found, expected)
        finally:
            await close_database()
    wall_ms, cpu_ms = statistics.median(walls) * 1000, statistics.median(cpus) * 1000
    p95 = sorted(walls)[int(len(walls) * 0.95)] * 1000
    print(f"{count} sockets, {rounds} sweeps: median {wall_ms:.2f} ms wall (p95 {p95:.2f} ms), "
          f"{cpu_ms:.2f} ms CPU per sweep; every {SWEEP_INTERVAL:g} s that is "
          f"{cpu_ms / (SWEEP_INTERVAL * 1000) * 100:.2f} % of one core")
    print(f"revocations found: {len(found)} of {len(expected)} (logout, key rotation, 2 password resets, removal)")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def _account(server: Server) -> tuple[str, str]:
    """A new account's session cookie and API key."""
    http, _ = register(server)
    try:
        return http.cookies[SESSION_COOKIE], api_key(http)
    finally:
        http.close()


async def _open(server: Server, credentials: list[dict[str, Any]]) -> list[socketio.AsyncClient]:
    clients = []
    for extra in credentials:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(server.base_url, transports=["websocket"], **extra)
        await client.emit("register", {})
        clients.append(client)
    await asyncio.sleep(2)  # every register handled, the connects' work done
    return clients


async def _phase(server: Server, credentials: list[dict[str, Any]], seconds: float) -> float:
    """The server's CPU seconds per second with these sockets connected and registered."""
    assert server.proc is not None
    clients = await _open(server, credentials)
    start = _cpu_seconds(server.proc.pid)
    await asyncio.sleep(seconds)
    used = _cpu_seconds(server.proc.pid) - start
    await asyncio.gather(*(client.disconnect() for client in clients))
    return used / seconds


async def live(count: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        caps = {"server": {"max_connections": 4 * count, "max_connections_per_ip": 4 * count}}  # all from 127.0.0.1
        server = Server(Path(folder), test_config(Path(folder), caps)).start()
        try:
            with ThreadPoolExecutor(4) as pool:
                accounts = list(pool.map(lambda _: _account(server), range(count)))
            anonymous = await _phase(server, [{}] * count, seconds)
            authenticated = await _phase(server, [
                {"headers": {"Cookie": f"{SESSION_COOKIE}={cookie}"}} if n % 2 else {"auth": {"apiKey": key}}
                for n, (cookie, key) in enumerate(accounts)], seconds)
        finally:
            server.stop()
    per_sweep = (authenticated - anonymous) * SWEEP_INTERVAL * 1000
    print(f"live server, {count} registered sockets, {seconds:g} s each: anonymous {anonymous * 1000:.1f} ms CPU/s, "
          f"authenticated {authenticated * 1000:.1f} ms CPU/s; the sweep: {per_sweep:.1f} ms CPU per sweep, "
          f"{(authenticated - anonymous) * 100:.2f} % of one core")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--database-url", help="postgres://… (default: SQLite in a temporary folder)")
    parser.add_argument("--live", type=float, metavar="SECONDS", help="measure on the real server instead")
    args = parser.parse_args()
    if args.live:
        asyncio.run(live(args.sockets, args.live))
    else:
        asyncio.run(main(args.sockets, args.rounds, args.database_url))
