"""Refresh the fuzzing seeds: real STUN/TURN packets that aioice, aiortc and coturn's turnutils_uclient send.

    .venv/bin/python -m tests.turn.seeds.capture

Each client talks to our relay (in this process, on 127.0.0.1) through a recording proxy, UDP and TCP; every
client -> relay message is kept, deduplicated by shape (message type and attribute types; ChannelData by
length), and written as one hex line per message to ``<client>.hex`` beside this file. Loopback only.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aioice.turn import create_turn_endpoint

from tests.support import free_port
from tests.turn.support import SECRET, credentials, start_relay
from turn import TurnServer
from turn.framing import StreamFramer

HERE = Path(__file__).parent
PER_FILE = 60  # most distinct shapes kept per client


def shape(data: bytes) -> tuple[Any, ...]:
    """What makes two messages the same seed: the STUN type and attribute types, or a ChannelData length."""
    if data[0] >= 0x40:
        return ("channel", len(data) // 64)
    kinds = []
    pos = 20
    while pos + 4 <= len(data):
        kind, size = struct.unpack_from("!HH", data, pos)
        kinds.append(kind)
        pos += 4 + size + (-size % 4)
    return (data[:2], tuple(kinds))


class Recorder:
    """The client -> relay messages of one client, by shape."""

    def __init__(self) -> None:
        self.seen: dict[tuple[Any, ...], bytes] = {}

    def add(self, data: bytes) -> None:
        if len(data) >= 4 and len(self.seen) < PER_FILE:
            self.seen.setdefault(shape(data), data)


class _UdpUpstream(asyncio.DatagramProtocol):
    def __init__(self, reply: Callable[[bytes], None]) -> None:
        self.reply = reply

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.reply(data)


class UdpProxy(asyncio.DatagramProtocol):
    """Forwards datagrams between clients and the relay, one upstream socket per client."""

    def __init__(self, relay: tuple[str, int], recorder: Recorder) -> None:
        self.relay = relay
        self.recorder = recorder
        self.upstreams: dict[Any, asyncio.DatagramTransport] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.recorder.add(data)
        upstream = self.upstreams.get(addr)
        if upstream is None:
            asyncio.get_running_loop().create_task(self._open(data, addr))
        else:
            upstream.sendto(data)

    async def _open(self, first: bytes, addr: Any) -> None:
        assert self.transport is not None
        downstream = self.transport
        upstream, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _UdpUpstream(lambda data: downstream.sendto(data, addr)), remote_addr=self.relay
        )
        self.upstreams[addr] = upstream
        upstream.sendto(first)


async def tcp_proxy(relay: tuple[str, int], recorder: Recorder) -> asyncio.Server:
    """Forwards TCP connections to the relay, recording each client's stream cut into messages."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   framer: StreamFramer | None) -> None:
        while data := await reader.read(65536):
            if framer is not None:
                for frame in framer.feed(data):
                    recorder.add(frame)
            writer.write(data)
        writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*relay)
        await asyncio.gather(pipe(reader, up_writer, StreamFramer()), pipe(up_reader, writer, None),
                             return_exceptions=True)

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def with_proxies(relay: TurnServer, client: Callable[[str, tuple[str, int]], Any]) -> Recorder:
    """Run ``client(transport, proxy address)`` over UDP and TCP through recording proxies."""
    recorder = Recorder()
    target = (relay.config.listen, relay.config.port)
    loop = asyncio.get_running_loop()
    udp, proxy = await loop.create_datagram_endpoint(lambda: UdpProxy(target, recorder),
                                                     local_addr=("127.0.0.1", 0))
    tcp = await tcp_proxy(target, recorder)
    try:
        await client("udp", udp.get_extra_info("sockname"))
        await client("tcp", tcp.sockets[0].getsockname())
    finally:
        udp.close()
        for upstream in proxy.upstreams.values():
            upstream.close()
        tcp.close()
    return recorder


async def aioice_client(transport: str, server: tuple[str, int]) -> None:
    """aioice's TURN client: Allocate, ChannelBind, ChannelData to an echo peer, Refresh(0) on close."""
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    username, password = credentials("seeds")
    turn, _ = await create_turn_endpoint(asyncio.DatagramProtocol, server, username, password,
                                         transport=transport)
    for i in range(5):
        turn.sendto(b"seed %d" % i * (i * 40 + 1), echo.get_extra_info("sockname"))
        await asyncio.sleep(0.05)
    turn.close()
    echo.close()
    await asyncio.sleep(0.2)


async def aiortc_client(transport: str, server: tuple[str, int]) -> None:
    """Two aiortc peers in a relay-only call with a data channel: ICE checks, DTLS and SCTP via the relay."""
    import aiortc

    def config(user: str) -> aiortc.RTCConfiguration:
        username, password = credentials(user)
        url = f"turn:{server[0]}:{server[1]}?transport={transport}"
        return aiortc.RTCConfiguration(
            iceServers=[aiortc.RTCIceServer(urls=url, username=username, credential=password)],
            iceTransportPolicy=aiortc.RTCIceTransportPolicy.RELAY,
        )

    caller, callee = aiortc.RTCPeerConnection(config("caller")), aiortc.RTCPeerConnection(config("callee"))
    opened = asyncio.Event()
    channel = caller.createDataChannel("seeds")
    channel.on("open", opened.set)
    await caller.setLocalDescription(await caller.createOffer())
    await callee.setRemoteDescription(caller.localDescription)
    await callee.setLocalDescription(await callee.createAnswer())
    await caller.setRemoteDescription(callee.localDescription)
    await asyncio.wait_for(opened.wait(), 20)
    channel.send("seed")
    await asyncio.sleep(0.5)
    await caller.close()
    await callee.close()


def coturn_client(peer_port: int) -> Callable[[str, tuple[str, int]], Any]:
    """turnutils_uclient with EVEN-PORT/RESERVATION-TOKEN, channels, then Send indications (-s)."""

    async def run(transport: str, server: tuple[str, int]) -> None:
        for mode in ((), ("-s",)):
            flags = [*mode, *(("-t",) if transport == "tcp" else ())]
            process = await asyncio.create_subprocess_exec(
                shutil.which("turnutils_uclient") or "turnutils_uclient", *flags,
                "-p", str(server[1]), "-W", SECRET, "-u", "seeds", "-e", "127.0.0.1", "-r", str(peer_port),
                "-m", "1", "-n", "5", "-l", "120", "-z", "5", server[0],
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )
            await asyncio.wait_for(process.wait(), 60)

    return run


async def capture() -> dict[str, Recorder]:
    relay = await start_relay(tls_port=None)
    peer_port = free_port(socket.SOCK_DGRAM)
    peer = subprocess.Popen(["turnutils_peer", "-L", "127.0.0.1", "-p", str(peer_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return {
            "aioice": await with_proxies(relay, aioice_client),
            "aiortc": await with_proxies(relay, aiortc_client),
            "coturn-uclient": await with_proxies(relay, coturn_client(peer_port)),
        }
    finally:
        peer.terminate()
        peer.wait(5)
        await relay.stop()


def main() -> None:
    for name, recorder in asyncio.run(capture()).items():
        lines = [data.hex() for data in recorder.seen.values()]
        (HERE / f"{name}.hex").write_text("\n".join(lines) + "\n")
        print(f"{name}: {len(lines)} seeds")


if __name__ == "__main__":
    main()
