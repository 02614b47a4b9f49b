"""chatlab.fast.packets: the fast server's packet class puts the same bytes
on the wire as python-socketio's, reads the same, and refuses the same."""

from __future__ import annotations

import json

import pytest
from socketio import packet

from chatlab import ChatServer
from chatlab.fast import FastPaths
from chatlab.fast.packets import ChatPacket

pytestmark = pytest.mark.unit

DATA = [
    ["message", {"message": "hello", "user": "ann", "id": "abc", "offset": 12}],
    ["message", "h\u00e9llo \"quoted\" \\ \n\t \U0001f600 \u2028 \x00"],
    ["numbers", 0, -1, 2**63, 1.5, 1e300, float("nan"), float("inf"), True, False, None],
    ["nested", {"a": [1, {"b": [[], {}, ""]}]}, [{"c": None}]],
    ["empty"],
    ["with bytes", b"\x00\x01", {"deep": [1, bytearray(b"x")]}],
    ["bytes deep down", {"a": [{"b": [b"z"]}]}],
]


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("kind", [packet.EVENT, packet.ACK])
@pytest.mark.parametrize("namespace,id", [("/", None), ("/chat", 7)])
def test_packets_encode_and_decode_as_python_socketio_s(data, kind, namespace, id):
    ours = ChatPacket(kind, data=data, namespace=namespace, id=id)
    theirs = packet.Packet(kind, data=data, namespace=namespace, id=id)
    assert ours.packet_type == theirs.packet_type  # binary or not alike
    encoded = ours.encode()
    assert encoded == theirs.encode()
    first = encoded[0] if isinstance(encoded, list) else encoded
    read, expected = ChatPacket(encoded_packet=first), packet.Packet(encoded_packet=first)
    assert (read.packet_type, read.namespace, read.id) == (
        expected.packet_type, expected.namespace, expected.id)
    assert json.dumps(read.data) == json.dumps(expected.data)  # (NaN != NaN)


ENCODED = [
    '2["message","hi"]', '21["message","hi"]', '3' + '7' * 99 + '["a"]', '2' + '7' * 100 + '["a"]',
    '2/chat,["a"]', '2/chat,5["a"]', '2/chat?x=1,["a"]', '3/chat,12[]', '21-["a"]', '51-["a",{}]',
    '2\u0661["a"]', '2\u00b2["a"]', '2[', '2', '0', '0{"token":"x"}', '1', '4{"message":"no"}',
    '2 ["a"]', '2["a"] ', '2[1e5, -0, 12345678901234567890]', '22["a",' + '9' * 100 + ']',
]


@pytest.mark.parametrize("encoded", ENCODED)
def test_what_a_client_sends_is_read_as_python_socketio_reads_it(encoded):
    def read(cls):
        try:
            got = cls(encoded_packet=encoded)
        except Exception as exc:  # noqa: BLE001 - which error, compared
            return type(exc)
        return (got.packet_type, got.namespace, got.id, json.dumps(got.data),
                got.attachment_count)

    assert read(ChatPacket) == read(packet.Packet)


def test_a_number_of_over_100_digits_is_refused_as_engineio_refuses_it():
    assert ChatPacket(encoded_packet='2["n",' + "9" * 100 + "]").data == ["n", int("9" * 100)]
    with pytest.raises(ValueError, match="too large"):
        ChatPacket(encoded_packet='2["n",' + "9" * 101 + "]")


def test_what_cannot_be_encoded_is_refused_and_leaves_the_encoder_working():
    data = ["x", {"a": object()}]
    for _ in range(2):
        with pytest.raises(TypeError, match="not JSON serializable"):
            ChatPacket(packet.EVENT, data=data).encode()
    # The same list, mended: not taken for a circular reference.
    data[1] = {"a": [1]}
    assert ChatPacket(packet.EVENT, data=data).encode() == '2["x",{"a":[1]}]'


def test_other_callers_of_its_json_get_engineio_s():
    """python-socketio's managers encode and decode with the packet class's
    json (a cluster's Redis messages): as before, bytes included."""
    data = {"method": "emit", "data": ["m", {"a": 1}]}
    assert ChatPacket.json.dumps(data) == json.dumps(data)
    assert ChatPacket.json.loads(json.dumps(data).encode()) == data
    assert ChatPacket.json.loads(json.dumps(data)) == data


def test_the_fast_server_uses_it_unless_told_not_to():
    assert ChatServer(fast=True).sio.packet_class is ChatPacket
    assert ChatServer(fast=FastPaths(packets=False)).sio.packet_class is packet.Packet
    assert ChatServer().sio.packet_class is packet.Packet
