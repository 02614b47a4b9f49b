"""The wire tap forwards everything unchanged and records it: the chat
protocol tests pass through it, and so do the official Node.js client and
the chat page in a real Chromium, over long polling and websocket.

This module is end-to-end as a whole (it drives Node.js and Chromium); its
first tests need neither.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import socketio
from playwright.async_api import expect

import chatlab
from chatlab import ChatServer, RecordingClient, RunningServer
from chatlab.wire import WireTap, running_taps, tap
from chatlab.wire.decode import CLIENT_TO_SERVER, SERVER_TO_CLIENT

import test_chat_protocol as protocol
from browser import join, message_texts, send
from test_official_client import node_ready, run_node
from test_page_browser import browser, client_js, open_page  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e


@pytest.fixture
async def wire(chat_server: RunningServer) -> AsyncIterator[WireTap]:
    """A tap in front of the chat server."""
    started = await tap(chat_server.url, name="test-wire")
    yield started
    await started.stop()


@pytest.fixture
async def tapped(wire: WireTap) -> AsyncIterator[Callable[..., Awaitable[RecordingClient]]]:
    """The chat protocol tests' ``raw`` fixture, connecting through the tap."""
    clients: list[RecordingClient] = []

    async def make(name: str = "raw", transports: list[str] | None = None) -> RecordingClient:
        client = RecordingClient(name)
        await client.connect(wire.url, transports=transports)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.shutdown()


SCENARIOS = [
    (protocol.test_adduser_sends_users_to_all_and_private_to_the_new_user, "polling"),
    (protocol.test_adduser_sends_users_to_all_and_private_to_the_new_user, "websocket"),
    (protocol.test_message_reaches_everyone_with_text_user_and_id, "polling"),
    (protocol.test_message_reaches_everyone_with_text_user_and_id, "websocket"),
    (protocol.test_disconnect_sends_users_not_user, None),
    (protocol.test_a_leaving_user_is_removed_by_connection_not_by_name, None),
    (protocol.test_a_taken_name_is_refused_ignoring_case, None),
    (protocol.test_rooms_join_leave_and_room_messages, None),
    (protocol.test_direct_messages_reach_the_recipient_and_the_sender_only, None),
]


@pytest.mark.parametrize(("scenario", "transport"), SCENARIOS,
                         ids=[f"{s.__name__[5:]}-{t or 'upgrade'}" for s, t in SCENARIOS])
async def test_the_chat_protocol_tests_pass_through_the_tap(
        scenario: Any, transport: str | None, tapped: Any, chat: ChatServer,
        wire: WireTap) -> None:
    given = {"raw": tapped, "chat": chat, "transport": transport}
    await scenario(**{name: given[name] for name in inspect.signature(scenario).parameters})
    packets = [packet for _, packet in wire.packets()]
    assert any(p.event == "adduser" for p in packets) and not [p for p in packets if p.error]
    if transport is not None:
        assert {record.transport for record in wire.records} == {transport}


def normalised(client: RecordingClient, ids: dict[str, str]) -> list[Any]:
    """A client's log, with connection ids replaced by stable names."""
    text = repr([(e.direction, e.event, e.data) for e in client.log.entries])
    for sid, name in ids.items():
        text = text.replace(sid, name)
    return [text]


