"""The decoder, on traffic captured from real clients through the tap.

Once per run, real python-socketio clients talk to a real server through a
:class:`~chatlab.wire.WireTap`: one that upgrades from long polling to a
websocket (the probe dance), one on long polling only, one refused by a
namespace; the server pings every second. Every test then reads what the
decoder makes of that recorded traffic.
"""

from __future__ import annotations

from typing import Any

import pytest
import socketio

import chatlab
from chatlab import RecordingClient
from chatlab.wire import Record, decode_packet, tap
from chatlab.wire.decode import CLIENT_TO_SERVER, RECORD_SEPARATOR, SERVER_TO_CLIENT, Decoded

pytestmark = pytest.mark.unit

UPLOAD = bytes(range(5))
BLOB = b"\x00\xffwire"

_captured: list[Record] = []


def capture_server() -> socketio.AsyncServer:
    sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=1, ping_timeout=2)

    @sio.event
    async def echo(sid: str, *args: Any) -> tuple[Any, ...]:
        return args

    @sio.event
    async def upload(sid: str, data: bytes) -> bytes:
        return data[::-1]

    @sio.event
    async def burst(sid: str) -> str:
        for n in range(3):
            await sio.emit("tick", n, to=sid)
        return "done"

    @sio.on("hello", namespace="/chat")
    async def hello(sid: str, name: str) -> None:
        await sio.emit("greeting", f"hi {name}", to=sid, namespace="/chat")
        await sio.emit("blob", BLOB, to=sid, namespace="/chat")
        await sio.disconnect(sid, namespace="/chat")

    @sio.on("connect", namespace="/members")
    async def members_only(sid: str, environ: dict, auth: Any) -> None:
        raise socketio.exceptions.ConnectionRefusedError("members only")

    return sio


async def run_clients(url: str, wire: Any) -> None:
    upgrading = RecordingClient("upgrading")
    await upgrading.connect(url, namespaces=["/", "/chat"], auth={"token": "t"})
    await wire.wait_until(lambda: any(p.eio_type == "upgrade" for _, p in wire.packets()))
    assert await upgrading.call("echo", ("a", 1), timeout=5) == ("a", 1)
    assert await upgrading.call("upload", UPLOAD, timeout=5) == UPLOAD[::-1]
    await upgrading.emit("hello", "ann", namespace="/chat")
    await upgrading.wait_for("blob", namespace="/chat")
    await wire.wait_until(lambda: any(p.sio_type == "DISCONNECT" for _, p in wire.packets()))
    await wire.wait_until(lambda: any(p.eio_type == "pong" for _, p in wire.packets()))

    polling = RecordingClient("polling")
    await polling.connect(url, transports=["polling"])
    assert await polling.call("burst", timeout=5) == "done"
    assert await polling.call("upload", UPLOAD, timeout=5) == UPLOAD[::-1]
    await polling.disconnect()

    refused = RecordingClient("refused")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(url, namespaces=["/members"], transports=["websocket"])
    await upgrading.disconnect()


@pytest.fixture
async def captured() -> list[Record]:
    """The records of the run's one capture (made by the first test)."""
    if not _captured:
        server = await chatlab.serve(capture_server(), name="wire-capture")
        wire = await tap(server.url, name="wire-capture")
        try:
            await run_clients(wire.url, wire)
        finally:
            await chatlab.shutdown()
        assert not chatlab.wire.running_taps()
        _captured.extend(wire.records)
    return _captured


def packets(records: list[Record], **wanted: Any) -> list[tuple[Record, Decoded]]:
    """The captured packets whose fields have the wanted values."""
    found = []
    for record in records:
        for packet in record.packets():
            if all(getattr(packet, key) == value if key != "direction"
                   else record.direction == value for key, value in wanted.items()):
                found.append((record, packet))
    return found


def one(records: list[Record], **wanted: Any) -> Decoded:
    found = packets(records, **wanted)
    assert found, f"no captured packet with {wanted}"
    return found[0][1]


def test_every_captured_packet_decodes(captured: list[Record]) -> None:
    decoded = [packet for record in captured for packet in record.packets()]
    assert len(decoded) > 30
    assert [p for p in decoded if p.error] == []
    assert all(p.meaning for p in decoded)


