"""Writes finished calls to the database off the signaling path, in order, batched."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from opencall.db.models import Call

log = logging.getLogger("opencall.calls")
# Rows per INSERT: building a row's model takes the event loop about 30 µs, so a batch holds it ~1.5 ms.
BATCH = 50
# How long a finished call may wait for others to share its transaction. One INSERT per call cost about 2 ms of
# CPU (Tortoise, then a commit with its fsync); batched, it is a few per cent of that. Reading the history
# flushes first, so nobody sees a call missing; a crash loses at most this much of it.
LINGER = 0.5


@dataclass(frozen=True)
class FinishedCall:
    caller_id: int | None
    callee_id: int | None
    caller_call_id: str
    callee_call_id: str
    caller_name: str | None
    callee_name: str | None
    status: str  # answered | rejected | missed
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime


class CallRecorder:
    """A queue and one writer task: signaling never waits for the database."""

    def __init__(self, linger: float = LINGER) -> None:
        self._queue: asyncio.Queue[FinishedCall] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._linger = linger
        self._write_now = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="call-recorder")

    def record(self, call: FinishedCall) -> None:
        self._queue.put_nowait(call)

    async def flush(self) -> None:
        """Return once every call recorded so far is in the database."""
        if self._task is not None and not self._task.done():
            self._write_now.set()
            await self._queue.join()

    async def stop(self) -> None:
        """Write what is queued, then stop the writer."""
        await self.flush()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._queue.qsize() < BATCH - 1:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._write_now.wait(), self._linger)
            self._write_now.clear()
            while not self._queue.empty() and len(batch) < BATCH:
                batch.append(self._queue.get_nowait())
            try:
                await Call.bulk_create([Call(**vars(call)) for call in batch])
            except Exception:
                log.exception("could not record %d finished calls", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()
