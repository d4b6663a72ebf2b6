"""A relay-only WebRTC call between two aiortc peers: ICE, DTLS, SCTP and RTP all cross our relay."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.turn.support import credentials
from turn import TurnServer

try:
    import aiortc
except ImportError:  # the test fails and says what to install
    aiortc = None  # type: ignore[assignment]


def relay_only(relay: TurnServer, user: str, transport: str) -> Any:
    username, password = credentials(user)
    url = f"turn:{relay.config.listen}:{relay.config.port}?transport={transport}"
    return aiortc.RTCConfiguration(
        iceServers=[aiortc.RTCIceServer(urls=url, username=username, credential=password)],
        iceTransportPolicy=aiortc.RTCIceTransportPolicy.RELAY,
    )


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_relay_only_call(relay: TurnServer, transport: str) -> None:
    if aiortc is None:
        pytest.fail("aiortc is missing: it is in the test extra of pyproject.toml (pip install '.[test]')")
    caller = aiortc.RTCPeerConnection(relay_only(relay, "caller", transport))
    callee = aiortc.RTCPeerConnection(relay_only(relay, "callee", "udp"))
    received: asyncio.Queue[Any] = asyncio.Queue()
    audio: asyncio.Queue[Any] = asyncio.Queue()

    @callee.on("datachannel")
    def on_datachannel(channel: Any) -> None:
        @channel.on("message")
        def on_message(message: Any) -> None:
            received.put_nowait(message)
            channel.send(f"echo {message}")

    tasks: list[asyncio.Task[None]] = []

    @callee.on("track")
    def on_track(track: Any) -> None:
        async def first_frame() -> None:
            audio.put_nowait(await track.recv())

        tasks.append(asyncio.ensure_future(first_frame()))

    try:
        channel = caller.createDataChannel("chat")
        echoes: asyncio.Queue[Any] = asyncio.Queue()
        channel.on("message", echoes.put_nowait)
        opened = asyncio.Event()
        channel.on("open", opened.set)
        caller.addTrack(aiortc.AudioStreamTrack())

        await caller.setLocalDescription(await caller.createOffer())
        offer = caller.localDescription
        assert "typ relay" in offer.sdp and "typ host" not in offer.sdp
        await callee.setRemoteDescription(aiortc.RTCSessionDescription(offer.sdp, offer.type))
        await callee.setLocalDescription(await callee.createAnswer())
        answer = callee.localDescription
        assert "typ relay" in answer.sdp and "typ host" not in answer.sdp
        await caller.setRemoteDescription(aiortc.RTCSessionDescription(answer.sdp, answer.type))

        await asyncio.wait_for(opened.wait(), 20)
        channel.send("hello over the relay")
        assert await asyncio.wait_for(received.get(), 10) == "hello over the relay"
        assert await asyncio.wait_for(echoes.get(), 10) == "echo hello over the relay"
        frame = await asyncio.wait_for(audio.get(), 10)
        assert frame.sample_rate == 48000

        counters = relay.counters
        assert counters.allocations == 2
        assert counters.permissions >= 2 and counters.channels >= 2
        # ICE checks, the DTLS handshake, SCTP and RTP: far more than a handful of packets each way.
        assert counters.packets_to_peers > 20 and counters.packets_to_clients > 20
        assert counters.auth_failures == 0
    finally:
        await caller.close()
        await callee.close()
    for _ in range(50):
        if relay.counters.allocations == 0:
            break
        await asyncio.sleep(0.05)
    assert relay.counters.allocations == 0