def test_open_shows_sid_upgrades_and_timings(captured: list[Record]) -> None:
    record, opened = packets(captured, eio_type="open", direction=SERVER_TO_CLIENT)[0]
    info = opened.eio_data
    assert set(info) >= {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert record.transport == "polling" and record.connection == info["sid"]
    assert info["pingInterval"] == 1000 and info["upgrades"] == ["websocket"]
    assert f"Engine.IO connection {info['sid']}" in opened.meaning
    assert "ping every 1000 ms" in opened.meaning
    assert f"up to {info['maxPayload']} bytes" in opened.meaning


def test_the_upgrade_dance_in_order(captured: list[Record]) -> None:
    sid = packets(captured, eio_type="open")[0][0].connection
    steps = [(record.direction, record.transport, packet.eio_type, packet.eio_data)
             for record, packet in packets(captured) if record.connection == sid
             and packet.eio_type in ("ping", "pong", "upgrade", "noop")
             and not packet.is_ping]
    assert steps[:2] == [
        (CLIENT_TO_SERVER, "websocket", "ping", "probe"),
        (SERVER_TO_CLIENT, "websocket", "pong", "probe"),
    ]
    assert (CLIENT_TO_SERVER, "websocket", "upgrade", None) in steps
    assert any(step[2] == "noop" and step[0] == SERVER_TO_CLIENT for step in steps)
    assert "probe" in one(captured, eio_type="ping", eio_data="probe").meaning
    assert "websocket" in one(captured, eio_type="upgrade").meaning


def test_heartbeat_ping_from_server_pong_from_client(captured: list[Record]) -> None:
    ping = packets(captured, eio_type="ping", eio_data=None)
    pong = packets(captured, eio_type="pong", eio_data=None)
    assert ping and pong
    assert {record.direction for record, _ in ping} == {SERVER_TO_CLIENT}
    assert {record.direction for record, _ in pong} == {CLIENT_TO_SERVER}
    assert all(packet.is_ping for _, packet in ping + pong)
    assert not one(captured, eio_type="ping", eio_data="probe").is_ping


def test_connect_with_auth_and_the_servers_answer(captured: list[Record]) -> None:
    asked = one(captured, sio_type="CONNECT", namespace="/chat", direction=CLIENT_TO_SERVER)
    assert asked.args == [{"token": "t"}]
    assert "asks to join" in asked.meaning and '"token": "t"' in asked.meaning
    answer = one(captured, sio_type="CONNECT", namespace="/chat", direction=SERVER_TO_CLIENT)
    assert set(answer.args[0]) == {"sid"}
    assert answer.args[0]["sid"] in answer.meaning and "on /chat" in answer.meaning


def test_event_with_ack_id_and_the_ack(captured: list[Record]) -> None:
    asked = one(captured, event="echo")
    assert asked.sio_type == "EVENT" and asked.namespace == "/"
    assert asked.args == ["a", 1] and asked.ack_id is not None
    assert asked.meaning == f'EVENT "echo" on / ("a", 1); asks for ack {asked.ack_id}'
    answer = one(captured, sio_type="ACK", ack_id=asked.ack_id, direction=SERVER_TO_CLIENT)
    assert answer.args == ["a", 1]
    assert answer.meaning == f'ACK {asked.ack_id} on /: answers with ("a", 1)'


def test_events_on_a_namespace_and_a_disconnect_from_the_server(captured: list[Record]) -> None:
    greeting = one(captured, event="greeting")
    assert greeting.namespace == "/chat" and greeting.args == ["hi ann"]
    assert greeting.ack_id is None and "on /chat" in greeting.meaning
    gone = one(captured, sio_type="DISCONNECT", direction=SERVER_TO_CLIENT)
    assert gone.namespace == "/chat"
    assert gone.meaning == "DISCONNECT on /chat: the server sends the client away"
    left = one(captured, sio_type="DISCONNECT", direction=CLIENT_TO_SERVER)
    assert left.meaning.endswith("the client leaves")


def test_binary_event_and_ack_with_placeholders_and_attachments(captured: list[Record]) -> None:
    sent = packets(captured, sio_type="BINARY_EVENT", event="upload")
    assert {record.transport for record, _ in sent} == {"websocket", "polling"}
    upload = sent[0][1]
    assert upload.attachments == 1
    assert upload.args == [{"_placeholder": True, "num": 0}]
    assert "<binary attachment 0>" in upload.meaning and "1 binary attachment follows" in upload.meaning
    answer = one(captured, sio_type="BINARY_ACK", ack_id=upload.ack_id)
    assert answer.attachments == 1 and answer.args == [{"_placeholder": True, "num": 0}]
    blob = one(captured, sio_type="BINARY_EVENT", event="blob")
    assert blob.namespace == "/chat" and blob.attachments == 1
    frames = [packet for record, packet in packets(captured, eio_type="binary")
              if record.transport == "websocket"]
    assert UPLOAD in [p.raw for p in frames] and UPLOAD[::-1] in [p.raw for p in frames]
    assert BLOB in [p.raw for p in frames]
    assert one(captured, raw=BLOB).meaning == f"binary attachment: {len(BLOB)} bytes"


def test_long_polling_joins_packets_with_the_record_separator(captured: list[Record]) -> None:
    polled = [record for record in captured if record.transport == "polling"
              and RECORD_SEPARATOR in str(record.data)]
    assert polled, "some long-poll body carried several packets"
    for record in polled:
        parts = str(record.data).split(RECORD_SEPARATOR)
        assert [p.raw for p in record.packets()] == parts
    ticks = [packet.args for _, packet in packets(captured, event="tick")]
    assert ticks == [[0], [1], [2]]
    # Binary data in a long poll is base64 after a "b".
    encoded = [packet for record, packet in packets(captured, eio_type="binary")
               if record.transport == "polling"]
    assert encoded and all(str(p.raw).startswith("b") for p in encoded)
    assert "base64" in encoded[0].meaning


def test_connect_error_and_close(captured: list[Record]) -> None:
    refused = one(captured, sio_type="CONNECT_ERROR")
    assert refused.namespace == "/members" and refused.args == [{"message": "members only"}]
    assert refused.meaning == 'CONNECT_ERROR on /members: the server refuses: "members only"'
    closed = one(captured, eio_type="close", direction=CLIENT_TO_SERVER)
    assert closed.meaning == "close: the client ends the Engine.IO connection"


def test_broken_packets_are_named_not_raised(captured: list[Record]) -> None:
    # Cut a captured event short: the decoder says what is wrong.
    event = next(packet for _, packet in packets(captured, event="echo"))
    broken = decode_packet(str(event.raw)[:-3])
    assert broken.eio_type == "invalid" and "not JSON" in broken.meaning
    assert decode_packet("").error == "an empty packet"
