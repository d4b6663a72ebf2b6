"""A wildcard listen address (server.host, turn.listen: 0.0.0.0 or ::) serves IPv4 and IPv6, one socket each.

The pure rule and the no-IPv6 fallback are tested in this process; Sanic's lifecycle with a second HTTP socket
in a subprocess on loopback. The real ``opencall serve`` on a LAN in network namespaces, reached from a phone
over both families, is in tests/lan/test_dual_stack.py.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import turn.listen
from tests.support import free_port
from turn import RelayConfig
from turn.listen import bind_addresses, bind_socket, is_wildcard, listening_sockets
from turn.server import build_peer_policy

BOX4, BOX6 = "192.168.78.2", "fd00:78::2"
PHONE4, PHONE6 = "192.168.78.1", "fd00:78::1"
SECRET = "dual-stack-test-secret"


def test_bind_addresses_of_a_listen_address() -> None:
    assert bind_addresses("0.0.0.0") == ("0.0.0.0", "::")
    assert bind_addresses("::") == ("0.0.0.0", "::")
    assert bind_addresses("0:0::0") == ("0.0.0.0", "::")  # any spelling of a wildcard
    assert bind_addresses("192.168.78.2") == ("192.168.78.2",)
    assert bind_addresses("fd00:78::2") == ("fd00:78::2",)
    assert bind_addresses("127.0.0.1") == ("127.0.0.1",)
    assert bind_addresses("::1") == ("::1",)
    assert is_wildcard("::") and is_wildcard("0.0.0.0")
    assert not is_wildcard("::1") and not is_wildcard("box.local")


def test_ipv6_sockets_are_ipv6_only() -> None:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with bind_socket("::1", 0, kind) as sock:
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    with bind_socket("127.0.0.1", 0, socket.SOCK_STREAM) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1  # listening already


class _FakeSocket:
    def __init__(self, address: str) -> None:
        self.address = address
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_binds(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Replace bind_socket: ``failures[address]`` is the errno binding that address fails with."""
    made: list[_FakeSocket] = []
    failures: dict[str, int] = {}

    def fake_bind(address: str, port: int, kind: int) -> Any:
        if address in failures:
            raise OSError(failures[address], os.strerror(failures[address]))
        made.append(_FakeSocket(address))
        return made[-1]

    monkeypatch.setattr(turn.listen, "bind_socket", fake_bind)
    monkeypatch.setattr(turn.listen, "_no_ipv6", None)
    yield {"made": made, "failures": failures}


