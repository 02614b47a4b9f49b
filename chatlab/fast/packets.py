"""Socket.IO packets encoded and decoded with less work, the same bytes.

python-socketio's packet class encodes with ``json.dumps(data,
separators=...)`` and decodes with engineio's ``json.loads(...,
parse_int=...)``: because of those arguments, the standard library builds a
new encoder or decoder for every packet. Before encoding, it also walks the
data for bytes, through a list and a ``functools.reduce`` at every level.
In a busy chat those were several percent of what each message cost
(docs/benchmarks.md). :class:`ChatPacket` is the same packet with:

- one encoder and one decoder, made once;
- no walk when the data is JSON already (JSON holds no bytes): it is
  encoded as the packet is made, and only data JSON refuses is walked;
- the packets clients send most (``2[...]``, ``21[...]``) read with one
  match instead of the general parse.

It is passed to ``AsyncServer`` as its ``serializer``, the library's own
seam for a packet class.
"""

from __future__ import annotations

import json
import re
from typing import Any

from engineio import json as engineio_json
from socketio import packet

__all__ = ["ChatPacket"]


def _int_of(digits: str) -> int:
    # engineio's guard, kept: a number of more than 100 digits is refused,
    # not parsed (int() of a long one takes quadratic time).
    if len(digits) > 100:
        raise ValueError("Integer is too large")
    return int(digits)


_decode = json.JSONDecoder(parse_int=_int_of).decode
_encoder = json.JSONEncoder(separators=(",", ":"))
_markers: dict[int, Any] = {}  # what is being encoded, to refuse a circular reference
# JSONEncoder.encode() builds the C encoder again for each call, which cost
# more than the encoding itself; this one is built once.
_encode_to_parts = json.encoder.c_make_encoder and json.encoder.c_make_encoder(
    _markers, _encoder.default, json.encoder.encode_basestring_ascii, None,
    ":", ",", False, False, True)


def _encode(data: Any) -> str:
    if _encode_to_parts is None:  # a Python without the json module's C part
        return _encoder.encode(data)
    try:
        return "".join(_encode_to_parts(data, 0))
    except BaseException:
        _markers.clear()  # left half-done by the error
        raise


class _Json:
    """What a packet class (and python-socketio's managers, through it)
    takes from its ``json``: the packets' own calls go to the coders made
    once, any other to engineio's ``json`` as before."""

    @staticmethod
    def loads(text: Any, **kwargs: Any) -> Any:
        if kwargs or not isinstance(text, str):
            return engineio_json.loads(text, **kwargs)
        return _decode(text)

    @staticmethod
    def dumps(data: Any, **kwargs: Any) -> str:
        if kwargs != {"separators": (",", ":")}:
            return engineio_json.dumps(data, **kwargs)
        return _encode(data)


# The packets a client sends most: an event or acknowledgement on the main
# namespace, perhaps with an id, then the JSON ("2[...]", "21[...]").
_PLAIN = re.compile(r"([23])(\d{0,99})\[")


class ChatPacket(packet.Packet):
    """python-socketio's ``Packet``, cheaper to encode and decode."""

    json = _Json

    def __init__(self, packet_type: int = packet.EVENT, data: Any = None,
                 namespace: str | None = None, id: int | None = None,
                 binary: bool | None = None, encoded_packet: Any = None) -> None:
        # Data that JSON can encode holds no bytes: encoded here, there is
        # nothing to look for, and encode() has its text ready.
        self._json_data: str | None = None
        if binary is None and data is not None and encoded_packet is None:
            try:
                self._json_data = _encode(data)
            except (TypeError, ValueError):
                pass  # bytes, or what JSON refuses: python-socketio's walk, and encode() says which
            else:
                binary = False
        super().__init__(packet_type, data, namespace, id, binary, encoded_packet)

    def encode(self) -> Any:
        if self._json_data is None or self.packet_type not in (packet.EVENT, packet.ACK):
            return super().encode()
        encoded = str(self.packet_type)
        if self.namespace is not None and self.namespace != "/":
            encoded += self.namespace + ","
        if self.id is not None:
            encoded += str(self.id)
        return encoded + self._json_data

    def decode(self, encoded_packet: Any) -> int:
        plain = _PLAIN.match(encoded_packet) if isinstance(encoded_packet, str) else None
        if plain is None:
            return super().decode(encoded_packet)
        kind, id = plain.groups()
        self.packet_type = int(kind)
        self.namespace = None
        if id:
            self.id = int(id)
        self.data = _decode(encoded_packet[plain.end() - 1:])
        return 0
