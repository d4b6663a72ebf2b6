"""Send and Data indications (RFC 8656 §11): the relay's fast paths for them, beside turn.stun's general codec.

They carry every packet of a client that does not use channels (Firefox never does): aioice's generic codec
walks a dict, XORs addresses byte by byte and parses IP addresses with the ipaddress module, about 20-40 µs a
message. tests/turn/test_stun.py checks that both paths agree.
"""

from __future__ import annotations

import binascii
import functools
import os
import socket
import struct

from aioice import stun as aioice_stun
from aioice.stun import COOKIE, Class, Method

from turn.stun import ATTRIBUTE_HEADER, HEADER, HEADER_LENGTH, IPV4, MAX_ATTRIBUTES

_FINGERPRINT = 0x8028
_FINGERPRINT_XOR = 0x5354554E  # RFC 8489 §14.7
_SEND_INDICATION = int(Method.SEND) | int(Class.INDICATION)
_DATA_INDICATION = int(Method.DATA) | int(Class.INDICATION)
_XOR_V4 = struct.Struct("!HHBBHI")
_XOR_V4_PORT_ADDRESS = struct.Struct("!HI")
_USUAL_PEER = ATTRIBUTE_HEADER.pack(0x0012, 8)
_DATA_TYPE = b"\x00\x13"
_FINGERPRINT_HEAD = ATTRIBUTE_HEADER.pack(_FINGERPRINT, 4)
_COOKIE_BYTES = struct.pack("!I", COOKIE)
_COOKIE_HIGH = COOKIE >> 16
_PADDING = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")


class _TransactionIds:
    """Cryptographically random transaction IDs (RFC 8489 §5), drawn from the OS in batches."""

    __slots__ = ("_pool", "_position")

    def __init__(self) -> None:
        self._pool = b""
        self._position = 0

    def __call__(self) -> bytes:
        position = self._position
        if position + 12 > len(self._pool):
            self._pool = os.urandom(12 * 1024)
            position = 0
        self._position = position + 12
        return self._pool[position : position + 12]


transaction_id = _TransactionIds()


def xor_peer_address(peer: tuple[str, int], transaction_id: bytes) -> bytes:
    """The whole XOR-PEER-ADDRESS attribute (type, length, value) for ``peer`` (RFC 8656 §18.3)."""
    host, port = peer
    if ":" not in host:
        address = int.from_bytes(socket.inet_aton(host), "big")
        return _XOR_V4.pack(0x0012, 8, 0, IPV4, port ^ _COOKIE_HIGH, address ^ COOKIE)
    value = aioice_stun.pack_xor_address(peer, transaction_id)
    return ATTRIBUTE_HEADER.pack(0x0012, len(value)) + value


@functools.lru_cache(maxsize=1024)
def _xor_peer_v4(peer: tuple[str, int]) -> bytes:
    return xor_peer_address(peer, b"")  # an IPv4 one does not depend on the transaction ID


def data_indication_head(peer: tuple[str, int], size: int) -> bytes:
    """Everything of a Data indication from ``peer`` (RFC 8656 §11.3) up to its ``size`` bytes of data, which
    follow it padded to a multiple of 4 (:func:`padded`): the relay sends the two without joining them."""
    tid = transaction_id()
    peer_attribute = _xor_peer_v4(peer) if ":" not in peer[0] else xor_peer_address(peer, tid)
    return b"".join(
        (
            HEADER.pack(_DATA_INDICATION, len(peer_attribute) + 4 + size + (-size % 4), COOKIE, tid),
            peer_attribute,
            ATTRIBUTE_HEADER.pack(0x0013, size),
        )
    )


def padded(data: bytes) -> bytes:
    """``data`` padded with zeros to a multiple of 4 bytes, as an attribute's value is (RFC 8489 §14)."""
    return data + _PADDING[len(data) % 4] if len(data) % 4 else data


def data_indication(peer: tuple[str, int], data: bytes) -> bytes:
    """A Data indication carrying ``data`` from ``peer`` (RFC 8656 §11.3)."""
    return data_indication_head(peer, len(data)) + padded(data)


@functools.lru_cache(maxsize=1024)
def _peer_from_xor_v4(value: bytes) -> tuple[str, int]:
    """The peer of an IPv4 XOR-PEER-ADDRESS's port and address bytes (RFC 8489 §14.2)."""
    xport, xaddress = _XOR_V4_PORT_ADDRESS.unpack(value)
    return socket.inet_ntoa((xaddress ^ COOKIE).to_bytes(4, "big")), xport ^ _COOKIE_HIGH


def _fingerprint(data: bytes | memoryview) -> int:
    """FINGERPRINT's value for the message before it (RFC 8489 §14.7), as aioice's, without copying ``data``."""
    return binascii.crc32(data) ^ _FINGERPRINT_XOR


def parse_send_indication(data: bytes | memoryview) -> tuple[tuple[str, int], bytes | memoryview] | None:
    """(peer, payload) of a Send indication of the usual shape: one IPv4 XOR-PEER-ADDRESS, DATA, and only
    comprehension-optional attributes besides (FINGERPRINT is checked).

    None for anything else, including valid indications with DONT-FRAGMENT or an IPv6 peer: :func:`turn.stun.decode`
    and the Send handler then judge the message in full.
    """
    size = len(data)
    if size < HEADER_LENGTH or data[4:8] != _COOKIE_BYTES:
        return None
    message_type, length = ATTRIBUTE_HEADER.unpack_from(data)
    if message_type != _SEND_INDICATION or length + HEADER_LENGTH != size:
        return None
    # What browsers and turnutils_uclient send, checked by offsets first: an IPv4 XOR-PEER-ADDRESS, DATA, and
    # FINGERPRINT or nothing. Walking the attributes costs a third of this path's time (profile, issue 15).
    if size >= 36 and data[20:24] == _USUAL_PEER and data[25] == IPV4 and data[32:34] == _DATA_TYPE:
        end = 36 + (data[34] << 8 | data[35])
        pos = end + (-end % 4)
        if pos == size or (pos + 8 == size and data[pos : pos + 4] == _FINGERPRINT_HEAD
                           and struct.unpack_from("!I", data, pos + 4)[0] == _fingerprint(data[:pos])):
            return _peer_from_xor_v4(bytes(data[26:32])), data[36:end]
    peer = payload = None
    pos = HEADER_LENGTH
    for _ in range(MAX_ATTRIBUTES):  # more attributes leave pos short of size: None, and decode refuses it
        if pos + 4 > size:
            break
        kind, length = ATTRIBUTE_HEADER.unpack_from(data, pos)
        end = pos + 4 + length
        if end > size:
            return None
        if kind == 0x0012:
            if peer is not None or length != 8 or data[pos + 5] != IPV4:
                return None  # a second one, or IPv6: the general path decides
            peer = _peer_from_xor_v4(bytes(data[pos + 6 : pos + 12]))
        elif kind == 0x0013:
            if payload is None:
                payload = data[pos + 4 : end]
        elif kind == _FINGERPRINT:
            if end != size or struct.unpack_from("!I", data, pos + 4)[0] != _fingerprint(data[:pos]):
                return None
        elif kind < 0x8000:
            return None
        pos = end + (-length % 4)
    if pos != size or peer is None or payload is None:
        return None
    return peer, payload
