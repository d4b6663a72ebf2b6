"""STUN messages (RFC 8489) with the TURN attributes of RFC 8656: aioice.stun's table, read strictly.

aioice.stun packs and unpacks attribute values and computes MESSAGE-INTEGRITY and FINGERPRINT; everything
here uses it for that. Two things it cannot do for a server, and the reason this module exists:

* Its table lacks the TURN attributes a server must understand or send (RFC 8656 §18: EVEN-PORT,
  RESERVATION-TOKEN, DONT-FRAGMENT, REQUESTED-ADDRESS-FAMILY, …) and UNKNOWN-ATTRIBUTES (RFC 8489 §14.13).
  :data:`TURN_ATTRIBUTES` adds them to that same table, so ``bytes(Message)`` encodes them; entries aioice
  already has are left alone.
* Its ``parse_message`` skips unknown attributes silently (a server must answer unknown
  comprehension-required ones with 420, RFC 8489 §6.3.1), keeps the *last* instance of an attribute (only
  the first counts, RFC 8489 §14; a CreatePermission may carry several XOR-PEER-ADDRESS, RFC 8656 §10.1),
  does not check the magic cookie or attribute lengths, and lets some malformed values raise ``struct.error``.
  :func:`decode` therefore walks the attributes itself and hands each value to aioice's unpacker.

:func:`decode` does work linear in the size of its input, with hard caps: at most :data:`MAX_ATTRIBUTES`
attributes are read (a message with more is discarded), at most :data:`MAX_UNKNOWN` unknown types are listed
for a 420, so a message costs time linear in its size and never more than a fixed bound.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from aioice import stun
from aioice.stun import COOKIE, Class, Message, Method

HEADER = struct.Struct("!HHI12s")
ATTRIBUTE_HEADER = struct.Struct("!HH")
HEADER_LENGTH = 20
IPV4 = 0x01  # address family codes of RFC 8489 §14.1 and RFC 8656 §18.6
IPV6 = 0x02
UDP = 17  # protocol number in REQUESTED-TRANSPORT (RFC 8656 §18.8)

REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    420: "Unknown Attribute",
    437: "Allocation Mismatch",
    438: "Stale Nonce",
    440: "Address Family not Supported",
    441: "Wrong Credentials",
    442: "Unsupported Transport Protocol",
    443: "Peer Address Family Mismatch",
    486: "Allocation Quota Reached",
    508: "Insufficient Capacity",
}


# Packers and unpackers for the attributes aioice does not know (RFC 8656 §18, RFC 8489 §14.13).


def _pack_family(value: int) -> bytes:
    return struct.pack("!B3x", value)


def _unpack_family(data: bytes) -> int:
    if len(data) != 4:
        raise ValueError("address family attribute must be 4 bytes")
    return data[0]


def _pack_even_port(value: bool) -> bytes:
    return b"\x80" if value else b"\x00"


def _unpack_even_port(data: bytes) -> bool:
    """EVEN-PORT's value is its R bit: also reserve the next port (RFC 8656 §18.7)."""
    if len(data) != 1:
        raise ValueError("EVEN-PORT must be 1 byte")
    return bool(data[0] & 0x80)


def _unpack_token(data: bytes) -> bytes:
    if len(data) != 8:
        raise ValueError("RESERVATION-TOKEN must be 8 bytes")
    return data


def _pack_unknown(value: list[int]) -> bytes:
    return struct.pack(f"!{len(value)}H", *value)


def _unpack_unknown(data: bytes) -> list[int]:
    if len(data) % 2:
        raise ValueError("UNKNOWN-ATTRIBUTES must hold 16-bit types")
    return list(struct.unpack(f"!{len(data) // 2}H", data))


