"""The relay's TCP/TLS listeners under hostile clients: connection caps, idle and handshake timeouts, bounded
frames and back-pressure (issue 12, point 2). A real relay on 127.0.0.1, raw sockets as clients."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path

import pytest
import uvloop
from aioice.stun import Class, Message, Method

from tests.support import free_port
from tests.turn.support import FakeClock, StunClient, _Receiver, credentials, is_success, self_signed, start_relay
from turn import TurnServer, stun


def stream_address(relay: TurnServer) -> tuple[str, int]:
    return relay.config.listen, relay.config.port


async def connect(address: tuple[str, int], source: str = "127.0.0.1") -> tuple[asyncio.StreamReader,
                                                                                asyncio.StreamWriter]:
    return await asyncio.open_connection(*address, local_addr=(source, 0))


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the server closes the connection (EOF or reset) within ``within`` seconds."""
    try:
        data = await asyncio.wait_for(reader.read(65536), within)
    except ConnectionError:
        return True
    except TimeoutError:
        return False
    return data == b""


async def wait_until(condition: object, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_per_ip_cap_refuses_the_extra_connection_and_frees_a_place_on_close() -> None:
    relay = await start_relay(max_connections=10, max_connections_per_ip=3)
    try:
        held = [await connect(stream_address(relay)) for _ in range(3)]
        await wait_until(lambda: relay.counters.connections == 3)
        reader, _ = await connect(stream_address(relay))
        assert await closed_by_server(reader, 2.0)
        assert relay.counters.connections_refused_per_ip == 1
        other, _ = await connect(stream_address(relay), source="127.0.0.2")  # another address still gets in
        assert not await closed_by_server(other, 0.2)
        held[0][1].close()
        await wait_until(lambda: relay.counters.connections == 3)
        again, _ = await connect(stream_address(relay))
        assert not await closed_by_server(again, 0.2)
        assert relay.counters.connections_refused_per_ip == 1
    finally:
        await relay.stop()


async def test_global_cap_refuses_the_extra_connection() -> None:
    relay = await start_relay(max_connections=4, max_connections_per_ip=2)
    try:
        for source in ("127.0.0.1", "127.0.0.2"):
            for _ in range(2):
                await connect(stream_address(relay), source)
        await wait_until(lambda: relay.counters.connections == 4)
        reader, _ = await connect(stream_address(relay), "127.0.0.3")
        assert await closed_by_server(reader, 2.0)
        assert relay.counters.connections_refused_global == 1
        assert relay.counters.connections == 4
    finally:
        await relay.stop()


async def test_idle_connection_without_allocation_is_closed_one_with_an_allocation_stays() -> None:
    relay = await start_relay(connection_idle_timeout=0.3)
    try:
        reader, _ = await connect(stream_address(relay))
        allocated = await StunClient.connect(stream_address(relay), "tcp")
        allocated.login(*credentials("idle"))
        assert (await allocated.allocate()).message.message_class == Class.RESPONSE
        started = time.monotonic()
        assert await closed_by_server(reader, 2.0)
        assert time.monotonic() - started < 1.5
        assert relay.counters.connections_closed_idle == 1
        await asyncio.sleep(0.7)  # two more idle periods: the allocated connection is still served
        response = await allocated.request(Message(Method.BINDING, Class.REQUEST))
        assert response.message.message_class == Class.RESPONSE
        assert relay.counters.connections_closed_idle == 1
        allocated.close()
    finally:
        await relay.stop()


async def test_tls_connection_that_never_handshakes_is_closed_and_counts_against_the_caps(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    relay = await start_relay(tls_port=free_port(), tls_cert=cert, tls_key=key, tls_handshake_timeout=0.3,
                              max_connections=10, max_connections_per_ip=2)
    try:
        assert relay.config.tls_port is not None
        address = (relay.config.listen, relay.config.tls_port)
        silent = [await connect(address) for _ in range(2)]
        await wait_until(lambda: relay.counters.connections == 2)
        refused, _ = await connect(address)  # the two silent ones hold this address's places
        assert await closed_by_server(refused, 2.0)
        assert relay.counters.connections_refused_per_ip == 1
        started = time.monotonic()
        for reader, _ in silent:
            assert await closed_by_server(reader, 2.0)
        assert time.monotonic() - started < 1.5
        assert relay.counters.connections_closed_handshake == 2
        assert relay.counters.connections == 0
    finally:
        await relay.stop()


def test_many_tls_handshakes_all_succeed_under_uvloop(tmp_path: Path) -> None:
    """Every TLS client gets through, in uvloop as ``opencall serve`` runs the relay: no ClientHello is lost to
    the race between accept and start_tls (turn.tlsaccept; without the hand-over about one in eight hung)."""
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE

    async def handshakes() -> int:
        relay = await start_relay(tls_port=free_port(), tls_cert=cert, tls_key=key, max_connections_per_ip=100)
        done = 0
        try:
            assert relay.config.tls_port is not None
            for _ in range(100):
                _, writer = await asyncio.wait_for(asyncio.open_connection(
                    relay.config.listen, relay.config.tls_port, ssl=context), 5)
                writer.close()
                done += 1
        finally:
            await relay.stop()
        return done

    assert uvloop.run(handshakes()) == 100


@pytest.mark.parametrize("header", [b"\x40\x00\xff\xff", b"\x00\x01\x07\xd0" + b"\x21\x12\xa4\x42" + bytes(12)],
                         ids=["channel_data", "stun"])
async def test_oversized_frame_is_refused_at_its_header(header: bytes) -> None:
    relay = await start_relay(max_stream_frame=1504)
    try:
        reader, writer = await connect(stream_address(relay))
        writer.write(header)  # announces 65535 (ChannelData) or 2000 + 20 (STUN) bytes: more than 1504
        assert await closed_by_server(reader, 2.0)
        assert relay.counters.connections_closed_oversized == 1
    finally:
        await relay.stop()


async def test_a_partial_frame_within_the_limit_is_kept() -> None:
    relay = await start_relay(max_stream_frame=1504)
    try:
        client = await StunClient.connect(stream_address(relay), "tcp")
        binding = stun.encode(Message(Method.BINDING, Class.REQUEST), None)
        client.send_raw(b"\x40\x00\x05\xdc" + bytes(1000))  # ChannelData of 1500 bytes, 1000 sent so far
        await asyncio.sleep(0.1)
        client.send_raw(bytes(500) + binding)
        response = await client.request(Message(Method.BINDING, Class.REQUEST))
        assert response.message.message_class == Class.RESPONSE
        assert relay.counters.connections_closed_oversized == 0
        client.close()
    finally:
        await relay.stop()


async def test_client_that_never_reads_is_paused_and_bounded_while_others_are_served() -> None:
    limit = 16384
    # an unlimited allocation budget, so that every request is answered and the replies pile up
    relay = await start_relay(stream_write_buffer=limit, allocation_input_rate=10**9, allocation_input_burst=10**9)
    try:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small TCP window
        sock.setblocking(False)
        await loop.sock_connect(sock, stream_address(relay))
        hog = StunClient()
        hog.kind = "tcp"
        hog.transport, _ = await loop.create_connection(lambda: _Receiver(hog._deliver), sock=sock)
        hog.login(*credentials("hog"))
        assert (await hog.allocate()).message.message_class == Class.RESPONSE  # exempt from the input budget
        hog.transport.pause_reading()  # from now on it never reads
        binding = stun.encode(Message(Method.BINDING, Class.REQUEST), None, fingerprint=False)
        pipelined = b"".join(binding[:8] + bytes(12 - 4) + i.to_bytes(4, "big") for i in range(20000))
        hog.transport.write(pipelined)  # 20,000 requests, ~1.2 MB of replies
        await wait_until(lambda: relay.counters.connections_paused >= 1, timeout=5.0)
        (connection,) = [c for c in relay.connections if c.client is not None and
                         c.client.five_tuple[2] == hog.local_address]
        assert connection.transport.get_write_buffer_size() <= limit + 4096
        other = await StunClient.connect(stream_address(relay), "tcp")
        started = time.monotonic()
        response = await other.request(Message(Method.BINDING, Class.REQUEST))
        assert response.message.message_class == Class.RESPONSE
        assert time.monotonic() - started < 0.5
        assert connection.transport.get_write_buffer_size() <= limit + 4096
        other.close()
        hog.close()
    finally:
        await relay.stop()


@pytest.mark.parametrize("budget", ["default", "unlimited"])
async def test_pipelined_requests_of_an_allocation_never_stall_the_loop_50ms(budget: str) -> None:
    # Unlimited: every request is decoded and answered, FRAMES_PER_CALLBACK at a time.
    limits = {} if budget == "default" else {"allocation_input_rate": 10**9, "allocation_input_burst": 10**9}
    relay = await start_relay(**limits)
    try:
        client = await StunClient.connect(stream_address(relay), "tcp")
        client.login(*credentials("pipeliner"))
        assert (await client.allocate()).message.message_class == Class.RESPONSE  # exempt from the input budget
        answered = 0

        def count(frame: bytes) -> None:  # no decoding: the client shares the relay's loop
            nonlocal answered
            answered += frame[:2] == b"\x01\x01"  # a Binding success response

        client.transport.get_protocol().deliver = count
        lags: list[float] = []
        stop = asyncio.Event()

        async def measure_lag() -> None:
            """The overshoot of each 5 ms sleep, counted only while this process ran: on a busy machine the
            time it waits for a core is the machine's, not a stall of the loop."""
            while not stop.is_set():
                started, cpu = time.monotonic(), time.process_time()
                await asyncio.sleep(0.005)
                lags.append(min(time.monotonic() - started, time.process_time() - cpu) - 0.005)

        probe = asyncio.create_task(measure_lag())
        await asyncio.sleep(0.05)
        count_sent = 10000
        binding = stun.encode(Message(Method.BINDING, Class.REQUEST), None, fingerprint=False)
        client.send_raw(b"".join(binding[:8] + bytes(8) + i.to_bytes(4, "big") for i in range(count_sent)))
        counters = relay.counters
        await wait_until(lambda: answered + counters.stream_drops + counters.allocation_budget_drops >= count_sent,
                         timeout=10.0)
        stop.set()
        await probe
        assert max(lags) < 0.05, f"the loop stalled {max(lags) * 1000:.0f} ms"
        # every request handled, in order: answered, or dropped over the allocation's budget or a full queue
        assert answered + counters.stream_drops + counters.allocation_budget_drops == count_sent
        assert (counters.allocation_budget_drops > 0) == (budget == "default")
        client.transport.get_protocol().deliver = client._deliver
        await asyncio.sleep(2 / relay.config.allocation_input_rate)  # the budget refills a token or two
        response = await client.request(Message(Method.BINDING, Class.REQUEST))
        assert response.message.message_class == Class.RESPONSE
        client.close()
    finally:
        await relay.stop()


async def test_an_allocation_that_pipelines_requests_gets_its_budget_and_no_more() -> None:
    relay = await start_relay()
    config, counters = relay.config, relay.counters
    try:
        client = await StunClient.connect(stream_address(relay), "tcp")
        client.login(*credentials("pipeliner"))
        assert is_success(await client.allocate())
        answered = 0

        def count(frame: bytes) -> None:
            nonlocal answered
            answered += frame[:2] == b"\x01\x01"  # a Binding success response

        client.transport.get_protocol().deliver = count
        count_sent = 10000
        binding = stun.encode(Message(Method.BINDING, Class.REQUEST), None, fingerprint=False)
        started = time.monotonic()
        client.send_raw(b"".join(binding[:8] + bytes(8) + i.to_bytes(4, "big") for i in range(count_sent)))
        await wait_until(lambda: answered + counters.allocation_budget_drops >= count_sent, timeout=10.0)
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.05)  # replies still on their way
        assert config.allocation_input_burst <= answered
        assert answered <= config.allocation_input_burst + config.allocation_input_rate * elapsed + 1
        assert answered + counters.allocation_budget_drops == count_sent
        assert counters.stream_drops == counters.budget_drops == counters.malformed_drops == 0
        stranger = await StunClient.connect(stream_address(relay), "tcp")  # another client is still answered
        assert is_success(await stranger.request(Message(Method.BINDING, Class.REQUEST)))
        stranger.close()
        client.close()
    finally:
        await relay.stop()


@pytest.mark.parametrize("kind", ["udp", "tcp"])
async def test_requests_of_an_allocation_at_a_browsers_pace_are_never_dropped(kind: str) -> None:
    clock = FakeClock()  # the relay's monotonic clock: 20 simulated seconds in a fraction of a real one
    relay = await start_relay(clock=clock)
    peer = ("127.0.0.1", 50000)
    try:
        client = await StunClient.connect(stream_address(relay), kind)
        client.login(*credentials("browser"))
        assert is_success(await client.allocate())
        # an ICE restart: a permission and a channel for each of 40 remote candidates at once
        for number in range(40):
            assert is_success(await client.create_permission(("127.0.0.1", 50000 + number)))
            assert is_success(await client.channel_bind(0x4000 + number, ("127.0.0.1", 50000 + number)))
        # then 20 s of a permission refresh, an allocation refresh and a Binding every 0.1 s: 30 a second, far
        # more than a browser sends, more than the burst in all, within the rate
        for _ in range(200):
            clock.advance(0.1)
            assert is_success(await client.create_permission(peer))
            assert is_success(await client.refresh())
            assert is_success(await client.request(Message(Method.BINDING, Class.REQUEST)))
        assert relay.counters.allocation_budget_drops == 0
        client.close()
    finally:
        await relay.stop()
