"""The wire format: RFC 5769 test vectors, strict decoding, TURN attributes, ChannelData and stream framing."""

from __future__ import annotations

import hashlib
import struct

import pytest
from aioice.stun import Class, Message, Method, message_fingerprint, message_integrity, parse_message

from turn import indications, stun
from turn.framing import StreamFramer, channel_data, is_channel_data, parse_channel_data


def hexbytes(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# RFC 5769 §2.1: a Binding request with short-term credentials.
SAMPLE_REQUEST = hexbytes("""
    00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
    00 24 00 04 6e 00 01 ff
    80 29 00 08 93 2f f9 b1 51 26 3b 36
    00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
    00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
    80 28 00 04 e5 7a 3b cf
""")
# RFC 5769 §2.2: the IPv4 response.
SAMPLE_IPV4_RESPONSE = hexbytes("""
    01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 08 00 01 a1 47 e1 12 a6 43
    00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
    80 28 00 04 c0 7d 4c 96
""")
# RFC 5769 §2.3: the IPv6 response.
SAMPLE_IPV6_RESPONSE = hexbytes("""
    01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
    00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
    80 28 00 04 c8 fb 0b 4c
""")
# RFC 5769 §2.4: a request with long-term credentials.
SAMPLE_LONG_TERM_REQUEST = hexbytes("""
    00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
    00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
    00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
    00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
    00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66
""")
SHORT_TERM_KEY = b"VOkJxbRl1RmTxUk/WvJxBt"


def test_rfc5769_sample_request() -> None:
    decoded = stun.decode(SAMPLE_REQUEST)
    assert decoded.message.message_method == Method.BINDING
    assert decoded.message.message_class == Class.REQUEST
    assert decoded.attributes["SOFTWARE"] == "STUN test client"
    assert decoded.attributes["USERNAME"] == "evtj:h6vY"
    assert decoded.fingerprinted
    # PRIORITY and ICE-CONTROLLED are ICE's, not ours: reported as unknown only when comprehension-required.
    assert decoded.unknown == [0x0024]
    assert stun.check_integrity(decoded, SHORT_TERM_KEY)
    assert not stun.check_integrity(decoded, b"wrong")


@pytest.mark.parametrize(
    ("vector", "mapped"),
    [
        (SAMPLE_IPV4_RESPONSE, ("192.0.2.1", 32853)),
        (SAMPLE_IPV6_RESPONSE, ("2001:db8:1234:5678:11:2233:4455:6677", 32853)),
    ],
)
def test_rfc5769_sample_responses(vector: bytes, mapped: tuple[str, int]) -> None:
    decoded = stun.decode(vector)
    assert decoded.message.message_class == Class.RESPONSE
    assert decoded.attributes["XOR-MAPPED-ADDRESS"] == mapped
    assert decoded.attributes["SOFTWARE"] == "test vector"
    assert decoded.fingerprinted
    assert stun.check_integrity(decoded, SHORT_TERM_KEY)


def test_rfc5769_responses_reencode_identically() -> None:
    """Our encoder (aioice's, with the key) produces the vector byte for byte, padding aside."""
    decoded = stun.decode(SAMPLE_IPV4_RESPONSE)
    message = Message(Method.BINDING, Class.RESPONSE, decoded.message.transaction_id, {
        "SOFTWARE": "test vector", "XOR-MAPPED-ADDRESS": ("192.0.2.1", 32853),
    })
    encoded = stun.encode(message, SHORT_TERM_KEY)
    # The vector pads SOFTWARE with a space where aioice pads with zero; both are valid (RFC 8489 §14).
    assert encoded == SAMPLE_IPV4_RESPONSE[:35] + b"\x00" + SAMPLE_IPV4_RESPONSE[36:48] + encoded[48:]
    assert stun.check_integrity(stun.decode(encoded), SHORT_TERM_KEY)


def test_rfc5769_long_term_request() -> None:
    decoded = stun.decode(SAMPLE_LONG_TERM_REQUEST)
    username = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
    assert decoded.attributes["USERNAME"] == username
    assert decoded.attributes["NONCE"] == b"f//499k954d6OL34oL9FSTvy64sA"
    assert decoded.attributes["REALM"] == "example.org"
    # The password "The<U+00AD>M<U+00AA>tr<U+2168>" after SASLprep is "TheMatrIX".
    key = hashlib.md5(f"{username}:example.org:TheMatrIX".encode()).digest()
    assert stun.check_integrity(decoded, key)
    assert not decoded.fingerprinted


def test_bad_fingerprint_is_rejected() -> None:
    corrupted = SAMPLE_REQUEST[:-1] + bytes([SAMPLE_REQUEST[-1] ^ 1])
    with pytest.raises(ValueError, match="FINGERPRINT"):
        stun.decode(corrupted)


def test_tampered_message_fails_integrity() -> None:
    tampered = bytearray(SAMPLE_LONG_TERM_REQUEST)
    tampered[-30] ^= 0x01  # inside REALM
    decoded = stun.decode(bytes(tampered))
    key = hashlib.md5("\u30de\u30c8\u30ea\u30c3\u30af\u30b9:example.org:TheMatrIX".encode()).digest()
    assert not stun.check_integrity(decoded, key)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "not a STUN"),
        (SAMPLE_REQUEST[:19], "not a STUN"),
        (b"\x80" + SAMPLE_REQUEST[1:], "not a STUN"),  # leading bits must be 00
        (SAMPLE_REQUEST[:4] + b"\x21\x12\xa4\x43" + SAMPLE_REQUEST[8:], "not a STUN"),  # magic cookie
        (SAMPLE_REQUEST + b"\x00\x00\x00\x00", "length"),
        (SAMPLE_REQUEST[:2] + b"\x00\x57" + SAMPLE_REQUEST[4:], "length"),  # not a multiple of 4
        (b"\x00\x01\x00\x04" + SAMPLE_REQUEST[4:20] + b"\x00\x06\x00\x09", "overruns"),
        (b"\x0f\xff\x00\x00" + SAMPLE_REQUEST[4:20], "method"),
    ],
)
def test_malformed_messages_raise_value_error(data: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        stun.decode(data)


def raw_message(method: int, attributes: list[tuple[int, bytes]], transaction_id: bytes = b"T" * 12) -> bytes:
    body = b"".join(struct.pack("!HH", kind, len(value)) + value + b"\x00" * (-len(value) % 4)
                    for kind, value in attributes)
    return struct.pack("!HHI12s", method, len(body), 0x2112A442, transaction_id) + body


def test_unknown_comprehension_required_attributes_are_reported_once() -> None:
    data = raw_message(0x0003, [(0x0019, b"\x11\x00\x00\x00"), (0x7001, b"x"), (0xC001, b"y"), (0x7001, b"z")])
    decoded = stun.decode(data)
    assert decoded.unknown == [0x7001]  # 0xC001 is comprehension-optional: ignored
    assert decoded.attributes["REQUESTED-TRANSPORT"] == 0x11000000


def test_change_request_is_unknown_to_a_relay() -> None:
    """aioice can decode CHANGE-REQUEST (RFC 5780), but this server does not do it: 420."""
    decoded = stun.decode(raw_message(0x0001, [(0x0003, b"\x00\x00\x00\x06")]))
    assert decoded.unknown == [0x0003]


def test_first_instance_wins_and_every_peer_is_kept() -> None:
    tid = b"P" * 12
    first = indications.xor_peer_address(("10.0.0.1", 1000), tid)
    second = indications.xor_peer_address(("10.0.0.2", 2000), tid)
    data = raw_message(0x0008, [(0x000D, b"\x00\x00\x00\x01"), (0x000D, b"\x00\x00\x00\x02")], tid)
    data = data[:2] + (len(data) - 20 + len(first) + len(second)).to_bytes(2, "big") + data[4:] + first + second
    decoded = stun.decode(data)
    assert decoded.attributes["LIFETIME"] == 1
    assert decoded.peers == [("10.0.0.1", 1000), ("10.0.0.2", 2000)]
    assert decoded.attributes["XOR-PEER-ADDRESS"] == ("10.0.0.1", 1000)


def test_malformed_values_are_reported_not_raised() -> None:
    data = raw_message(0x0003, [(0x0019, b"\x11"), (0x0012, b"\x00\x07\x00\x01"), (0x0006, b"\xff\xfe")])
    decoded = stun.decode(data)
    assert decoded.invalid == [0x0019, 0x0012, 0x0006]
    assert decoded.peers == []


def test_attributes_after_message_integrity_are_ignored_except_fingerprint() -> None:
    unsigned = raw_message(0x0001, [(0x0006, b"user")])
    mac = message_integrity(unsigned, b"key")
    # LIFETIME after MESSAGE-INTEGRITY is not covered by it, so it is not taken into account.
    data = raw_message(0x0001, [(0x0006, b"user"), (0x0008, mac), (0x000D, b"\x00\x00\x00\x63")])
    with_fingerprint = data[:2] + (len(data) - 12).to_bytes(2, "big") + data[4:]
    data = with_fingerprint + struct.pack("!HHI", 0x8028, 4, message_fingerprint(data))
    decoded = stun.decode(data)
    assert "LIFETIME" not in decoded.attributes
    assert stun.check_integrity(decoded, b"key")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REQUESTED-ADDRESS-FAMILY", stun.IPV6),
        ("ADDITIONAL-ADDRESS-FAMILY", stun.IPV6),
        ("EVEN-PORT", True),
        ("EVEN-PORT", False),
        ("DONT-FRAGMENT", None),
        ("RESERVATION-TOKEN", b"12345678"),
        ("UNKNOWN-ATTRIBUTES", [0x7001, 0x0003, 0x0024]),
        ("ADDRESS-ERROR-CODE", (stun.IPV6, 440, "Address Family not Supported")),
    ],
)
def test_turn_attributes_roundtrip(name: str, value: object) -> None:
    message = Message(Method.ALLOCATE, Class.RESPONSE, attributes={name: value})
    encoded = stun.encode(message)
    assert stun.decode(encoded).attributes[name] == value
    assert name not in parse_message(encoded).attributes  # they live in our table: aioice's stays as it ships


