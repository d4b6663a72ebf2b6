"""``opencall serve``: run the whole appliance in this process.

HTTPS listens on every address of ``server.host`` (:func:`turn.listen.listening_sockets`): a wildcard
(``0.0.0.0`` or ``::``) is one IPv4 socket on ``0.0.0.0`` and one IPv6-only socket on ``::``. Sanic's own
single-process server runs on the first socket; each further socket gets a server of the same app from Sanic's
low-level ``app.create_server`` (:class:`MoreServers`), which triggers no listeners, so the app's listeners
(database, relay, READY=1, shutdown) run once.

Not Sanic's multi-serve (``app.prepare`` once per address, then ``Sanic.serve_single``): with one app on two
addresses it runs the ``before_server_stop`` and ``after_server_stop`` listeners twice (Sanic cancels the
secondary server's task during shutdown and that task fires both events again), and it only logs a warning
when a secondary address cannot be bound.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any

from sanic import Sanic
from sanic.server.async_server import AsyncioServer
from sanic.server.protocols.http_protocol import HttpProtocol

from opencall.config import Config
from turn.listen import host_port, listening_sockets


def serve(config: Config, which: str = "") -> int:
    """Run the server until SIGINT/SIGTERM; HTTPS uses the shared, reloadable SSLContext of opencall.tls.

    ``which`` is the line naming the config (logged first). The data folder and the database are checked (and
    migrated) before anything listens, so a database that cannot be used stops startup within seconds with one
    line (:class:`opencall.db.setup.DatabaseError`)."""
    from opencall.app import create_app
    from opencall.fdlimit import raise_limit
    from opencall.httplimits import capped_protocol, operator_check
    from opencall.logging_setup import setup_logging
    from opencall.tls import server_ssl_context

    setup_logging(config.log_file, config.log_level, config.client_log.max_bytes, config.client_log.backups)
    if which:
        logging.getLogger("opencall").info("%s", which)
    prepare_storage(config)
    raise_limit()  # before create_app sizes the relay's caps against it (opencall.fdlimit)
    context = server_ssl_context(config)  # makes or checks the certificate before anything listens
    sockets = listening_sockets(config.server.host, config.server.port, socket.SOCK_STREAM)
    try:
        app = create_app(config)
        app.ctx.http_addresses = tuple(host_port(*sock.getsockname()[:2]) for sock in sockets)
        # The protocol does TLS itself after admitting the connection (opencall.httplimits): Sanic's servers
        # listen in plain TCP.
        protocol = capped_protocol(app, app.ctx.http_gate, operator_check(config.metrics.allow), context,
                                   config.server.tls_handshake_timeout)
        MoreServers(sockets[1:], None, protocol).install(app)
        app.run(
            sock=sockets[0],
            protocol=protocol,
            single_process=True,
            access_log=config.log_level == "debug",
            motd=False,
        )
    finally:
        for sock in sockets:
            sock.close()
    return 0


def prepare_storage(config: Config) -> None:
    """Create data_dir, then open and migrate the database once; raises OSError or DatabaseError (one line)."""
    from opencall.db.setup import close_database, open_database

    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create data_dir {config.data_dir}: {exc.strerror or exc}; fix: create it for the "
                      f"service user, or set data_dir in the config") from None

    async def check() -> None:
        await open_database(config.resolved_database_url)
        await close_database()

    asyncio.run(check())


class MoreServers:
    """HTTP(S) servers of one app on further listening sockets, beside Sanic's own server.

    They start accepting after the app's other ``before_server_start`` listeners (storage and relay are up
    before READY=1), stop accepting after its other ``before_server_stop`` listeners (Socket.IO has said
    goodbye on every socket), and their connections are drained like Sanic drains its own (idle ones closed,
    the rest aborted after GRACEFUL_SHUTDOWN_TIMEOUT) before the ``after_server_stop`` listeners close the
    database and the relay.
    """

    def __init__(self, sockets: list[socket.socket], context: ssl.SSLContext | None,
                 protocol: type[HttpProtocol] | None = None) -> None:
        """``context`` for Sanic's TLS (None: plain, or TLS done by ``protocol``), ``protocol`` as the main
        server's."""
        self.sockets = sockets
        self.context = context
        self.protocol = protocol
        self.servers: list[AsyncioServer] = []
        self.drained: asyncio.Task[None] | None = None

    def install(self, app: Sanic) -> None:
        """Register the listeners; with no further socket there is nothing to do."""
        if not self.sockets:
            return
        # Sanic runs startup listeners by descending priority; shutdown ones in the reverse order.
        app.listener(self.start, "before_server_start", priority=-1)  # last
        app.listener(self.stop_accepting, "before_server_stop", priority=1)  # last
        app.listener(self.wait_drained, "after_server_stop", priority=-1)  # first

    async def start(self, app: Sanic) -> None:
        for sock in self.sockets:
            server = await app.create_server(sock=sock, ssl=self.context, protocol=self.protocol)
            assert server is not None
            self.servers.append(server)

    async def stop_accepting(self, app: Sanic) -> None:
        for server in self.servers:
            if server.server is not None:
                server.server.close()
        self.drained = asyncio.get_running_loop().create_task(self._drain(app.config.GRACEFUL_SHUTDOWN_TIMEOUT))

    async def wait_drained(self, app: Sanic) -> None:
        if self.drained is not None:
            await self.drained
        self.servers.clear()

    async def _drain(self, graceful: float) -> None:
        """What Sanic does to its own server's connections at shutdown, for ours."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + graceful
        while (connections := self._connections()) and loop.time() < deadline:
            for connection in connections:
                connection.close_if_idle()
            await asyncio.sleep(0.1)
        for connection in self._connections():
            websocket = getattr(connection, "websocket", None)
            if websocket is not None:
                websocket.fail_connection(code=1001)
            else:
                connection.abort()

    def _connections(self) -> list[Any]:
        return [connection for server in self.servers for connection in server.connections]