async def conversation(url: str, transport: str) -> list[Any]:
    ann, bob = RecordingClient("ann"), RecordingClient("bob")
    try:
        for client in (ann, bob):
            await client.connect(url, transports=[transport])
            await client.wait_for("history")
        await ann.call("adduser", "ann", timeout=5)
        await ann.wait_for("private")
        await bob.call("adduser", "bob", timeout=5)
        await ann.wait_for("users", count=2)
        await bob.call("message", "a <b>bold</b> ünïcode 💬 line", timeout=5)
        await ann.call("join", "room", timeout=5)
        await bob.wait_for("message")
        ids = {ann.get_sid(): "ANN", bob.get_sid(): "BOB"}
        await bob.disconnect()
        await ann.wait_for("users", count=3)
        return normalised(ann, ids) + normalised(bob, ids)
    finally:
        await ann.shutdown()
        await bob.shutdown()


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_a_conversation_is_the_same_direct_and_through_the_tap(transport: str) -> None:
    logs = []
    for through_tap in (False, True):
        chat = ChatServer()
        server = await chat.serve(name=f"wire-same-{through_tap}")
        url = server.url
        if through_tap:
            url = (await tap(server.url, name="wire-same")).url
        try:
            logs.append(await conversation(url, transport))
        finally:
            await chatlab.shutdown()
            chat_id = await chat.store.chat_id()
        logs[-1] = [entry.replace(chat_id, "CHAT") for entry in logs[-1]]
    direct, tapped_log = logs
    assert tapped_log == direct
    assert not running_taps() and not chatlab.running_servers()


async def test_headers_reach_the_server_as_the_client_sent_them() -> None:
    seen: list[dict[str, Any]] = []
    # Short pings: a polling client's disconnect waits for its last long poll.
    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*",
                               ping_interval=1, ping_timeout=1)

    @sio.event
    async def connect(sid: str, environ: dict, auth: Any) -> None:
        seen.append({key: value for key, value in environ.items()
                     if key.startswith("HTTP_") and key != "HTTP_HOST"})

    server = await chatlab.serve(sio, name="wire-headers")
    wire = await tap(server.url, name="wire-headers")
    headers = {"Origin": "http://localhost:1234", "Cookie": "a=1; b=2", "X-Lesson": "wire",
               "User-Agent": "chatlab-test"}
    try:
        for url in (server.url, wire.url):
            client = RecordingClient("headers")
            await client.connect(url, headers=headers, transports=["polling"])
            await client.shutdown()
        # A handshake the server refuses is refused the same way through the tap.
        async with aiohttp.ClientSession() as http:
            statuses = []
            for url in (server.url, wire.url):
                async with http.get(url + "/socket.io/?EIO=4&transport=polling&sid=nope") as r:
                    statuses.append((r.status, await r.read()))
            assert statuses[0] == statuses[1] and statuses[0][0] == 400
            refused = []
            for url in (server.url, wire.url):
                with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
                    await http.ws_connect(url + "/socket.io/?EIO=4&transport=websocket&sid=nope")
                refused.append(caught.value.status)
            assert refused[0] == refused[1] == 400
    finally:
        await chatlab.shutdown()
    direct, through = seen
    assert through == direct
    assert direct["HTTP_X_LESSON"] == "wire" and direct["HTTP_COOKIE"] == "a=1; b=2"
    assert not running_taps()


async def test_shutdown_stops_taps_and_a_rerun_replaces_the_old_one(
        chat_server: RunningServer) -> None:
    first = await tap(chat_server.url, name="again")
    second = await tap(chat_server.url, name="again")
    assert not first.running and second.running and running_taps() == {"again": second}
    client = RecordingClient("left")
    await client.connect(second.url, transports=["websocket"])
    await chatlab.shutdown()
    assert not second.running and running_taps() == {}
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(second.url + "/")
    with pytest.raises(ValueError, match="http:// URL"):
        WireTap("ws://127.0.0.1:1")


