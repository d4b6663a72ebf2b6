"""The Socket.IO client manager: python-socketio's AsyncManager with a cheaper emit."""

from __future__ import annotations

from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet


class DirectManager(socketio.AsyncManager):
    """Hands each packet of an emit straight to engine.io.

    python-socketio's own emit starts a task per recipient and waits for them with ``asyncio.wait``, to send
    to many sockets at once. Queueing a packet on an engine.io socket never blocks, so awaiting each recipient in
    turn sends the same bytes in the same order with neither. With handlers run in the receive loop
    (``async_handlers=False``), it takes 5-18% off the stack's CPU per call cycle below saturation and about a
    third under overload (bench/signaling.py's anchors, docs/benchmarks.md).
    Emits that ask for an acknowledgement keep python-socketio's path, which numbers each recipient's packet.
    """

    async def emit(self, event: str, data: Any, namespace: str, room: Any = None, skip_sid: Any = None,
                   callback: Any = None, to: Any = None, **kwargs: Any) -> None:
        if callback is not None:
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to,
                               **kwargs)
            return
        room = to or room
        if namespace not in self.rooms:
            return
        skipped = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        recipients = [eio_sid for sid, eio_sid in self.get_participants(namespace, room) if sid not in skipped]
        if not recipients:
            return
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        encoded = self.server.packet_class(packet.EVENT, namespace=namespace, data=[event, *args]).encode()
        packets = [eio_packet.Packet(eio_packet.MESSAGE, part)
                   for part in (encoded if isinstance(encoded, list) else [encoded])]
        for eio_sid in recipients:
            for pkt in packets:
                await self.server.eio.send_packet(eio_sid, pkt)
