"""STUN messages (RFC 8489) with the TURN attributes of RFC 8656: aioice.stun's table, read strictly.

aioice.stun packs and unpacks attribute values and computes MESSAGE-INTEGRITY and FINGERPRINT; everything
here uses it for that. Two things it cannot do for a server, and the reason this module exists:

* Its table lacks the TURN attributes a server must understand or send (RFC 8656 §18: EVEN-PORT,
  RESERVATION-TOKEN, DONT-FRAGMENT, REQUESTED-ADDRESS-FAMILY, …) and UNKNOWN-ATTRIBUTES (RFC 8489 §14.13).
  This module's own table, :data:`ATTRIBUTES_BY_TYPE`, holds aioice's entries and :data:`TURN_ATTRIBUTES`;
  :func:`encode` and :func:`decode` use it. aioice's module-level tables are never written to, so any other
  aioice user in the process (``opencall doctor``, tests, a user's script) sees aioice as it ships.
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
# This codec's one attribute table: aioice's entries (an entry aioice has wins) and the TURN ones above. Built
# as new dicts: aioice.stun's own tables are read, never written.
ATTRIBUTES_BY_TYPE: dict[int, stun.AttributeEntry] = {
    **{entry[0]: entry for entry in TURN_ATTRIBUTES}, **stun.ATTRIBUTES_BY_TYPE,
}
ATTRIBUTES_BY_NAME: dict[str, stun.AttributeEntry] = {entry[1]: entry for entry in ATTRIBUTES_BY_TYPE.values()}

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
            _, name, _, unpack = ATTRIBUTES_BY_TYPE[kind]
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
    """Serialise ``message`` with this module's table, signed with ``key`` when given (MESSAGE-INTEGRITY, RFC 8489
    §14.5), then with FINGERPRINT (§14.7) when signed or ``fingerprint``. ``message`` is left unchanged: those
    two are computed here (with aioice's functions), never taken from its attributes."""
    transaction_id = message.transaction_id
    body = b"".join(
        _attribute(name, value, transaction_id)
        for name, value in message.attributes.items()
        if name not in _COMPUTED
    )
    data = HEADER.pack(message.message_method | message.message_class, len(body), COOKIE, transaction_id) + body
    if key is not None:
        data = _append(data, _MESSAGE_INTEGRITY, stun.message_integrity(data, key))
    if key is not None or fingerprint:
        data = _append(data, _FINGERPRINT, struct.pack("!I", stun.message_fingerprint(data)))
    return data


_COMPUTED = frozenset({"MESSAGE-INTEGRITY", "FINGERPRINT"})


def _attribute(name: str, value: Any, transaction_id: bytes) -> bytes:
    """One attribute, type-length-value, padded to 4 bytes with zeros (RFC 8489 §14)."""
    kind, _, pack, _ = ATTRIBUTES_BY_NAME[name]
    packed = pack(value, transaction_id) if pack is stun.pack_xor_address else pack(value)
    return ATTRIBUTE_HEADER.pack(kind, len(packed)) + packed + bytes(-len(packed) % 4)


def _append(data: bytes, kind: int, value: bytes) -> bytes:
    """``data`` with one more attribute at its end, its header's length counting it."""
    length = len(data) - HEADER_LENGTH + 4 + len(value)
    return data[:2] + struct.pack("!H", length) + data[4:] + ATTRIBUTE_HEADER.pack(kind, len(value)) + value
