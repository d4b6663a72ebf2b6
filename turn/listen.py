"""Listening sockets: a wildcard listen address means every address of both families.

``0.0.0.0`` and ``::`` both mean "all interfaces, IPv4 and IPv6" (as coturn does without listening-ip): one
IPv4 socket on ``0.0.0.0`` and one IPv6-only socket (IPV6_V6ONLY=1) on ``::``, never one dual-stack socket,
on which IPv4 clients would appear as ``::ffff:a.b.c.d`` (rate limits, allow-lists and XOR-MAPPED-ADDRESS
want the plain address). On a host without IPv6 the ``::`` socket is left out, with one INFO line. Any other
address is listened on alone.

Used by the relay's UDP, TCP and TLS listeners and by OpenCall's HTTPS server.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from typing import Any

logger = logging.getLogger("turn")

IPV4_ANY = "0.0.0.0"  # noqa: S104 - the meaning of a wildcard listen address
IPV6_ANY = "::"
BACKLOG = 100  # as asyncio's and Sanic's default
# What binding ``::`` fails with on a host that has no IPv6 (a kernel without it, ipv6.disable=1).
NO_IPV6_ERRORS = frozenset({errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT})

_no_ipv6: str | None = None  # why ``::`` cannot be bound on this host, once found: the INFO line is logged once


def client_address(addr: Any) -> tuple[str, int]:
    """(host, port) of a socket address; an IPv4 client of a dual-stack socket as plain IPv4."""
    host, port = addr[0], addr[1]
    return (host[7:], port) if host.startswith("::ffff:") and "." in host else (host, port)


def is_wildcard(address: str) -> bool:
    """Whether ``address`` is ``0.0.0.0`` or ``::`` (any spelling): "all interfaces"."""
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return False


def bind_addresses(listen: str) -> tuple[str, ...]:
    """The addresses to open listening sockets on for the listen address ``listen``.

    ``("0.0.0.0", "::")`` for a wildcard (``0.0.0.0`` or ``::``), else ``(listen,)``. Pure: it does not look at
    the host (see :func:`listening_sockets` for a host without IPv6).
    """
    return (IPV4_ANY, IPV6_ANY) if is_wildcard(listen) else (listen,)


def bind_socket(address: str, port: int, kind: int) -> socket.socket:
    """A socket of ``kind`` (SOCK_STREAM or SOCK_DGRAM) bound to ``address``:``port``.

    An IPv6 socket is IPv6-only (IPV6_V6ONLY=1); a stream socket has SO_REUSEADDR (as asyncio's create_server
    sets) and is listening already, so connections queue while the server starts. Raises OSError; nothing
    stays open then.
    """
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def listening_sockets(listen: str, port: int, kind: int) -> list[socket.socket]:
    """Sockets of ``kind`` on ``port`` for every address of :func:`bind_addresses` (``listen``), IPv4 first.

    For a wildcard, a host without IPv6 (``socket.has_ipv6`` false, or binding ``::`` fails with
    EADDRNOTAVAIL or EAFNOSUPPORT) gets the IPv4 socket only, and one INFO line says so (once per process).
    Any other failure (a port in use, no permission) closes what was opened and raises OSError naming the
    address.
    """
    global _no_ipv6
    wildcard = is_wildcard(listen)
    opened: list[socket.socket] = []
    try:
        for address in bind_addresses(listen):
            if wildcard and address == IPV6_ANY:
                if _no_ipv6 is not None:
                    continue
                if not socket.has_ipv6:
                    _no_ipv6 = "Python was built without IPv6"
                    logger.info("no IPv6 on this host (%s): listening on IPv4 only", _no_ipv6)
                    continue
            try:
                opened.append(bind_socket(address, port, kind))
            except OSError as exc:
                if wildcard and address == IPV6_ANY and exc.errno in NO_IPV6_ERRORS:
                    _no_ipv6 = f"binding [::] failed: {exc.strerror or exc}"
                    logger.info("no IPv6 on this host (%s): listening on IPv4 only", _no_ipv6)
                    continue
                proto = "tcp" if kind == socket.SOCK_STREAM else "udp"
                raise OSError(exc.errno, f"cannot listen on {host_port(address, port)}/{proto}: "
                                         f"{exc.strerror or exc}") from None
    except BaseException:
        for sock in opened:
            sock.close()
        raise
    return opened


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets: ``[::]:8443``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe(sockets: list[socket.socket]) -> str:
    """The addresses ``sockets`` are bound to, for a log line: ``0.0.0.0:8443 and [::]:8443``."""
    return " and ".join(host_port(*sock.getsockname()[:2]) for sock in sockets)
