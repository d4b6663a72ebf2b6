"""ChannelData messages (RFC 8656 §12.4) and the framing of STUN and ChannelData over TCP and TLS.

Over UDP a datagram is one message. Over a stream, STUN messages follow each other (their header gives the
length, RFC 8489 §6.2.2) and ChannelData messages are padded to a multiple of four bytes (RFC 8656 §12.5).
"""

from __future__ import annotations

import struct
import sys

CHANNEL_HEADER = struct.Struct("!HH")
# Channel numbers a client may bind. RFC 8656 §12 narrows them to 0x4000-0x4FFF, but RFC 5766 §11 allowed up
# to 0x7FFF and clients still use that range (coturn's picks at random within it); both fit the 01 prefix.
CHANNEL_MIN = 0x4000
CHANNEL_MAX = 0x7FFF
MAX_FRAME = 4 + 0xFFFF + 3  # the longest ChannelData frame; a STUN message is at most 20 + 0xFFFF
MIN_STREAM_FRAME = 4 + 1500  # the least max_frame a relay may set: ChannelData of a whole Ethernet-MTU datagram
PADDING = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")  # indexed by length % 4


def is_channel_data(data: bytes) -> bool:
    """True when the first two bits are 01: a ChannelData message, not STUN (RFC 8656 §12.4)."""
    return len(data) >= 4 and 0x40 <= data[0] < 0x80


def channel_data(channel: int, payload: bytes, padded: bool = False) -> bytes:
    """A ChannelData message; ``padded`` for TCP and TLS, where it must end on a 4-byte boundary."""
    frame = CHANNEL_HEADER.pack(channel, len(payload)) + payload
    return frame + PADDING[len(payload) % 4] if padded else frame


def parse_channel_data(data: bytes) -> tuple[int, bytes]:
    """Split a ChannelData message into (channel number, payload); ValueError when it is too short."""
    if not is_channel_data(data):
        raise ValueError("not a ChannelData message")
    channel, length = CHANNEL_HEADER.unpack_from(data)
    if 4 + length > len(data):
        raise ValueError("ChannelData is shorter than its length field")
    return channel, data[4 : 4 + length]


class FrameTooLarge(ValueError):
    """A frame's header announces more than the framer's ``max_frame`` bytes."""


class StreamFramer:
    """Cut a TCP/TLS byte stream into whole STUN and ChannelData messages, padding included.

    ``feed`` returns the messages completed by the new bytes; it raises ValueError when the stream cannot be
    STUN or ChannelData (first two bits 10 or 11), and :class:`FrameTooLarge` as soon as a header announces a
    message longer than ``max_frame``; the connection must be closed after either. So at most one partial
    message of at most ``max_frame`` bytes is held between calls, besides the whole messages a ``limit`` left.
    """

    __slots__ = ("_buffer", "max_frame")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes, limit: int = sys.maxsize) -> list[bytes]:
        """Append ``data`` and return the whole messages buffered, in order: at most ``limit`` of them.

        Messages beyond ``limit`` stay buffered (unchecked) for the next call, which may pass ``b""``.
        """
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        start = 0
        end = len(buffer)
        while end - start >= 4 and len(frames) < limit:
            first = buffer[start]
            length = buffer[start + 2] << 8 | buffer[start + 3]
            if first < 0x40:
                size = 20 + length  # STUN: a 20-byte header and a body that is a multiple of 4
            elif first < 0x80:
                size = 4 + length + (-length % 4)
            else:
                raise ValueError("stream is neither STUN nor ChannelData")
            if size > self.max_frame:
                raise FrameTooLarge(f"a {size}-byte message exceeds the {self.max_frame}-byte limit")
            if end - start < size:
                break
            frames.append(bytes(buffer[start : start + size]))
            start += size
        if start:
            del buffer[:start]
        return frames
