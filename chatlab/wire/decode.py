"""Decode Engine.IO and Socket.IO packets as they travel on the wire.

Pure functions, no sockets: they read what a :class:`~chatlab.wire.WireTap`
recorded (a long-poll body or one websocket frame) and say what each packet
is, with a one-line meaning a learner can read. They follow the Engine.IO
protocol version 4 and the Socket.IO protocol version 5, the versions that
python-socketio 5 and the JavaScript client 4 speak.

An Engine.IO packet is one character for its type and then its data::

    0{"sid":"…","upgrades":["websocket"],"pingInterval":25000,…}   open
    2   ping        3   pong        2probe / 3probe / 5   the upgrade dance
    4…  message: a Socket.IO packet follows

A Socket.IO packet (the data of an Engine.IO message) is its type, then the
number of binary attachments and ``-`` (binary packets only), the namespace
and ``,`` (when not ``/``), the ack id, and JSON::

    42["message","hi"]          EVENT on /
    421["adduser","ann"]        EVENT asking for an acknowledgement, id 1
    431[{"ok":true}]            ACK answering id 1
    451-/files,["up",{"_placeholder":true,"num":0}]   BINARY_EVENT on /files

Long polling joins several Engine.IO packets in one HTTP body, separated by
the record separator ``\\x1e``; binary data there is base64, after a ``b``.
Over a websocket each frame is one packet, and a binary attachment is a
binary frame of its own.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EIO_TYPES",
    "RECORD_SEPARATOR",
    "SIO_TYPES",
    "Decoded",
    "decode_packet",
    "decode_payload",
    "split_payload",
]

RECORD_SEPARATOR = "\x1e"

EIO_TYPES = {"0": "open", "1": "close", "2": "ping", "3": "pong",
             "4": "message", "5": "upgrade", "6": "noop"}
SIO_TYPES = {"0": "CONNECT", "1": "DISCONNECT", "2": "EVENT", "3": "ACK",
             "4": "CONNECT_ERROR", "5": "BINARY_EVENT", "6": "BINARY_ACK"}

# How much of an argument a meaning shows.
SHOWN_CHARS = 60

CLIENT_TO_SERVER = "client→server"
SERVER_TO_CLIENT = "server→client"


@dataclass(frozen=True)
class Decoded:
    """One Engine.IO packet, and the Socket.IO packet inside it if any.

    :param raw: the packet as it travelled (text, or bytes for a binary frame).
    :param eio_type: ``open``, ``close``, ``ping``, ``pong``, ``message``,
        ``upgrade``, ``noop``, ``binary`` (an attachment) or ``invalid``.
    :param eio_data: the Engine.IO data: the open packet's dict, ``"probe"``
        for the upgrade's ping and pong, the message's text.
    :param sio_type: ``CONNECT``, ``DISCONNECT``, ``EVENT``, ``ACK``,
        ``CONNECT_ERROR``, ``BINARY_EVENT`` or ``BINARY_ACK``; None when the
        packet is not a message.
    :param namespace: the Socket.IO namespace (``/`` when not written).
    :param ack_id: the acknowledgement id of an event asking for one, or of
        the ack answering it.
    :param event: an event's name.
    :param args: an event's arguments, an ack's values, a connect's or a
        connect error's data; binary parts stay placeholders here.
    :param attachments: how many binary attachments follow the packet.
    :param meaning: one line saying what the packet does.
    :param error: why the packet could not be decoded, or None.
    """

    raw: str | bytes
    eio_type: str
    eio_data: Any = None
    sio_type: str | None = None
    namespace: str | None = None
    ack_id: int | None = None
    event: str | None = None
    args: list[Any] = field(default_factory=list)
    attachments: int = 0
    meaning: str = ""
    error: str | None = None

    @property
    def is_ping(self) -> bool:
        """A heartbeat ping or pong (not the upgrade's probes)."""
        return self.eio_type in ("ping", "pong") and self.eio_data != "probe"


def split_payload(body: str) -> list[str]:
    """The Engine.IO packets of a long-poll body (split on ``\\x1e``)."""
    return body.split(RECORD_SEPARATOR) if body else []


def decode_payload(body: str | bytes, direction: str | None = None) -> list[Decoded]:
    """Every packet of a long-poll body (or of one websocket frame, when
    ``body`` is bytes: a binary frame is one packet)."""
    if isinstance(body, (bytes, bytearray)):
        return [decode_packet(bytes(body), direction)]
    return [decode_packet(packet, direction) for packet in split_payload(body)]


def decode_packet(packet: str | bytes, direction: str | None = None) -> Decoded:
    """Decode one Engine.IO packet.

    :param packet: the packet's text, or the bytes of a binary websocket frame.
    :param direction: ``"client→server"`` or ``"server→client"``, when
        known: it makes the meaning say who asks and who answers.
    """
    if isinstance(packet, (bytes, bytearray)):
        return Decoded(bytes(packet), "binary",
                       meaning=f"binary attachment: {_size(len(packet))}")
    if not packet:
        return _invalid(packet, "an empty packet")
    if packet[0] == "b":
        try:
            data = base64.b64decode(packet[1:], validate=True)
        except (binascii.Error, ValueError):
            return _invalid(packet, "a binary packet whose base64 is broken")
        return Decoded(packet, "binary",
                       meaning=f"binary attachment (base64 in a long poll): {_size(len(data))}")
    kind = EIO_TYPES.get(packet[0])
    data = packet[1:]
    if kind is None:
        return _invalid(packet, f"unknown Engine.IO packet type {packet[0]!r}")
    if kind == "open":
        return _open(packet, data)
    if kind == "message":
        return _message(packet, data, direction)
    return Decoded(packet, kind, data or None, meaning=_engine_meaning(kind, data, direction))


def _open(packet: str, data: str) -> Decoded:
    try:
        info = json.loads(data)
    except ValueError:
        return _invalid(packet, "an open packet whose data is not JSON")
    if not isinstance(info, dict):
        return _invalid(packet, "an open packet whose data is not an object")
    upgrades = info.get("upgrades") or []
    meaning = (f"open: Engine.IO connection {info.get('sid')}; "
               f"can upgrade to {', '.join(map(str, upgrades)) or 'nothing'}; "
               f"ping every {info.get('pingInterval')} ms, "
               f"closed after {info.get('pingTimeout')} ms more without pong; "
               f"packets up to {info.get('maxPayload')} bytes")
    return Decoded(packet, "open", info, meaning=meaning)


def _engine_meaning(kind: str, data: str, direction: str | None) -> str:
    if kind == "ping" and data == "probe":
        return "ping probe: the client tests the new websocket before moving to it"
    if kind == "pong" and data == "probe":
        return "pong probe: the websocket works; the client may upgrade"
    if kind == "ping":
        return "ping: the server checks that the client is still there"
    if kind == "pong":
        return "pong: the client answers the ping"
    if kind == "upgrade":
        return "upgrade: from now on this connection uses the websocket"
    if kind == "noop":
        return "noop: does nothing; in the upgrade it ends the pending long poll"
    if kind == "close":
        who = {CLIENT_TO_SERVER: "the client", SERVER_TO_CLIENT: "the server"}.get(
            direction or "", "one side")
        return f"close: {who} ends the Engine.IO connection"
    return kind


def _message(packet: str, data: str, direction: str | None) -> Decoded:
    if not data:
        return _invalid(packet, "a message with no Socket.IO packet")
    sio_type = SIO_TYPES.get(data[0])
    if sio_type is None:
        return _invalid(packet, f"unknown Socket.IO packet type {data[0]!r}")
    rest = data[1:]
    attachments = 0
    if sio_type in ("BINARY_EVENT", "BINARY_ACK"):
        count, dash, after = rest.partition("-")
        if not dash or not count.isdigit():
            return _invalid(packet, "a binary packet without its attachment count")
        attachments, rest = int(count), after
    namespace = "/"
    if rest.startswith("/"):
        namespace, comma, after = rest.partition(",")
        rest = after if comma else ""
    digits = len(rest) - len(rest.lstrip("0123456789"))
    ack_id = int(rest[:digits]) if digits else None
    rest = rest[digits:]
    try:
        payload = json.loads(rest) if rest else None
    except ValueError:
        return _invalid(packet, f"a {sio_type} packet whose data is not JSON")
    event = None
    args: list[Any]
    if sio_type in ("EVENT", "BINARY_EVENT"):
        if not isinstance(payload, list) or not payload or not isinstance(payload[0], str):
            return _invalid(packet, f"a {sio_type} packet without an event name")
        event, args = payload[0], payload[1:]
    elif sio_type in ("ACK", "BINARY_ACK"):
        args = payload if isinstance(payload, list) else [payload]
    else:
        args = [] if payload is None else [payload]
    decoded = Decoded(packet, "message", data, sio_type, namespace, ack_id, event, args,
                      attachments)
    return Decoded(**{**decoded.__dict__, "meaning": _socket_meaning(decoded, direction)})


def _socket_meaning(p: Decoded, direction: str | None) -> str:
    on = f"on {p.namespace}"
    from_client = direction == CLIENT_TO_SERVER
    from_server = direction == SERVER_TO_CLIENT
    data = p.args[0] if p.args else None
    if p.sio_type == "CONNECT":
        if from_server and isinstance(data, dict) and "sid" in data:
            return f"CONNECT {on}: the server accepts; this socket's id is {data['sid']}"
        auth = f" with auth {_short(data)}" if data is not None else ""
        return f"CONNECT {on}: the client asks to join the namespace{auth}"
    if p.sio_type == "DISCONNECT":
        who = "the client leaves" if from_client else "the server sends the client away" \
            if from_server else "leave"
        return f"DISCONNECT {on}: {who}"
    if p.sio_type == "CONNECT_ERROR":
        message = data.get("message") if isinstance(data, dict) else data
        return f"CONNECT_ERROR {on}: the server refuses: {_short(message)}"
    arguments = ", ".join(_short(arg) for arg in p.args)
    binary = ""
    if p.attachments == 1:
        binary = "; 1 binary attachment follows"
    elif p.sio_type.startswith("BINARY"):
        binary = f"; {p.attachments} binary attachments follow"
    if p.event is not None:
        ack = f"; asks for ack {p.ack_id}" if p.ack_id is not None else ""
        return f"{p.sio_type} {_short(p.event)} {on} ({arguments}){ack}{binary}"
    return f"{p.sio_type} {p.ack_id} {on}: answers with ({arguments}){binary}"


def _short(value: Any) -> str:
    if isinstance(value, dict) and value.get("_placeholder") is True and "num" in value:
        return f"<binary attachment {value['num']}>"
    if isinstance(value, list):
        text = "[" + ", ".join(_short(item) for item in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{_short(k)}: {_short(v)}" for k, v in value.items()) + "}"
    else:
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 1] + "…"


def _size(count: int) -> str:
    return f"{count} byte{'s' if count != 1 else ''}"


def _invalid(packet: str | bytes, why: str) -> Decoded:
    return Decoded(packet, "invalid", meaning=f"not a valid packet: {why}", error=why)
