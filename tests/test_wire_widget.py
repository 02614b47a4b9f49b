"""The wire log widget: rows for what a real tap recorded, its filters,
its bound, live updates and text that stays text."""

from __future__ import annotations

import html
from typing import Any, AsyncIterator

import pytest
import socketio

import chatlab
from chatlab import RecordingClient
from chatlab.wire import WireLogWidget, WireTap, tap

pytestmark = pytest.mark.integration

EVIL = '<img src=x onerror="window.__pwned=1">\u202eevil'


@pytest.fixture
async def wire() -> AsyncIterator[WireTap]:
    """A tap in front of a server that echoes and pings every second."""
    sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=1, ping_timeout=1)

    @sio.event
    async def echo(sid: str, data: Any) -> Any:
        return data

    server = await chatlab.serve(sio, name="wire-widget")
    started = await tap(server.url, name="wire-widget")
    yield started
    await chatlab.shutdown()


async def connected(wire: WireTap, name: str, transports: list[str] | None = None) -> RecordingClient:
    client = RecordingClient(name)
    await client.connect(wire.url, transports=transports)
    return client


async def test_rows_show_each_packet_and_its_meaning_live(wire: WireTap) -> None:
    widget = WireLogWidget(wire)
    assert widget.rows == [] and "nothing recorded yet" in widget._rows.value
    client = await connected(wire, "ann")
    await wire.wait_until(lambda: any(p.eio_type == "upgrade" for _, p in wire.packets()))
    assert await client.call("echo", "hi", timeout=5) == "hi"
    rows = widget.rows
    assert any("long poll: GET /socket.io/?" in row for row in rows)
    assert any(" 2probe " in row and "ping probe" in row for row in rows)
    assert any(" 5 " in row and "upgrade: from now on" in row for row in rows)
    [asked] = [row for row in rows if '"echo"' in row]
    assert "C→S websocket" in asked and '("hi"); asks for ack' in asked
    [answer] = [row for row in rows if "answers with" in row]
    assert "S→C websocket" in answer and answer.split()[-1] == '("hi")'
    assert widget._repr_mimebundle_()["text/plain"] == "Run the cell to show the wire log"
    widget.close()
    before = len(widget.rows)
    await client.call("echo", "after close", timeout=5)
    assert len(widget.rows) == before, "a closed widget stops following the tap"


async def test_pings_hidden_by_default_and_shown_on_request(wire: WireTap) -> None:
    widget = WireLogWidget(wire)
    await connected(wire, "ann", transports=["websocket"])
    await wire.wait_until(lambda: any(p.eio_type == "pong" for _, p in wire.packets()),
                          timeout=5)
    assert widget.hide_pings
    assert not [row for row in widget.rows if "ping: the server checks" in row]
    widget.hide_pings = False
    assert [row for row in widget.rows if "ping: the server checks" in row]
    assert [row for row in widget.rows if "pong: the client answers" in row]
    shown = WireLogWidget(wire, hide_pings=False)
    assert shown.rows == widget.rows


async def test_one_connection_only(wire: WireTap) -> None:
    ann = await connected(wire, "ann", transports=["polling"])
    bob = await connected(wire, "bob", transports=["websocket"])
    await ann.call("echo", "from ann", timeout=5)
    await bob.call("echo", "from bob", timeout=5)
    ann_eio = next(r.connection for r in wire.records if r.transport == "polling" and r.connection)
    widget = WireLogWidget(wire, connection=ann_eio)
    assert widget.connection == ann_eio
    assert widget._picker.options[1:] == tuple(
        dict.fromkeys(r.connection for r in wire.records if r.connection))
    assert any("from ann" in row for row in widget.rows)
    assert not any("from bob" in row for row in widget.rows)
    assert all(" polling " in row for row in widget.rows)
    widget.connection = None
    assert any("from bob" in row for row in widget.rows)


async def test_traffic_is_shown_as_text_never_as_markup(wire: WireTap) -> None:
    widget = WireLogWidget(wire)
    client = await connected(wire, "mallory", transports=["websocket"])
    assert await client.call("echo", EVIL, timeout=5) == EVIL
    value = widget._rows.value
    assert "<img" not in value and "\u202e" not in value
    assert html.escape('<img src=x onerror=', quote=True) in value
    assert "\\u202eevil" in value
    assert all("\u202e" not in row for row in widget.rows)


async def test_rows_are_bounded(wire: WireTap) -> None:
    widget = WireLogWidget(wire, limit=5)
    client = await connected(wire, "ann", transports=["websocket"])
    for n in range(6):
        await client.call("echo", f"n{n}", timeout=5)
    assert len(widget.rows) == 5
    assert '"n5"' in widget.rows[-1]
    assert repr(widget) == "WireLogWidget(5 rows)"
