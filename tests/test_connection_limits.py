"""Connection limits of `opencall serve` (issue 12, point 2): the relay's TCP caps seen in /metrics, the HTTPS cap
with room for the operator, Sanic's request timeout, TLS handshake timeouts, and /healthz answering while the
relay is flooded within a small open files limit."""

from __future__ import annotations

import asyncio
import itertools
import resource
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aioice.stun import Class, Message, Method

from tests.support import Server, free_port, metric
from tests.turn.support import StunClient


@pytest.fixture
def started(make_server: Callable[..., Server]) -> Callable[..., Server]:
    """``started(overrides, nofile=N)``: a dedicated server, with RLIMIT_NOFILE soft = hard = N when N is given."""
    count = itertools.count()

    def start(overrides: dict[str, Any], nofile: int = 0) -> Server:
        limit = (nofile, nofile)
        preexec = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, limit)) if nofile else None
        return make_server(overrides, name=f"srv{next(count)}", preexec=preexec)

    return start


def hold(port: int, source: str, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=2, source_address=(source, 0))
            for _ in range(count)]


def closed_by_server(sock: socket.socket, within: float) -> bytes | None:
    """What the server sent before closing ``sock`` within ``within`` seconds, or None if it stayed open."""
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionError:
        pass
    return received


def healthz_seconds(server: Server, source: str = "127.0.0.1") -> float:
    transport = httpx.HTTPTransport(local_address=source, verify=False)
    with httpx.Client(base_url=server.base_url, transport=transport, timeout=5) as client:
        started = time.monotonic()
        assert client.get("/healthz").status_code == 200
        return time.monotonic() - started


def test_relay_caps_refuse_the_extra_connection_and_count_it_in_metrics(started: Callable[..., Server]) -> None:
    server = started({"turn": {"max_connections": 6, "max_connections_per_ip": 3}})
    port = server.config["turn"]["port"]
    held = hold(port, "127.0.0.1", 3)
    assert closed_by_server(hold(port, "127.0.0.1", 1)[0], 2.0) == b""  # a 4th from the same address
    held += hold(port, "127.0.0.2", 3)
    assert closed_by_server(hold(port, "127.0.0.3", 1)[0], 2.0) == b""  # a 7th in all
    assert healthz_seconds(server) < 0.5  # the relay at its cap: HTTPS answers at once
    text = server.client().get("/metrics").text
    assert metric(text, 'opencall_turn_connections_refused_total{reason="per_ip_limit"}') == 1
    assert metric(text, 'opencall_turn_connections_refused_total{reason="global_limit"}') == 1
    assert metric(text, "opencall_turn_connections") == 6
    for sock in held:
        sock.close()


def test_https_cap_answers_503_and_leaves_room_for_the_operator(started: Callable[..., Server]) -> None:
    server = started({"server": {"max_connections": 16, "max_connections_per_ip": 8, "operator_connections": 2},
                      "metrics": {"allow": ["127.0.0.1/32"]}})
    port = server.config["server"]["port"]
    held = hold(port, "127.0.0.2", 8)
    refused = closed_by_server(hold(port, "127.0.0.2", 1)[0], 2.0)  # per address
    assert refused is not None and refused.startswith(b"HTTP/1.1 503 ")
    held += hold(port, "127.0.0.3", 8)  # 16: the cap
    refused = closed_by_server(hold(port, "127.0.0.4", 1)[0], 2.0)
    assert refused is not None and refused.startswith(b"HTTP/1.1 503 ")
    assert healthz_seconds(server, "127.0.0.1") < 0.5  # the operator's address has its own room
    text = server.client().get("/metrics").text
    assert metric(text, 'opencall_http_connections_refused_total{reason="per_ip_limit"}') == 1
    assert metric(text, 'opencall_http_connections_refused_total{reason="global_limit"}') == 1
    for sock in held:
        sock.close()