def test_encode_matches_aioice_and_leaves_the_message_alone() -> None:
    """Where aioice knows every attribute, our encoder writes its bytes; the message is not changed."""
    attributes = {"USERNAME": "u", "XOR-MAPPED-ADDRESS": ("2001:db8::7", 40001), "LIFETIME": 600}
    message = Message(Method.ALLOCATE, Class.RESPONSE, attributes=dict(attributes))
    reference = Message(Method.ALLOCATE, Class.RESPONSE, message.transaction_id, dict(attributes))
    reference.add_message_integrity(b"key")
    assert stun.encode(message, b"key") == bytes(reference)
    assert message.attributes == attributes
    reference = Message(Method.ALLOCATE, Class.RESPONSE, message.transaction_id, dict(attributes))
    reference.add_fingerprint()
    assert stun.encode(message) == bytes(reference)
    assert stun.encode(message, fingerprint=False) == bytes(Message(Method.ALLOCATE, Class.RESPONSE,
                                                                      message.transaction_id, dict(attributes)))


def test_error_response_has_reason() -> None:
    request = Message(Method.ALLOCATE, Class.REQUEST)
    decoded = stun.decode(stun.encode(stun.error(request, 486, SOFTWARE="x")))
    assert decoded.attributes["ERROR-CODE"] == (486, "Allocation Quota Reached")
    assert decoded.message.message_class == Class.ERROR
    assert decoded.message.transaction_id == request.transaction_id


