"""Socket.IO packets encoded and decoded with JSON coders made once.

python-socketio's packet class encodes with ``json.dumps(data,
separators=...)`` and decodes with engineio's ``json.loads(...,
parse_int=...)``: because of those arguments, the standard library builds a
new encoder or decoder for every packet. Before encoding, it also walks the
data for bytes through a list and a ``functools.reduce`` at every level. In
a busy chat those were a few percent of what each message cost
(docs/benchmarks.md). :class:`ChatPacket` is the same packet with one
encoder and one decoder made once, and a walk that stops at the first
bytes. It is passed to ``AsyncServer`` as its ``serializer``, the library's
own seam for a packet class; the bytes on the wire are the same.
"""

from __future__ import annotations

import json
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


def _has_bytes(data: Any) -> bool:
    if isinstance(data, (bytes, bytearray)):
        return True
    if isinstance(data, list):
        items = data
    elif isinstance(data, dict):
        items = data.values()
    else:
        return False
    for item in items:
        if isinstance(item, (str, int, float)):
            continue  # (the usual leaves: no call for them)
        if _has_bytes(item):
            return True
    return False


class ChatPacket(packet.Packet):
    """python-socketio's ``Packet``, cheaper to encode and decode."""

    json = _Json

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        return _has_bytes(data)
