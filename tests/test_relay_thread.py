"""The relay on its own thread and event loop (opencall/relay/thread.py, issue 15 point 4): where it runs, where
``may_relay`` is answered, how it starts, fails to start and stops, in this process and in ``opencall serve``.

The relay is a real ``TurnServer`` on 127.0.0.1 driven by the raw TURN client of tests/turn; its fairness under
load is tests/turn/test_relay_fairness.py's (slow)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvloop

from opencall.config import parse_config
from opencall.relay.policy import OnAppLoop
from opencall.relay.thread import THREAD_NAME, RelayThread
from opencall.tls import CertificateKeeper
from tests.support import configured_server
from tests.turn.support import StunClient, credentials, error_code, is_success, relay_config
from turn import TurnServer

PEER = ("127.0.0.2", 4000)


class Asked:
    """A ``may_relay`` that allows every peer and records the thread and the kind of loop it is asked on."""

    def __init__(self) -> None:
        self.on: list[tuple[str, type[asyncio.AbstractEventLoop]]] = []

    def __call__(self, principal: str, peer: tuple[str, int]) -> bool:
        self.on.append((threading.current_thread().name, type(asyncio.get_running_loop())))
        return True


def relay_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == THREAD_NAME]


@contextmanager
def loop_policy(policy: asyncio.AbstractEventLoopPolicy) -> Iterator[None]:
    """``policy`` as the event loop policy, as Sanic installs uvloop's before it makes its loop."""
    before = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(policy)
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(before)


async def permission(relay: TurnServer) -> bool:
    """Allocate and ask for a permission to PEER as alice; whether the relay granted it."""
    client = await StunClient.connect((relay.config.listen, relay.config.port))
    try:
        client.login(*credentials("alice"))
        assert is_success(await client.allocate())
        response = await client.create_permission(PEER)
        assert is_success(response) or error_code(response) == 403, response
        return is_success(response)
    finally:
        client.close()


async def relay_on_its_thread(on_app_loop: bool) -> tuple[list[tuple[str, type]], type]:
    """Run a relay with an :class:`Asked` policy, answered where ``on_app_loop`` says; what it recorded and
    the kind of the app's loop."""
    asked = Asked()
    may_relay = OnAppLoop(asked) if on_app_loop else asked
    if isinstance(may_relay, OnAppLoop):
        may_relay.bind(asyncio.get_running_loop())
    runner = RelayThread(TurnServer(relay_config(), may_relay=may_relay))
    await runner.start()
    try:
        assert runner.running and len(relay_threads()) == 1
        assert await permission(runner.relay)
        assert runner.relay.counters.snapshot()["allocations"] == 1  # read across threads, as /metrics does
    finally:
        await runner.stop()
    assert not runner.running and not relay_threads()
    assert not runner.relay.listening
    await runner.stop()  # twice is harmless
    return asked.on, type(asyncio.get_running_loop())


@pytest.mark.parametrize("policy", [asyncio.DefaultEventLoopPolicy, uvloop.EventLoopPolicy], ids=["asyncio", "uvloop"])
def test_the_relay_runs_on_its_own_thread_on_the_apps_kind_of_loop(policy: type) -> None:
    with loop_policy(policy()):
        asked_on, app_loop = asyncio.run(relay_on_its_thread(on_app_loop=False))
    assert asked_on == [(THREAD_NAME, app_loop)]  # the relay's own callbacks: on its thread, same kind of loop


def test_may_relay_is_answered_on_the_apps_loop() -> None:
    with loop_policy(uvloop.EventLoopPolicy()):
        asked_on, app_loop = asyncio.run(relay_on_its_thread(on_app_loop=True))
    assert asked_on == [(threading.main_thread().name, app_loop)]


async def test_an_unanswered_question_is_refused_in_time() -> None:
    """An app's loop that does not answer (here: one never run, then one closed) costs a refusal, not a hang."""
    silent = asyncio.new_event_loop()
    may_relay = OnAppLoop(lambda principal, peer: True, timeout=0.2)
    may_relay.bind(silent)
    runner = RelayThread(TurnServer(relay_config(), may_relay=may_relay))
    await runner.start()
    try:
        started = time.monotonic()
        assert not await permission(runner.relay)
        assert time.monotonic() - started < 1.5
        silent.close()
        assert not await permission(runner.relay)
    finally:
        await runner.stop()
        silent.close()


async def test_a_relay_that_cannot_listen_fails_start_and_leaves_no_thread() -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    try:
        runner = RelayThread(TurnServer(relay_config(port=port)))
        with pytest.raises(OSError, match=rf"cannot listen on 127\.0\.0\.1:{port}/udp"):
            await runner.start()
        assert not runner.running and not relay_threads()
        await runner.stop()  # nothing left to stop
    finally:
        holder.close()


@pytest.mark.slow  # seconds: a server process
def test_serve_with_the_turn_port_taken_fails_at_once_with_one_line(tmp_path: Path) -> None:
    """The relay starts before HTTP listens: a taken TURN port stops ``opencall serve`` with the listener's
    error, and neither its thread nor the database's keeps the process alive."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    server = configured_server(tmp_path, {"turn": {"port": port}})
    try:
        server.launch()
        assert server.proc is not None
        try:
            status = server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.stop()
            pytest.fail(f"serve did not exit:\n{server.stderr_path.read_text(errors='replace')}")
    finally:
        holder.close()
    output = server.stderr_path.read_text(errors="replace")
    assert status != 0, output
    assert f"cannot start: [Errno 98] cannot listen on 127.0.0.1:{port}/udp" in output, output


async def test_a_renewed_certificate_is_loaded_into_the_relays_context_on_the_relays_thread(tmp_path: Path) -> None:
    """HTTPS and TURN over TLS serve one certificate from two contexts, each loaded on the thread that serves
    from it: OpenSSL does not allow a load into a context while another thread makes connections from it."""
    keeper = CertificateKeeper(parse_config({"server": {"tls": "auto"}}, tmp_path))
    context = keeper.another_context()
    assert context is not keeper.context
    loaded_on: list[str] = []
    runner = RelayThread(TurnServer(relay_config()))

    def on_relay(load: Callable[[], None]) -> None:
        def traced() -> None:
            loaded_on.append(threading.current_thread().name)
            load()

        runner.call_soon(traced)

    keeper.load_on(context, on_relay)
    await runner.start()
    try:
        keeper.refresh()
        for _ in range(200):
            if loaded_on:
                break
            await asyncio.sleep(0.01)
        assert loaded_on == [THREAD_NAME]
    finally:
        await runner.stop()
    keeper.refresh()  # no relay loop any more: loaded at once, here
    assert loaded_on == [THREAD_NAME, threading.current_thread().name]