@pytest.mark.parametrize("error", [errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL])
def test_a_host_without_ipv6_listens_on_ipv4_with_one_info_line(
        fake_binds: dict[str, Any], error: int, caplog: pytest.LogCaptureFixture) -> None:
    fake_binds["failures"]["::"] = error
    with caplog.at_level(logging.INFO, logger="turn"):
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM, socket.SOCK_STREAM):
            sockets = listening_sockets("::", 3478, kind)
            assert [sock.address for sock in sockets] == ["0.0.0.0"]  # type: ignore[attr-defined]
    lines = [record for record in caplog.records if "IPv6" in record.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO, caplog.text
    assert "no IPv6 on this host" in lines[0].getMessage() and "IPv4 only" in lines[0].getMessage()
    # A specific IPv6 address is not a wildcard: its failure is an error.
    with pytest.raises(OSError, match=r"cannot listen on \[fd00:78::2\]:3478/udp"):
        fake_binds["failures"]["fd00:78::2"] = error
        listening_sockets("fd00:78::2", 3478, socket.SOCK_DGRAM)


def test_without_socket_has_ipv6_only_ipv4_is_tried(fake_binds: dict[str, Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "has_ipv6", False)
    assert [s.address for s in listening_sockets("0.0.0.0", 8443, socket.SOCK_STREAM)] == ["0.0.0.0"]


def test_any_other_failure_raises_and_closes_what_was_opened(fake_binds: dict[str, Any]) -> None:
    fake_binds["failures"]["::"] = errno.EADDRINUSE
    with pytest.raises(OSError, match=r"cannot listen on \[::\]:8443/tcp") as failed:
        listening_sockets("0.0.0.0", 8443, socket.SOCK_STREAM)
    assert failed.value.errno == errno.EADDRINUSE
    assert [(s.address, s.closed) for s in fake_binds["made"]] == [("0.0.0.0", True)]
    assert turn.listen._no_ipv6 is None  # a port in use says nothing about IPv6


@pytest.mark.parametrize("listen", ["0.0.0.0", "::"])
def test_a_wildcard_relay_denies_its_own_ports_on_both_families(listen: str) -> None:
    """Peers may not be the relay's own listeners (turn.server.build_peer_policy): with a wildcard listen
    that is every address of this host, IPv4 and IPv6, since both families are served."""
    config = RelayConfig(secret=SECRET, listen=listen, relay_ip=BOX4, relay_ip6=BOX6, port=3478, tls_port=5349,
                         tls_cert=Path("unused.pem"), tls_key=Path("unused.pem"),
                         allowed_peers=("192.168.78.0/24", "fd00:78::/64", "127.0.0.0/8", "::1/128"))
    interfaces = [ipaddress.ip_interface(i) for i in ("127.0.0.1/8", "::1/128", f"{BOX4}/24", f"{BOX6}/64")]
    policy = build_peer_policy(config, interfaces)
    for host in (BOX4, BOX6, "127.0.0.1", "::1", f"::ffff:{BOX4}"):
        for port in (3478, 5349):
            assert not policy.allows((host, port)), (host, port)
        assert policy.allows((host, 3479)), host
    assert policy.allows((PHONE4, 3478)) and policy.allows((PHONE6, 3478))  # a phone's TURN port is a peer


# ---------------------------------------------------------------------------------------------------------
# Sanic with a second HTTP socket: the app's listeners run once, Socket.IO answers on both sockets.

LIFECYCLE_APP = textwrap.dedent("""
    import collections, json, socket, sys
    import socketio
    from sanic import Sanic, response
    from opencall.commands.serve import MoreServers
    from turn.listen import listening_sockets

    counts = collections.Counter()
    app = Sanic("lifecycle", configure_logging=False)
    sio = socketio.AsyncServer(async_mode="sanic")
    sio.attach(app)

    @sio.event
    async def echo(sid, data):
        return data

    @app.get("/ip")
    async def ip(request):
        return response.json({"ip": request.ip})

    def count(event):
        async def listener(app):
            counts[event] += 1
        return listener

    for event in ("before_server_start", "after_server_start", "before_server_stop", "after_server_stop"):
        app.register_listener(count(event), event)

    @app.before_server_stop
    async def stop_socketio(app):
        if sio.eio.sockets:
            await sio.eio.disconnect()
        await sio.shutdown()

    @app.after_server_start
    async def ready(app):
        print("READY", flush=True)

    port = int(sys.argv[1])
    sockets = listening_sockets("127.0.0.1", port, socket.SOCK_STREAM)
    sockets += listening_sockets("::1", port, socket.SOCK_STREAM)
    MoreServers(sockets[1:], None).install(app)
    try:
        app.run(sock=sockets[0], single_process=True, motd=False, access_log=False)
    finally:
        print("COUNTS " + json.dumps(counts), flush=True)
""")

LIFECYCLE_CLIENT = textwrap.dedent("""
    import asyncio, json, sys
    import httpx, socketio

    async def main(base):
        ip = httpx.get(base + "/ip").json()["ip"]
        results = {"ip": ip}
        for transport in ("websocket", "polling"):
            client = socketio.AsyncClient()
            await client.connect(base, transports=[transport])
            results[transport] = await client.call("echo", transport)
            if transport == "websocket":
                await client.disconnect()
            else:
                await client.eio.disconnect(abort=True)
        print(json.dumps(results))

    asyncio.run(main(sys.argv[1]))
""")


def test_a_second_http_socket_runs_the_apps_listeners_once(tmp_path: Path) -> None:
    """MoreServers beside Sanic's own server: every listener once, HTTP and Socket.IO on 127.0.0.1 and ::1
    (Sanic's own multi-serve, app.prepare per address, runs the stop listeners twice)."""
    port = free_port()
    (tmp_path / "app.py").write_text(LIFECYCLE_APP)
    (tmp_path / "client.py").write_text(LIFECYCLE_CLIENT)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "app.py"), str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read() if proc.stderr else ""
        for base, ip in ((f"http://127.0.0.1:{port}", "127.0.0.1"), (f"http://[::1]:{port}", "::1")):
            done = subprocess.run([sys.executable, str(tmp_path / "client.py"), base], capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout) == {"ip": ip, "websocket": "websocket", "polling": "polling"}
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    counts = json.loads(next(line for line in out.splitlines() if line.startswith("COUNTS "))[7:])
    assert counts == {"before_server_start": 1, "after_server_start": 1, "before_server_stop": 1,
                      "after_server_stop": 1}, err
    assert "Traceback" not in err and "was never awaited" not in err, err
