"""The relay on its own thread and event loop, so that a loaded relay cannot starve HTTP and Socket.IO.

Under full relay load (tens of thousands of packets per second) the relay's callbacks, sharing the app's event
loop, delayed ``/healthz`` and a Socket.IO call setup past a p99 of 50 ms (53-140 ms measured); on a loop of its
own in a thread named ``relay``, the app's thread gets the GIL back within the interpreter's switch interval
(``sys.getswitchinterval``, 5 ms) whenever it has work, and its loop keeps its latency (docs/architecture.md,
tests/turn/test_relay_fairness.py).

:class:`RelayThread` owns that thread. Every call into the relay goes through it and runs on the relay's loop
(``asyncio.run_coroutine_threadsafe``), awaited from the app's loop without blocking it (``asyncio.wrap_future``).
What the app reads back without crossing over is documented where it is read (:attr:`RelayThread.running`,
``counters``); what the relay asks the app (``may_relay``) is answered on the app's loop
(:class:`opencall.relay.policy.OnAppLoop`). ``turn/`` knows nothing of this: any asyncio loop may run a
``TurnServer``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from turn import TurnServer

log = logging.getLogger("opencall.relay")

THREAD_NAME = "relay"
STOP_TIMEOUT = 10.0  # seconds for the relay's loop to end once the relay has stopped


class RelayThread:
    """Runs ``relay`` on a new event loop in a thread named ``relay``: :meth:`start`, then :meth:`stop`."""

    def __init__(self, relay: TurnServer) -> None:
        self.relay = relay
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended: concurrent.futures.Future[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the thread is alive and the relay's UDP listeners are open. Read from the app's thread:
        ``TurnServer.running`` only reads attributes and iterates a list, which never fails under CPython
        while the relay's thread changes them; at worst the answer is a moment old."""
        return self._thread is not None and self._thread.is_alive() and self.relay.running

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the relay's loop, soon (from any thread); at once, here, when no loop runs."""
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(callback)
                return
            except RuntimeError:
                pass  # closed meanwhile: nothing serves from the relay any more
        callback()

    async def start(self) -> None:
        """Start the thread and its loop, then the relay on it; raises what ``TurnServer.start`` raises (an
        OSError naming the address and port that cannot listen) after ending the thread."""
        if self._thread is not None:
            raise RuntimeError("relay thread already started")
        ready: concurrent.futures.Future[asyncio.AbstractEventLoop] = concurrent.futures.Future()
        self._ended = concurrent.futures.Future()
        # A daemon thread only so that a startup failing after this point (a later listener raising, where
        # Sanic runs no stop listeners) cannot keep the process alive at exit; stop() ends and joins it.
        self._thread = threading.Thread(target=self._run, args=(ready, self._ended), name=THREAD_NAME, daemon=True)
        self._thread.start()
        self._loop = await asyncio.wrap_future(ready)
        try:
            await self._on_relay_loop(self.relay.start())
        except BaseException:
            await self._end()
            raise

    async def stop(self) -> None:
        """Stop the relay on its loop, then end the loop and join the thread. Safe to call more than once."""
        if self._loop is None:
            return
        try:
            await self._on_relay_loop(self.relay.stop())
        finally:
            await self._end()

    def _run(self, ready: concurrent.futures.Future[asyncio.AbstractEventLoop],
             ended: concurrent.futures.Future[None]) -> None:
        """The thread: a new loop, run until :meth:`_end` stops it, then closed. ``asyncio.new_event_loop``
        follows the event loop policy, so the relay runs on uvloop when the app does (Sanic installs uvloop's
        policy before making its loop)."""
        try:
            loop = asyncio.new_event_loop()
        except BaseException as exc:
            ready.set_exception(exc)
            ended.set_result(None)
            return
        asyncio.set_event_loop(loop)
        try:
            ready.set_result(loop)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            ended.set_result(None)

    async def _on_relay_loop(self, work: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    async def _end(self) -> None:
        """Stop the relay's loop and wait, without blocking the app's loop, until the thread has closed it."""
        loop, thread, ended = self._loop, self._thread, self._ended
        if loop is None or thread is None or ended is None:
            return
        self._loop = None
        loop.call_soon_threadsafe(loop.stop)
        done, _ = await asyncio.wait({asyncio.wrap_future(ended)}, timeout=STOP_TIMEOUT)
        if not done:
            log.warning("the relay's thread did not end within %.0f s of the relay stopping", STOP_TIMEOUT)
            return
        thread.join(STOP_TIMEOUT)  # it has closed its loop: only returning is left