def test_https_counts_connections_before_their_tls_handshake(started: Callable[..., Server]) -> None:
    """Over TLS a connection is admitted at accept: silent ones (no ClientHello) fill the cap, the next is closed
    without a handshake, and the operator's address still gets a TLS session and its answer."""
    server = started({"server": {"tls": "auto", "max_connections": 16, "max_connections_per_ip": 8,
                                 "operator_connections": 2}, "metrics": {"allow": ["127.0.0.1/32"]}})
    port = server.config["server"]["port"]
    held = hold(port, "127.0.0.2", 8) + hold(port, "127.0.0.3", 8)  # never a byte of TLS
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with hold(port, "127.0.0.4", 1)[0] as raw, pytest.raises((ssl.SSLError, ConnectionError)):
        context.wrap_socket(raw, server_hostname="127.0.0.1").close()  # closed before any ServerHello
    assert healthz_seconds(server, "127.0.0.1") < 0.5
    text = server.client().get("/metrics").text
    assert metric(text, 'opencall_http_connections_refused_total{reason="global_limit"}') == 1
    for sock in held:
        sock.close()


def test_slow_request_is_closed_after_request_timeout(started: Callable[..., Server]) -> None:
    server = started({"server": {"request_timeout": 1}})
    sock = hold(server.config["server"]["port"], "127.0.0.1", 1)[0]
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the end of the headers
    started_at = time.monotonic()
    answer = closed_by_server(sock, 5.0)
    assert answer is not None and answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started_at < 3.0


def test_tls_handshake_timeouts_on_https_and_turn_tls(started: Callable[..., Server]) -> None:
    server = started({"server": {"tls": "auto", "tls_handshake_timeout": 1},
                      "turn": {"tls_port": free_port(), "tls_handshake_timeout": 1}})
    for port in (server.config["server"]["port"], server.config["turn"]["tls_port"]):
        silent = hold(port, "127.0.0.1", 1)[0]
        started_at = time.monotonic()
        assert closed_by_server(silent, 4.0) is not None, port
        assert time.monotonic() - started_at < 2.5, port
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    async def binding_over_tls() -> int:
        client = await StunClient.connect(("127.0.0.1", server.config["turn"]["tls_port"]), "tls", context)
        response = await client.request(Message(Method.BINDING, Class.REQUEST))
        client.close()
        return response.message.message_class

    assert asyncio.run(binding_over_tls()) == Class.RESPONSE  # a real TLS client still gets through
    text = server.client().get("/metrics").text
    assert metric(text, 'opencall_turn_connections_closed_total{reason="tls_handshake"}') == 1


def test_healthz_answers_while_the_relay_is_flooded_within_a_small_open_files_limit(
        started: Callable[..., Server]) -> None:
    # Unlowered, these relay caps would let 900 connections take every descriptor of the process (700): HTTPS
    # could not accept, and asyncio stops accepting for a second after each failure.
    server = started({"server": {"max_connections": 16, "max_connections_per_ip": 16, "operator_connections": 16},
                      "turn": {"max_allocations": 8, "max_connections": 1000, "max_connections_per_ip": 1000}},
                     nofile=700)
    log = server.log_file.read_text()
    # 412 left beside HTTPS (700 - 256 reserved - 32): 3 x 8 for the allocations, 388 for connections.
    assert "open files limit 700" in log and "turn.max_connections from 1000 to 388" in log
    port = server.config["turn"]["port"]
    flood: list[socket.socket] = []
    for host in range(2, 2 + 6):  # 900 connections
        flood += hold(port, f"127.0.0.{host}", 150)
    latencies = [healthz_seconds(server) for _ in range(5)]
    assert max(latencies) < 0.5, latencies
    text = server.client().get("/metrics").text
    assert metric(text, 'opencall_turn_connections_refused_total{reason="global_limit"}') == 900 - 388
    assert metric(text, "opencall_turn_connections") == 388
    for sock in flood:
        sock.close()
