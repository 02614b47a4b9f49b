"""chatlab._compat: where an internal it relies on is missing (a release that
renamed it), the kit says so once and carries on without that one feature."""

from __future__ import annotations

import asyncio
import json
import logging
import types

import aiohttp
import engineio.payload
import pytest
import socketio

import chatlab
import chatlab.outbox
from chatlab import _compat
from chatlab.fast import direct_writes

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def fresh_notices(monkeypatch):
    # Each test sees the first notice of its kind (notices are said once per process).
    monkeypatch.setattr(_compat, "_said", set())


def notices(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "chatlab"]


def test_without_a_websocket_table_direct_writes_stay_off_and_say_so_once(caplog):
    eio = types.SimpleNamespace()  # an engineio server without `_async`
    with caplog.at_level(logging.WARNING, logger="chatlab"):
        assert direct_writes.install(eio) is False
        assert direct_writes.install(eio) is False
    assert not hasattr(eio, "create_queue"), "nothing half-installed"
    [notice] = notices(caplog)
    assert "AsyncServer._async" in notice and "direct writes are off" in notice
    assert _compat.CHECKED in notice


def test_unknown_socket_attributes_never_allow_a_direct_write():
    assert _compat.socket_is_open_websocket(object()) is False
    assert _compat.socket_queue(types.SimpleNamespace(), "nobody") is None


class OlderServer(socketio.AsyncServer):
    """An AsyncServer as a release without the dispatch chatlab wraps."""

    _trigger_event = None  # type: ignore[assignment]


async def test_without_the_dispatch_a_server_still_serves_and_says_what_it_lost(caplog):
    sio = OlderServer(async_mode="aiohttp")
    with caplog.at_level(logging.WARNING, logger="chatlab"):
        server = await chatlab.serve(sio, name="older")
    assert server.running
    [notice] = notices(caplog)
    assert "handler errors are not recorded" in notice
    await server.stop()
    assert "_trigger_event" not in vars(sio)


def test_without_the_connection_table_the_outbox_seams_say_what_they_lose(caplog):
    eio = types.SimpleNamespace()  # an engineio server without `sockets` or `handlers`
    with caplog.at_level(logging.WARNING, logger="chatlab"):
        assert _compat.sid_of_queue(eio, object()) is None
        asyncio.run(_compat.drop_connection(eio, "gone"))
        _compat.on_connection_closed(eio, lambda eio_sid: None)
    said = notices(caplog)
    assert len(said) == 3
    assert "not sent away" in said[0]
    assert "only when its socket closes" in said[1]
    assert "end late" in said[2]


async def test_a_long_poll_carries_at_most_16_packets_and_the_rest_follow():
    """engineio's poll() takes one packet with get(), then get_nowait()
    until QueueEmpty; the outbox ends each batch at 16, the most a
    python-engineio client decodes (its limit left as it ships)."""
    sio = socketio.AsyncServer(async_mode="aiohttp")
    chatlab.outbox.install(sio, 1024 * 1024)
    async with chatlab.serve(sio, name="polls") as server:
        async with aiohttp.ClientSession() as http:
            base = server.url + "/socket.io/?EIO=4&transport=polling"
            async with http.get(base) as response:
                eio_sid = json.loads((await response.text())[1:])["sid"]
            url = f"{base}&sid={eio_sid}"
            async with http.post(url, data="40") as response:
                assert response.status == 200
            for n in range(40):
                await sio.eio.send(eio_sid, f"m{n}")
            bodies = []
            while sum(len(body) for body in bodies) < 41:  # the namespace's reply, then 40
                async with http.get(url) as response:
                    bodies.append((await response.text()).split("\x1e"))
    assert [len(body) for body in bodies] == [16, 16, 9]
    assert [packet for body in bodies for packet in body][1:] == [f"4m{n}" for n in range(40)]
    assert engineio.payload.Payload.max_decode_packets == 16
