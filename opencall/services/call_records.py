"""Writes finished calls to the database off the signaling path, in order, batched."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime

from tortoise.transactions import in_transaction

from opencall.db.models import Call, User
from opencall.services.tasks import cancel

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
    caller_username: str | None = None  # the accounts the parties were signed in to: their verified names
    callee_username: str | None = None
    caller_principal: str | None = None
    blocked: bool = False


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
        await cancel(self._task)

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
                await _write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()


async def _write(batch: list[FinishedCall]) -> None:
    """One INSERT for the batch, in a transaction so that a failure writes none of it; then, if it failed, one
    INSERT per call, so that a bad row costs only itself."""
    try:
        async with in_transaction():
            await Call.bulk_create([Call(**vars(call)) for call in batch])
    except Exception as exc:
        log.warning("could not record %d finished calls at once (%s); recording them one by one", len(batch), exc)
        for call in batch:
            await _write_alone(call)


async def _write_alone(call: FinishedCall) -> None:
    """Write one call. A call of an account removed meanwhile (its socket ended the call after the removal) is
    written unlinked from it, as the removal left the account's other records; one that still fails is logged
    and dropped."""
    try:
        await Call.create(**vars(call))
        return
    except Exception:
        unlinked = await _unlink_removed(call)
        if unlinked is None:
            log.exception("dropped the record of a finished call that cannot be written: %r", call)
            return
    try:
        await Call.create(**vars(unlinked))
    except Exception:
        log.exception("dropped the record of a finished call that cannot be written: %r", unlinked)
    else:
        log.info("recorded a call of a removed account unlinked from it: %s -> %s", call.caller_call_id,
                 call.callee_call_id)


async def _unlink_removed(call: FinishedCall) -> FinishedCall | None:
    """``call`` without the accounts that no longer exist, or None when both of its accounts still do."""
    ids = [user_id for user_id in (call.caller_id, call.callee_id) if user_id is not None]
    existing = set(await User.filter(id__in=ids).values_list("id", flat=True)) if ids else set()
    if all(user_id in existing for user_id in ids):
        return None
    return replace(call, caller_id=call.caller_id if call.caller_id in existing else None,
                   callee_id=call.callee_id if call.callee_id in existing else None)
