"""A wildcard listen address serves IPv4 and IPv6: the real ``opencall serve`` on a LAN in network namespaces
(tests/lan/netlab.py: 192.168.50.0/24 and fd42:50::/64, no default route), reached from a phone over both
families. The pure rule, the no-IPv6 fallback and Sanic's lifecycle are in tests/test_dual_stack.py.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.lan.box import Box, run_in
from tests.lan.netlab import Host
from tests.support import free_port, test_config

BOX4, BOX6 = "192.168.50.2", "fd42:50::2"
PHONE4, PHONE6 = "192.168.50.11", "fd42:50::11"
SECRET = "dual-stack-test-secret"

PHONE_CHECKS = textwrap.dedent("""
    import asyncio, json, socket, ssl, sys
    import httpx, socketio
    from aioice import stun
    from aioice.turn import create_turn_endpoint
    from turn.credentials import make_credentials

    box4, box6, phone4, phone6, http_port, turn_port, tls_port, secret = sys.argv[1:]
    http_port, turn_port, tls_port = int(http_port), int(turn_port), int(tls_port)

    def url(host, path=""):
        return f"https://{'[' + host + ']' if ':' in host else host}:{http_port}{path}"

    class Receiver(asyncio.DatagramProtocol):
        def __init__(self):
            self.received = asyncio.Queue()
        def connection_made(self, transport):
            self.transport = transport
        def datagram_received(self, data, addr):
            self.received.put_nowait((data, addr))

    class Echo(Receiver):
        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    async def binding(host):
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        transport, client = await loop.create_datagram_endpoint(Receiver, remote_addr=(host, turn_port),
                                                                family=family)
        try:
            request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
            for _ in range(5):
                transport.sendto(bytes(request))
                try:
                    data, _ = await asyncio.wait_for(client.received.get(), 1)
                except TimeoutError:
                    continue
                return list(stun.parse_message(data).attributes["XOR-MAPPED-ADDRESS"][:1])
            raise TimeoutError(f"no STUN answer from {host}")
        finally:
            transport.close()

    async def allocate(host, tls):
        creds = make_credentials(secret, "phone", 600)
        context = None
        if tls:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        transport, client = await asyncio.wait_for(create_turn_endpoint(
            Receiver, (host, tls_port if tls else turn_port), creds.username, creds.credential, ssl=context,
            transport="tcp"), 10)
        loop = asyncio.get_running_loop()
        try:
            relayed = transport.get_extra_info("sockname")
            echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=(phone4, 0))
            try:
                peer = echo.get_extra_info("sockname")
                transport.sendto(b"through the relay", peer)
                data, _ = await asyncio.wait_for(client.received.get(), 10)
            finally:
                echo.close()
            return [relayed[0], data.decode()]
        finally:
            transport.close()
            await asyncio.sleep(0.05)

    async def socket_io(host):
        client = socketio.AsyncClient(ssl_verify=False)
        await client.connect(url(host), transports=["websocket"])
        connected = client.connected
        await client.disconnect()
        return connected

    async def main():
        results = {}
        async with httpx.AsyncClient(verify=False, timeout=10) as http:
            for host in (box4, box6):
                health = await http.get(url(host, "/healthz"))
                metrics = await http.get(url(host, "/metrics"))  # allowed for the phone's own addresses only
                polling = await http.get(url(host, "/socket.io/"), params={"EIO": "4", "transport": "polling"})
                results[host] = {
                    "healthz": [health.status_code, health.json()["relay"]],
                    "metrics": metrics.status_code,
                    "socket.io polling": '"sid"' in polling.text,
                    "socket.io websocket": await socket_io(host),
                    "stun binding": await binding(host),
                    "turn tcp": await allocate(host, tls=False),
                    "turn tls": await allocate(host, tls=True),
                }
        print(json.dumps(results))

    asyncio.run(main())
""")


def test_wildcard_listen_serves_both_families(box_and_phone: tuple[Host, Host], boxes: Callable[..., Box],
                                              tmp_path: Path) -> None:
    """server.host and turn.listen 0.0.0.0: HTTPS, Socket.IO, STUN and TURN (TCP, TLS) answer a phone over
    IPv4 and over IPv6, each seeing the phone's own address (no ::ffff: form); the app starts and stops once."""
    box_host, phone = box_and_phone
    box = boxes(box_host, {
        "server": {"host": "0.0.0.0", "tls": "auto"},
        # The phone relays to itself with credentials minted here, outside any call: subnets, not the call policy.
        "turn": {"listen": "0.0.0.0", "advertise": "auto", "tls_port": free_port(), "secret": SECRET,
                 "peer_policy": "subnets", "allowed_peers": ["auto"]},
        "metrics": {"allow": [f"{PHONE4}/32", f"{PHONE6}/128"]},
    }, config=test_config(tmp_path))
    http_port, turn_port, tls_port = box.port, box.config["turn"]["port"], box.config["turn"]["tls_port"]

    box.start()
    assert box.ready == (f"READY=1\nSTATUS=serving https on 0.0.0.0:{http_port} and [::]:{http_port}, relay ok")

    checks = run_in(phone, sys.executable, "-c", PHONE_CHECKS, BOX4, BOX6, PHONE4, PHONE6, str(http_port),
                    str(turn_port), str(tls_port), SECRET, timeout=120)
    assert checks.returncode == 0, checks.stderr + box.stderr_path.read_text()
    results = json.loads(checks.stdout)
    for host, phone_address in ((BOX4, PHONE4), (BOX6, PHONE6)):
        assert results[host] == {
            "healthz": [200, "ok"],
            "metrics": 200,  # the allow-list matched the phone's plain address on both sockets
            "socket.io polling": True,
            "socket.io websocket": True,
            "stun binding": [phone_address],  # XOR-MAPPED-ADDRESS: no ::ffff: form
            "turn tcp": [BOX4, "through the relay"],
            "turn tls": [BOX4, "through the relay"],
        }, (host, results[host])

    assert box.proc is not None
    box.proc.terminate()
    assert box.notice(60) == "STOPPING=1"
    assert box.proc.wait(timeout=30) == 0, box.stderr_path.read_text()
    with pytest.raises(TimeoutError):
        box.notice(0.5)  # STOPPING once, nothing more: the stop listeners ran once

    log = box.log()
    assert log.count("database ready") == 1, log
    assert log.count(f"ready: serving https on 0.0.0.0:{http_port} and [::]:{http_port}") == 1, log
    assert log.count(f"TURN relay on 0.0.0.0 and :: port {turn_port} (udp, tcp), tls port {tls_port}") == 1, log
    assert "Traceback" not in log and "no IPv6" not in log, log
    assert "Traceback" not in box.stderr_path.read_text()


DOCTOR_PROBE = textwrap.dedent("""
    import json, socket, sys
    from opencall.commands.checks import port_in_use
    from turn.listen import bind_socket

    held, free, address = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    with bind_socket("::", held, socket.SOCK_STREAM):  # another program, on IPv6 only
        print(json.dumps([port_in_use("0.0.0.0", held, socket.SOCK_STREAM), port_in_use("0.0.0.0", free,
                          socket.SOCK_STREAM), port_in_use(address, held, socket.SOCK_STREAM)]))
""")


def test_doctor_probes_a_wildcard_port_on_both_families(box_and_phone: tuple[Host, Host]) -> None:
    box_host, _ = box_and_phone
    held, free = free_port(), free_port()
    done = run_in(box_host, sys.executable, "-c", DOCTOR_PROBE, str(held), str(free), BOX4)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["in use", None, None]