@pytest.mark.parametrize("peer", [("192.0.2.7", 40000), ("2001:db8::7", 40001)])
@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 160])
def test_data_indication_matches_aioice_encoding(peer: tuple[str, int], size: int) -> None:
    data = bytes(range(size))
    encoded = indications.data_indication(peer, data)
    decoded = stun.decode(encoded)
    reference = Message(Method.DATA, Class.INDICATION, decoded.message.transaction_id,
                        {"XOR-PEER-ADDRESS": peer, "DATA": data})
    assert encoded == bytes(reference)
    assert decoded.peers == [peer]


def test_channel_data() -> None:
    frame = channel_data(0x4001, b"abcde")
    assert frame == b"\x40\x01\x00\x05abcde"
    assert channel_data(0x4001, b"abcde", padded=True) == frame + b"\x00\x00\x00"
    assert is_channel_data(frame)
    assert parse_channel_data(frame + b"\x00\x00\x00") == (0x4001, b"abcde")
    with pytest.raises(ValueError):
        parse_channel_data(frame[:-1])
    assert not is_channel_data(SAMPLE_REQUEST)


def test_stream_framer_splits_and_joins() -> None:
    frames = [channel_data(0x4000, b"x" * n, padded=True) for n in (0, 1, 2, 3, 4, 5)] + [SAMPLE_REQUEST]
    stream = b"".join(frames)
    for chunk in (1, 3, 7, len(stream)):
        framer = StreamFramer()
        out: list[bytes] = []
        for i in range(0, len(stream), chunk):
            out += framer.feed(stream[i : i + chunk])
        assert out == frames


