"""coturn's test clients (turnutils_uclient + turnutils_peer) against our relay, channel and Send modes.

These are the reference implementation's own tools: they allocate with EVEN-PORT and RESERVATION-TOKEN
(RTP/RTCP pairs), bind channels in the RFC 5766 range and check every echoed packet.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support import free_port
from tests.turn.support import SECRET, start_relay
from turn import TurnServer

MESSAGES = 40
CLIENTS = 2


def coturn_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: install Debian's coturn package (scripts/test does: apt_install coturn)")
    return path


@pytest.fixture(scope="module")
def udp_peer() -> Iterator[int]:
    """turnutils_peer: a UDP echo server on 127.0.0.1, which uclient's packets go to through the relay."""
    port = free_port(socket.SOCK_DGRAM)
    process = subprocess.Popen(
        [coturn_tool("turnutils_peer"), "-L", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    yield port
    process.terminate()
    process.wait(5)


@pytest.fixture
async def relay() -> AsyncIterator[TurnServer]:
    server = await start_relay(tls_port=None)
    yield server
    await server.stop()


async def run_uclient(relay: TurnServer, peer_port: int, *flags: str) -> str:
    process = await asyncio.create_subprocess_exec(
        coturn_tool("turnutils_uclient"),
        *flags,
        "-p", str(relay.config.port), "-W", SECRET, "-u", "uclient",
        "-e", "127.0.0.1", "-r", str(peer_port),
        "-m", str(CLIENTS), "-n", str(MESSAGES), "-l", "170", "-z", "5",
        relay.config.listen,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    return text


def assert_all_echoed(output: str) -> None:
    totals = re.findall(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", output)
    assert totals, output
    sent, received = map(int, totals[-1])
    assert sent == received == CLIENTS * MESSAGES, output
    assert re.search(r"Total lost packets 0 \(", output), output


@pytest.mark.parametrize(
    ("mode", "flags"),
    [("channels over udp", ()), ("send indications over udp", ("-s",)),
     ("channels over tcp", ("-t",)), ("send indications over tcp", ("-t", "-s"))],
)
async def test_uclient(relay: TurnServer, udp_peer: int, mode: str, flags: tuple[str, ...]) -> None:
    output = await run_uclient(relay, udp_peer, *flags)
    assert_all_echoed(output)
    counters = relay.counters
    assert counters.allocations_created >= CLIENTS
    assert counters.packets_to_peers >= CLIENTS * MESSAGES
    assert counters.packets_to_clients >= CLIENTS * MESSAGES
    if "channels" in mode:
        assert counters.bytes_to_peers >= CLIENTS * MESSAGES * 170
    assert counters.auth_failures == 0
