"""chatlab._compat: where an internal it relies on is missing (a release that
renamed it), the kit says so once and carries on without that one feature."""

from __future__ import annotations

import logging
import types

import engineio.payload
import pytest
import socketio

import chatlab
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


def test_the_polling_limit_is_only_ever_raised():
    before = engineio.payload.Payload.max_decode_packets
    _compat.allow_long_polling_payloads(packets=2)
    assert engineio.payload.Payload.max_decode_packets == before