def test_stream_framer_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        StreamFramer().feed(b"\xc0\x00\x00\x00")


def send_indication(attributes: dict[str, object]) -> bytes:
    return stun.encode(Message(Method.SEND, Class.INDICATION, attributes=attributes), fingerprint=False)


@pytest.mark.parametrize("size", [0, 1, 3, 4, 160])
def test_send_indication_fast_path_agrees_with_decode(size: int) -> None:
    payload = bytes(range(size))
    data = send_indication({"XOR-PEER-ADDRESS": ("192.0.2.9", 3479), "DATA": payload, "SOFTWARE": "x"})
    assert indications.parse_send_indication(data) == (("192.0.2.9", 3479), payload)
    message = Message(Method.SEND, Class.INDICATION, attributes={"XOR-PEER-ADDRESS": ("192.0.2.9", 3479),
                                                                  "DATA": payload})
    with_fingerprint = stun.encode(message)
    assert indications.parse_send_indication(with_fingerprint) == (("192.0.2.9", 3479), payload)
    assert indications.parse_send_indication(with_fingerprint[:-1] + bytes([with_fingerprint[-1] ^ 1])) is None


@pytest.mark.parametrize(
    "attributes",
    [
        {"XOR-PEER-ADDRESS": ("192.0.2.9", 1), "DATA": b"x", "DONT-FRAGMENT": None},  # the handler decides
        {"XOR-PEER-ADDRESS": ("2001:db8::9", 1), "DATA": b"x"},  # IPv6 goes the general way
        {"XOR-PEER-ADDRESS": ("192.0.2.9", 1)},  # no DATA
        {"DATA": b"x"},  # no peer
        {"XOR-PEER-ADDRESS": ("192.0.2.9", 1), "DATA": b"x", "LIFETIME": 5},  # comprehension-required extra
    ],
)
def test_send_indication_fast_path_leaves_the_rest_to_decode(attributes: dict[str, object]) -> None:
    assert indications.parse_send_indication(send_indication(attributes)) is None


def test_fast_path_rejects_other_messages() -> None:
    assert indications.parse_send_indication(SAMPLE_REQUEST) is None
    data = send_indication({"XOR-PEER-ADDRESS": ("192.0.2.9", 1), "DATA": b"x"})
    assert indications.parse_send_indication(data[:-1]) is None
    assert indications.parse_send_indication(data + b"\x00\x00\x00\x00") is None