async def test_a_server_that_is_gone_is_a_502_with_the_reason() -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    server = await chatlab.serve(sio, name="wire-gone")
    wire = await tap(server.url, name="wire-gone")
    await server.stop()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(wire.url + "/socket.io/?EIO=4&transport=polling") as response:
                assert response.status == 502
                assert f"could not reach the server at {server.url}" in await response.text()
            with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
                await http.ws_connect(wire.url + "/socket.io/?EIO=4&transport=websocket")
            assert caught.value.status == 502
    finally:
        await chatlab.shutdown()
    assert wire.records[-1].http == "502 Bad Gateway"


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_the_official_node_client_through_the_tap(transport: str) -> None:
    node_ready()
    chat = ChatServer()
    server = await chat.serve(name=f"wire-node-{transport}")
    wire = await tap(server.url, name=f"wire-node-{transport}")
    try:
        result = await run_node("protocol-client.mjs", wire.url, transport)
    finally:
        await chatlab.shutdown()
    ann, bob = result["ids"]["ann"], result["ids"]["bob"]
    replies = result["replies"]
    assert replies["adduserAnn"] == {"ok": True, "id": ann, "name": "ann"}
    assert replies["message"] == {"ok": True, "offset": 1}
    assert replies["direct"] == {"ok": True}
    assert replies["backAgain"] == {"ok": True, "offset": 7}
    assert len(replies["refusedConnections"]) == 3
    assert ["message", {"message": "hello from node", "user": "bob", "id": bob,
                        "offset": 1}] in result["seen"]["ann"]
    assert {record.transport for record in wire.records} == {transport}
    packets = [packet for _, packet in wire.packets()]
    assert not [p for p in packets if p.error]
    assert sum(p.sio_type == "CONNECT_ERROR" for p in packets) == 3
    assert any(p.event == "adduser" and p.args == ["carol"] for p in packets)


async def test_the_chat_page_in_chromium_through_the_tap(
        chat_server: RunningServer, wire: WireTap, open_page: Any) -> None:  # noqa: F811
    ann = await open_page(wire.url + "/")
    bob = await open_page(wire.url + "/")
    await join(ann, "ann")
    await join(bob, "bob")
    await send(ann, "through the tap")
    for page in (ann, bob):
        await expect(message_texts(page)).to_have_text(["through the tap"])
    # The page's client starts on long polling and upgrades to a websocket.
    await wire.wait_until(lambda: sum(p.eio_type == "upgrade" for _, p in wire.packets()) >= 2)
    by_connection: dict[str, set[str]] = {}
    for record in wire.records:
        if record.connection:
            by_connection.setdefault(record.connection, set()).add(record.transport)
    assert list(by_connection.values()) == [{"polling", "websocket"}] * 2
    sent = [packet for record, packet in wire.packets()
            if record.direction == CLIENT_TO_SERVER and packet.event == "message"]
    assert [packet.args[0] for packet in sent] == ["through the tap"]
    assert any(packet.event == "message" and packet.args[0]["message"] == "through the tap"
               for record, packet in wire.packets() if record.direction == SERVER_TO_CLIENT)


async def test_compressed_long_polls_are_recorded_readable() -> None:
    # engineio gzips a long poll's answer above 1 KiB when the client
    # accepts it: the client gets the gzip, the record the text.
    sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=1, ping_timeout=1)

    @sio.event
    async def echo(sid: str, data: str) -> str:
        return data

    server = await chatlab.serve(sio, name="wire-gzip")
    wire = await tap(server.url, name="wire-gzip")
    long_text = "wire " * 2000
    try:
        async with aiohttp.ClientSession() as http:
            url = wire.url + "/socket.io/?EIO=4&transport=polling"
            async with http.get(url) as opened:
                sid = json.loads((await opened.text())[1:])["sid"]  # "0{...}": open
            url += f"&sid={sid}"
            async with http.post(url, data="40") as posted:
                assert posted.status == 200
            async with http.get(url) as connected_answer:
                assert (await connected_answer.text()).startswith("40")
            async with http.post(url, data="421" + json.dumps(["echo", long_text])) as posted:
                assert posted.status == 200
            async with http.get(url, headers={"Accept-Encoding": "gzip"}) as answer:
                assert answer.headers["Content-Encoding"] == "gzip"
                assert long_text in await answer.text()
    finally:
        await chatlab.shutdown()
    [ack] = [packet for _, packet in wire.packets() if packet.sio_type == "ACK"]
    assert ack.args == [long_text]


async def test_a_tap_starts_once_and_stops_once(chat_server: RunningServer) -> None:
    wire = WireTap(chat_server.url, name="once")
    async with wire:
        with pytest.raises(RuntimeError, match="started already"):
            await wire.start()
        await asyncio.gather(wire.stop(), wire.stop())
        assert not wire.running and "once" not in running_taps()
