"""chatlab.fast.direct_writes.frame_of: the websocket frame a server writes
for an Engine.IO packet (RFC 6455, section 5.2), read back here by hand."""

from __future__ import annotations

import struct

import pytest
from engineio import packet as eio_packet

from chatlab.fast.direct_writes import frame_of

pytestmark = pytest.mark.unit


TEXT, BINARY = 0x1, 0x2
# (payload bytes, header bytes) where the length field changes size: 7 bits
# up to 125, then 126 and 16 bits up to 65535, then 127 and 64 bits.
BOUNDARIES = [pytest.param(size, header, id=f"{size}-bytes")
              for size, header in [(0, 2), (1, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)]]


def read_frame(frame: bytes) -> tuple[bool, int, int, bytes]:
    """(FIN, opcode, header length, payload) of one whole unmasked frame."""
    first, second = frame[0], frame[1]
    assert first & 0x70 == 0, "no extension bits (no compression)"
    assert second & 0x80 == 0, "a server's frames are not masked"
    size, header = second & 0x7F, 2
    if size == 126:
        (size,), header = struct.unpack("!H", frame[2:4]), 4
        assert size >= 126, "the shortest length encoding"
    elif size == 127:
        (size,), header = struct.unpack("!Q", frame[2:10]), 10
        assert size >= 65536, "the shortest length encoding"
    payload = frame[header:]
    assert len(payload) == size, "the frame is the header and exactly its payload"
    return bool(first & 0x80), first & 0x0F, header, payload


def text_packet(payload_size: int) -> eio_packet.Packet:
    # Encoded as "4" (MESSAGE) and the data.
    return eio_packet.Packet(eio_packet.MESSAGE, data="x" * (payload_size - 1))


@pytest.mark.parametrize("size,header", BOUNDARIES[1:])  # a text packet is "4" at least
def test_a_text_packet_is_one_final_text_frame(size, header):
    pkt = text_packet(size)
    fin, opcode, header_size, payload = read_frame(frame_of(pkt))
    assert (fin, opcode, header_size) == (True, TEXT, header)
    assert payload == pkt.encode().encode() and len(payload) == size


@pytest.mark.parametrize("size,header", BOUNDARIES)
def test_a_binary_packet_is_one_final_binary_frame(size, header):
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    pkt = eio_packet.Packet(eio_packet.MESSAGE, data=data)
    fin, opcode, header_size, payload = read_frame(frame_of(pkt))
    assert (fin, opcode, header_size) == (True, BINARY, header)
    assert payload == data


def test_the_length_is_in_bytes_not_characters():
    # "4" and 31 four-byte characters: 32 characters, 125 bytes; one more
    # byte and the 16-bit length is needed.
    emoji = "\U0001f600"
    fits = eio_packet.Packet(eio_packet.MESSAGE, data=emoji * 31)
    over = eio_packet.Packet(eio_packet.MESSAGE, data=emoji * 31 + "!")
    assert read_frame(frame_of(fits))[2:] == (2, ("4" + emoji * 31).encode())
    assert read_frame(frame_of(over))[2:] == (4, ("4" + emoji * 31 + "!").encode())


def test_a_packet_with_json_data_carries_its_encoding():
    pkt = eio_packet.Packet(eio_packet.MESSAGE, data=["message", {"a": 1}])
    assert read_frame(frame_of(pkt))[3] == b'4["message",{"a":1}]'


def test_exact_bytes_of_a_short_frame():
    pkt = eio_packet.Packet(eio_packet.MESSAGE, data='2["users",[]]')
    assert frame_of(pkt) == b"\x81\x0e" + b'42["users",[]]'


def test_the_frame_is_built_once_per_packet():
    pkt, other = text_packet(200), text_packet(200)
    frame = frame_of(pkt)
    assert frame_of(pkt) is frame, "a broadcast frames its packet once"
    assert frame_of(other) == frame and frame_of(other) is not frame, "a new packet, a new frame"


def test_packets_taken_in_turn_each_get_their_own_frame():
    small = eio_packet.Packet(eio_packet.MESSAGE, data="small")
    large = eio_packet.Packet(eio_packet.MESSAGE, data=b"\x00" * 70_000)
    for _ in range(2):
        assert read_frame(frame_of(small))[1:] == (TEXT, 2, b"4small")
        assert read_frame(frame_of(large))[1:] == (BINARY, 10, b"\x00" * 70_000)