def _pack_address_error(value: tuple[int, int, str]) -> bytes:
    family, code, reason = value
    return struct.pack("!BxBB", family, code // 100, code % 100) + reason.encode()


def _unpack_address_error(data: bytes) -> tuple[int, int, str]:
    if len(data) < 4:
        raise ValueError("ADDRESS-ERROR-CODE is shorter than 4 bytes")
    return data[0], (data[2] & 0x07) * 100 + data[3], data[4:].decode()


def unpack_xor_address(data: bytes, transaction_id: bytes) -> tuple[str, int]:
    """An XOR-MAPPED/PEER/RELAYED-ADDRESS value (RFC 8489 §14.2): aioice's result, with the XOR done on
    integers (aioice XORs byte by byte, ~10 µs an address, and a CreatePermission may carry dozens)."""
    size = len(data)
    if size < 4:
        raise ValueError("STUN address length is less than 4 bytes")
    port = int.from_bytes(data[2:4], "big") ^ (COOKIE >> 16)
    if data[1] == IPV4 and size == 8:
        return socket.inet_ntoa((int.from_bytes(data[4:8], "big") ^ COOKIE).to_bytes(4, "big")), port
    if data[1] == IPV6 and size == 20:
        address = int.from_bytes(data[4:20], "big") ^ int.from_bytes(struct.pack("!I", COOKIE) + transaction_id, "big")
        if address >> 48 == 0:  # inet_ntop writes ::a.b.c.d and ::ffff:a.b.c.d where ipaddress writes hex
            return str(ipaddress.IPv6Address(address)), port
        return socket.inet_ntop(socket.AF_INET6, address.to_bytes(16, "big")), port
    raise ValueError("STUN address has an unknown family or a wrong length")


def _unpack_empty(data: bytes) -> None:
    if data:
        raise ValueError("attribute must be empty")


TURN_ATTRIBUTES: list[stun.AttributeEntry] = [
    (0x000A, "UNKNOWN-ATTRIBUTES", _pack_unknown, _unpack_unknown),
    (0x0017, "REQUESTED-ADDRESS-FAMILY", _pack_family, _unpack_family),
    (0x0018, "EVEN-PORT", _pack_even_port, _unpack_even_port),
    (0x001A, "DONT-FRAGMENT", stun.pack_none, _unpack_empty),
    (0x0022, "RESERVATION-TOKEN", stun.pack_bytes, _unpack_token),
    (0x8000, "ADDITIONAL-ADDRESS-FAMILY", _pack_family, _unpack_family),
    (0x8001, "ADDRESS-ERROR-CODE", _pack_address_error, _unpack_address_error),
]
for _entry in TURN_ATTRIBUTES:
    if _entry[0] not in stun.ATTRIBUTES_BY_TYPE:
        stun.ATTRIBUTES_BY_TYPE[_entry[0]] = _entry
        stun.ATTRIBUTES_BY_NAME[_entry[1]] = _entry

# The attributes this module decodes: those the server acts on, and those of its responses. Anything else
# in the comprehension-required range 0x0000-0x7FFF is "unknown" and earns a 420 (RFC 8489 §6.3.1), even
# where aioice could decode it: CHANGE-REQUEST (RFC 5780), or MESSAGE-INTEGRITY-SHA256 and USERHASH, which
# we never offer in a 401 (RFC 8489 §9.2.4).
UNDERSTOOD = frozenset(
    {
        0x0006,  # USERNAME
        0x0008,  # MESSAGE-INTEGRITY
        0x0009,  # ERROR-CODE
        0x000A,  # UNKNOWN-ATTRIBUTES
        0x000C,  # CHANNEL-NUMBER
        0x000D,  # LIFETIME
        0x0012,  # XOR-PEER-ADDRESS
        0x0013,  # DATA
        0x0014,  # REALM
        0x0015,  # NONCE
        0x0016,  # XOR-RELAYED-ADDRESS
        0x0017,  # REQUESTED-ADDRESS-FAMILY
        0x0018,  # EVEN-PORT
        0x0019,  # REQUESTED-TRANSPORT
        0x001A,  # DONT-FRAGMENT
        0x0020,  # XOR-MAPPED-ADDRESS
        0x0022,  # RESERVATION-TOKEN
        0x8000,  # ADDITIONAL-ADDRESS-FAMILY
        0x8001,  # ADDRESS-ERROR-CODE
        0x8022,  # SOFTWARE
        0x8028,  # FINGERPRINT
    }
)
# Hard caps on the work one message may cost. Real clients send fewer than 12 attributes a message (Chrome,
# Firefox, aioice, coturn); a CreatePermission may carry several XOR-PEER-ADDRESS (RFC 8656 §10.1).
MAX_ATTRIBUTES = 64  # a message with more attributes is discarded, whatever they are
MAX_UNKNOWN = 16  # unknown comprehension-required types listed in UNKNOWN-ATTRIBUTES (RFC 8489 §14.13)
_MESSAGE_INTEGRITY = 0x0008
_CHANNEL_NUMBER = 0x000C
_XOR_PEER_ADDRESS = 0x0012
_FINGERPRINT = 0x8028
_TYPES = frozenset(int(m) | int(c) for m in Method for c in Class)


@dataclass(slots=True)
class Decoded:
    """A STUN message as :func:`decode` read it, with what aioice's ``Message`` cannot hold."""

    message: Message
    peers: list[tuple[str, int]] = field(default_factory=list)  # every XOR-PEER-ADDRESS, in order
    unknown: list[int] = field(default_factory=list)  # comprehension-required types we do not understand
    invalid: list[int] = field(default_factory=list)  # understood types whose value is malformed
    signed: bytes | None = None  # the bytes MESSAGE-INTEGRITY covers (RFC 8489 §14.5)
    fingerprinted: bool = False

    @property
    def attributes(self) -> dict[str, Any]:
        return self.message.attributes


def is_stun(data: bytes) -> bool:
    """True for a datagram that can be a STUN message: first two bits 0 and the magic cookie (RFC 8489 §5)."""
    return len(data) >= HEADER_LENGTH and data[0] < 0x40 and data[4:8] == b"\x21\x12\xa4\x42"


def decode(data: bytes) -> Decoded:
    """Read one STUN message; raise ValueError for anything that is not a well-formed one (RFC 8489 §5, §6.3).

    A bad FINGERPRINT, a length that does not match, a truncated attribute or an unknown method make the
    message unusable (it is discarded). Unknown comprehension-required attributes and malformed values of
    known ones are reported in the result, so a request can be answered with 420 or 400.
    """
    if not is_stun(data):
        raise ValueError("not a STUN message")
    message_type, length, _, transaction_id = HEADER.unpack_from(data)
    if message_type not in _TYPES:
        raise ValueError(f"unknown STUN method in type {message_type:#06x}")
    end = HEADER_LENGTH + length
    if length % 4 or end != len(data):
        raise ValueError("STUN message length does not match")
    decoded = Decoded(Message(Method(message_type & 0x3EEF), Class(message_type & 0x0110), transaction_id))
    attributes = decoded.message.attributes
    unknown: set[int] = set()  # the types in decoded.unknown: a set keeps the duplicate check O(1)
    count = 0
    pos = HEADER_LENGTH
    while pos < end:
        count += 1
        if count > MAX_ATTRIBUTES:
            raise ValueError(f"more than {MAX_ATTRIBUTES} STUN attributes")
        if pos + 4 > end:
            raise ValueError("truncated STUN attribute header")
        kind, size = ATTRIBUTE_HEADER.unpack_from(data, pos)
        value = data[pos + 4 : pos + 4 + size]
        if len(value) != size:
            raise ValueError("STUN attribute overruns the message")
        if kind == _FINGERPRINT:
            # FINGERPRINT is last, and covers everything before it (RFC 8489 §14.7).
            if size != 4 or pos + 8 != end:
                raise ValueError("FINGERPRINT must be the last attribute")
            if struct.unpack("!I", value)[0] != stun.message_fingerprint(data[:pos]):
                raise ValueError("STUN FINGERPRINT does not match")
            decoded.fingerprinted = True
        elif decoded.signed is not None:
            pass  # attributes after MESSAGE-INTEGRITY are ignored (RFC 8489 §14.5)
        elif kind not in UNDERSTOOD:
            if kind < 0x8000 and kind not in unknown and len(unknown) < MAX_UNKNOWN:
                unknown.add(kind)
                decoded.unknown.append(kind)
        else:
            _, name, _, unpack = stun.ATTRIBUTES_BY_TYPE[kind]
            try:
                if unpack is stun.unpack_xor_address:
                    parsed = unpack_xor_address(value, transaction_id)
                elif kind == _MESSAGE_INTEGRITY and size != 20:
                    raise ValueError("MESSAGE-INTEGRITY must be 20 bytes")
                elif kind == _CHANNEL_NUMBER and size != 4:
                    raise ValueError("CHANNEL-NUMBER must be 4 bytes")  # RFC 8656 §18.1
                else:
                    parsed = unpack(value)
            except (ValueError, struct.error):  # UnicodeDecodeError is a ValueError
                decoded.invalid.append(kind)
            else:
                if kind == _XOR_PEER_ADDRESS:
                    decoded.peers.append(parsed)
                if kind == _MESSAGE_INTEGRITY:
                    decoded.signed = data[:pos]
                attributes.setdefault(name, parsed)
        pos += 4 + size + (-size % 4)
    return decoded


def check_integrity(decoded: Decoded, key: bytes) -> bool:
    """Whether MESSAGE-INTEGRITY is present and matches ``key`` (RFC 8489 §14.5)."""
    if decoded.signed is None:
        return False
    expected = stun.message_integrity(decoded.signed, key)
    return hmac.compare_digest(decoded.attributes["MESSAGE-INTEGRITY"], expected)


def success(request: Message, **attributes: Any) -> Message:
    """A success response to ``request`` with the given attributes (names with ``_`` for ``-``)."""
    return _response(request, Class.RESPONSE, attributes)


def error(request: Message, code: int, **attributes: Any) -> Message:
    """An error response to ``request`` carrying ERROR-CODE ``code`` (RFC 8489 §14.8)."""
    return _response(request, Class.ERROR, {"ERROR_CODE": (code, REASONS[code]), **attributes})


def _response(request: Message, kind: Class, attributes: dict[str, Any]) -> Message:
    return Message(
        request.message_method,
        kind,
        request.transaction_id,
        {name.replace("_", "-"): value for name, value in attributes.items() if value is not None},
    )


def encode(message: Message, key: bytes | None = None, fingerprint: bool = True) -> bytes:
    """Serialise ``message``, signed with ``key`` when given; MESSAGE-INTEGRITY implies FINGERPRINT."""
    if key is not None:
        message.add_message_integrity(key)
    elif fingerprint:
        message.add_fingerprint()
    return bytes(message)


# Send and Data indications (RFC 8656 §11) carry every packet of a client that does not use channels (Firefox
# never does), so both have a fast path here: aioice's generic codec walks a dict, XORs addresses byte by byte
# and parses IP addresses with the ipaddress module, about 20-40 µs a message. tests/turn/test_stun.py checks
# that both paths agree.
_SEND_INDICATION = int(Method.SEND) | int(Class.INDICATION)
_DATA_INDICATION = int(Method.DATA) | int(Class.INDICATION)
_XOR_V4 = struct.Struct("!HHBBHI")
_XOR_V4_VALUE = struct.Struct("!xBHI")
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
    value = stun.pack_xor_address(peer, transaction_id)
    return ATTRIBUTE_HEADER.pack(0x0012, len(value)) + value


def data_indication(peer: tuple[str, int], data: bytes) -> bytes:
    """A Data indication carrying ``data`` from ``peer`` (RFC 8656 §11.3)."""
    tid = transaction_id()
    peer_attribute = xor_peer_address(peer, tid)
    size = len(data)
    padding = _PADDING[size % 4]
    return b"".join(
        (
            HEADER.pack(_DATA_INDICATION, len(peer_attribute) + 4 + size + len(padding), COOKIE, tid),
            peer_attribute,
            ATTRIBUTE_HEADER.pack(0x0013, size),
            data,
            padding,
        )
    )


def parse_send_indication(data: bytes) -> tuple[tuple[str, int], bytes] | None:
    """(peer, payload) of a Send indication of the usual shape: one IPv4 XOR-PEER-ADDRESS, DATA, and only
    comprehension-optional attributes besides (FINGERPRINT is checked).

    None for anything else, including valid indications with DONT-FRAGMENT or an IPv6 peer: :func:`decode`
    and the Send handler then judge the message in full.
    """
    size = len(data)
    if size < HEADER_LENGTH or data[4:8] != _COOKIE_BYTES:
        return None
    message_type, length = ATTRIBUTE_HEADER.unpack_from(data)
    if message_type != _SEND_INDICATION or length + HEADER_LENGTH != size:
        return None
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
            _, xport, xaddress = _XOR_V4_VALUE.unpack_from(data, pos + 4)
            peer = (socket.inet_ntoa((xaddress ^ COOKIE).to_bytes(4, "big")), xport ^ _COOKIE_HIGH)
        elif kind == 0x0013:
            if payload is None:
                payload = data[pos + 4 : end]
        elif kind == _FINGERPRINT:
            if end != size or struct.unpack_from("!I", data, pos + 4)[0] != stun.message_fingerprint(data[:pos]):
                return None
        elif kind < 0x8000:
            return None
        pos = end + (-length % 4)
    if pos != size or peer is None or payload is None:
        return None
    return peer, payload
