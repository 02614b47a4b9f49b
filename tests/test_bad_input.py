"""Bad input at three levels: chat events, raw Socket.IO / Engine.IO packets
over a websocket, and HTTP requests. Each time the server stays up, answers
(or closes) only the sender, stores nothing, and an observer still chats."""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

import aiohttp
import pytest

from chatlab import ChatServer, Limits, RecordingClient, RunningServer

from test_chat_refusals import check_refused, joined

pytestmark = pytest.mark.integration

# Also on the fast server, which reads packets with a parser of its own
# (chatlab.fast.packets).
FAST_TOO = True


WS_PATH = "/socket.io/?EIO=4&transport=websocket"
POLL_PATH = "/socket.io/?EIO=4&transport=polling"
TIMEOUT = aiohttp.ClientTimeout(total=5)
DEEP = "[" * 1000 + "]" * 1000

# -- events, through a real python-socketio client ----------------------------

# (event, arguments, words the reason must contain); the sender is joined as
# "ann" and in the room "lobby"; "bob" is also there.
BAD_EVENTS = [
    pytest.param("message", ("\u200b\u200b",), "no visible character", id="message-zero-width-only"),
    pytest.param("message", ("\ufeff\u2060",), "no visible character", id="message-bom-word-joiner-only"),
    pytest.param("message", ("\x1b\x1b",), "control character", id="message-control-only"),
    pytest.param("message", (b"hello",), "not bytes", id="message-bytes"),
    pytest.param("message", ({"deep": [[[[[[[[]]]]]]]]},), "not an object", id="message-nested-object"),
    pytest.param("join", (b"lobby",), "not bytes", id="room-bytes"),
    pytest.param("join", ("\u200d",), "no visible character", id="room-zero-width-only"),
    pytest.param("roommessage", ({"room": "lob\ud800", "message": "m"},), "surrogate",
                 id="roommessage-room-surrogate"),
    pytest.param("roommessage", ({"room": "lobby", "message": "m\udfff"},), "surrogate",
                 id="roommessage-message-surrogate"),
    pytest.param("direct", ({"to": "bo\udc00b", "message": "m"},), "surrogate", id="direct-to-surrogate"),
    pytest.param("direct", ({"to": "bob", "message": "\ud83d"},), "surrogate", id="direct-message-surrogate"),
    pytest.param("direct", ({"to": b"bob", "message": "m"},), "not bytes", id="direct-to-bytes"),
    pytest.param("\ud800", ("x",), "unknown event", id="event-name-surrogate"),
    pytest.param("disconnect", (), "reserved", id="event-named-disconnect"),
    pytest.param("connect", ({},), "reserved", id="event-named-connect"),
]

BAD_NAMES = [
    pytest.param(("\u200b",), "no visible character", id="name-zero-width-space"),
    pytest.param(("\u200c\u200d\ufeff",), "no visible character", id="name-joiners-and-bom"),
    pytest.param(("\u0301\u0301",), "no visible character", id="name-combining-marks-only"),
    pytest.param(("\x01\x02",), "control character", id="name-control-only"),
    pytest.param(("é" * 33,), "limit is 32", id="name-33-two-byte-chars"),
    pytest.param(("😀" * 33,), "limit is 32", id="name-33-four-byte-chars"),
    pytest.param((b"ann",), "not bytes", id="name-bytes"),
]


@pytest.mark.parametrize("event,args,words", BAD_EVENTS)
async def test_bad_events_are_refused(raw, chat, event, args, words):
    observer = await joined(raw, "observer")
    ann = await joined(raw, "ann")
    await joined(raw, "bob")
    await ann.call("join", "lobby", timeout=5)
    await check_refused(ann, observer, chat, event, args, words)
    assert chat.names() == ["observer", "ann", "bob"]


@pytest.mark.parametrize("args,words", BAD_NAMES)
async def test_bad_names_are_refused(raw, chat, args, words):
    observer = await joined(raw, "observer")
    newcomer = await raw("newcomer")
    await check_refused(newcomer, observer, chat, "adduser", args, words)


async def test_a_name_at_the_limit_in_four_byte_characters_is_accepted(raw, chat):
    await joined(raw, "😀" * 32)
    assert chat.names() == ["😀" * 32]


async def test_a_flood_is_refused_once_per_wait_while_another_connection_chats(chat_server):
    chat = ChatServer(limits=Limits(events_per_second=5, burst=10))
    running = await chat.serve(name="flood")
    flooder, observer = RecordingClient("flooder"), RecordingClient("observer")
    try:
        for client in (flooder, observer):
            await client.connect(running.url)
        assert (await observer.call("adduser", "observer", timeout=5))["ok"]
        for _ in range(15):
            await flooder.emit("join", "x")
        # The burst is handled (and refused: no adduser), the first event
        # over it told when to try again, the other four dropped unanswered.
        await flooder.wait_for("error", count=11)
        too_fast = [e for (e,) in flooder.received("error") if "too fast" in e["reason"]]
        assert len(too_fast) == 1, flooder.received("error")
        assert too_fast[0]["event"] == "join"
        assert "at most 5 events a second" in too_fast[0]["reason"]
        assert "try again in" in too_fast[0]["reason"]
        # Told when, it gets through again; nothing came of the dropped four.
        await asyncio.sleep(too_fast[0]["retryAfter"])  # waiting as told is the behaviour
        reply = await flooder.call("join", "x", timeout=5)
        assert "adduser" in reply["reason"]
        assert len(flooder.received("error")) == 12
        # The observer's own allowance is untouched: it still chats.
        for n in range(5):
            assert (await observer.call("message", f"still here {n}", timeout=5))["ok"] is True
        await observer.wait_for("message", count=5)
        assert observer.received("error") == []
        assert chat.names() == ["observer"]
    finally:
        await flooder.disconnect()
        await observer.disconnect()
    await running.stop()
    assert chat.namespace.admitted == 0, "rate limits are dropped with their connections"


# -- raw packets over a websocket ---------------------------------------------


class RawSocket:
    """A websocket speaking Engine.IO / Socket.IO by hand."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_str(frame)

    async def receive(self, timeout: float = 5) -> aiohttp.WSMessage:
        return await asyncio.wait_for(self.ws.receive(), timeout)

    async def until(self, wanted: Any, timeout: float = 5) -> list[Any]:
        """Frames received until one for which ``wanted(frame)`` holds (a
        closed socket yields ``None``)."""
        seen = []
        while True:
            message = await self.receive(timeout)
            frame = message.data if message.type in (
                aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY) else None
            if frame is not None and frame == "2":  # a ping: answer it
                await self.send("3")
                continue
            seen.append(frame)
            if wanted(frame):
                return seen


@pytest.fixture
async def raw_ws(chat_server: RunningServer) -> AsyncIterator[Any]:
    """``await raw_ws()``: a websocket that has opened Engine.IO and
    connected to the chat's namespace, as ``RawSocket``."""
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        sockets = []

        async def open_one() -> RawSocket:
            ws = await session.ws_connect(chat_server.url + WS_PATH)
            sockets.append(ws)
            raw = RawSocket(ws)
            opened = await raw.receive()
            assert opened.data.startswith("0{"), opened.data
            await raw.send("40")
            assert (await raw.until(lambda f: f and f.startswith("40")))[-1].startswith('40{"sid"')
            return raw

        yield open_one
        for ws in sockets:
            await ws.close()


def closing(frame: Any) -> bool:
    """An Engine.IO close packet, or the websocket closing."""
    return frame is None or frame == "1"


def unreadable(frame: Any) -> bool:
    return isinstance(frame, str) and frame.startswith('42["error"') and "could not read" in frame


# (frames to send, what ends the exchange, what the frames seen must include)
PACKETS = [
    pytest.param(["4x"], closing, unreadable, id="socketio-type-not-a-digit"),
    pytest.param(["49"], closing, unreadable, id="socketio-type-9"),
    pytest.param(["4"], closing, unreadable, id="socketio-empty-message"),
    pytest.param(['42["message"'], closing, unreadable, id="json-cut-short"),
    pytest.param(["42x"], closing, unreadable, id="json-garbage"),
    pytest.param(['42{"a":1}'], closing, unreadable, id="event-payload-an-object"),
    pytest.param(["42[]"], closing, unreadable, id="event-payload-empty-list"),
    pytest.param(['42[["message"],"x"]'], lambda f: f and f.startswith('42["error"'),
                 lambda f: "event name must be a string, not a list" in f, id="event-name-a-list"),
    pytest.param(['42[null]'], lambda f: f and f.startswith('42["error"'),
                 lambda f: "event name must be a string, not null" in f, id="event-name-null"),
    pytest.param(['42["message",' + DEEP + "]"], closing,
                 lambda f: unreadable(f) and "nested too deeply" in f, id="message-1000-nested-lists"),
    pytest.param([DEEP.join(["42", ""])], closing, unreadable, id="payload-1000-nested-lists"),
    pytest.param([b"\xff\xfe\x00"], closing, unreadable, id="binary-frame-not-a-packet"),
    pytest.param(['451-["message",{"_placeholder":true,"num":5}]', b"odd"], closing, unreadable,
                 id="attachment-placeholder-out-of-range"),
    pytest.param(["42" + json.dumps(["message", "x" * 70_000])], lambda f: f is None,
                 lambda f: f is None, id="frame-over-max-http-buffer-size"),
    pytest.param([""], lambda f: f is None, lambda f: f is None, id="empty-frame", marks=pytest.mark.xfail(
        strict=True, reason="engineio's websocket handler raises on an empty frame and drops "
        "the socket without ending the session: the user stays listed until the ping timeout")),
    pytest.param(["40/nope,"], lambda f: f and f.startswith("44/nope,"),
                 lambda f: f == '44/nope,"Unable to connect"', id="connect-unknown-namespace"),
    pytest.param(['42[1,"x"]'], lambda f: f and f.startswith('42["error"'),
                 lambda f: "event name must be a string, not a number" in f, id="event-name-a-number"),
]


async def observer_still_chats(chat: ChatServer, observer: RecordingClient, text: str) -> None:
    before = len(observer.received("message"))
    stored = await chat.store.count()
    assert await observer.call("message", text, timeout=5) == {"ok": True, "offset": stored + 1}
    await observer.wait_for("message", count=before + 1)
    assert observer.received("message")[-1][0]["message"] == text


@pytest.mark.parametrize("frames,until,expected", PACKETS)
async def test_bad_packets_close_or_refuse_only_their_connection(
        raw, raw_ws, chat, frames, until, expected):
    observer = await joined(raw, "observer")
    sender = await raw_ws()
    await sender.send('420["adduser","mallory"]')
    await sender.until(lambda f: f and f.startswith("430"))
    assert chat.names() == ["observer", "mallory"]
    for frame in frames:
        await sender.send(frame)
    seen = await sender.until(until)
    assert any(expected(f) for f in seen), seen
    if closing(seen[-1]):
        # Its user left with the connection; nobody else did.
        await observer.wait_for("users", count=3)
        assert chat.names() == ["observer"]
    else:
        assert chat.names() == ["observer", "mallory"]
    await observer_still_chats(chat, observer, "after bad packets")
    assert observer.received("error") == []
    texts = [m[0]["message"] for m in observer.received("message")]
    assert texts == ["after bad packets"], "nothing of the bad packets was delivered"


# Packets the server ignores: the connection stays open and nothing changes.
IGNORED = [
    pytest.param("9", id="engineio-type-9"),
    pytest.param('42/other,["message","x"]', id="event-to-unconnected-namespace"),
    pytest.param('43["x"]', id="ack-nobody-asked-for"),
    pytest.param('451-["message",{"_placeholder":true,"num":0}]', id="attachment-never-sent"),
]


@pytest.mark.parametrize("frame", IGNORED)
async def test_ignored_packets_change_nothing(raw, raw_ws, chat, frame):
    observer = await joined(raw, "observer")
    sender = await raw_ws()
    await sender.send('420["adduser","mallory"]')
    await sender.until(lambda f: f and f.startswith("430"))
    await sender.send(frame)
    await observer_still_chats(chat, observer, "unaffected")
    assert chat.names() == ["observer", "mallory"]
    assert [m[0]["message"] for m in observer.received("message")] == ["unaffected"]
    if not frame.startswith("451-"):  # (its next packet would be taken as the attachment)
        # The sender's connection is still open and served.
        await sender.send('421["join","lobby"]')
        seen = await sender.until(lambda f: f is None or f.startswith("431"))
        assert seen[-1].startswith('431[{"ok":true'), seen


# -- HTTP ---------------------------------------------------------------------


async def open_polling_session(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url + POLL_PATH) as response:
        assert response.status == 200
        return json.loads((await response.text())[1:])["sid"]


HTTP = [
    pytest.param("GET", "/socket.io/?EIO=4&transport=polling&sid=nope", {}, 400, "Invalid session",
                 id="unknown-sid"),
    pytest.param("GET", "/socket.io/?transport=polling", {}, 400, "unsupported version", id="missing-EIO"),
    pytest.param("GET", "/socket.io/?EIO=3&transport=polling", {}, 400, "unsupported version", id="EIO-3"),
    pytest.param("GET", "/socket.io/?EIO=4&transport=pigeon", {}, 400, "Invalid transport",
                 id="unknown-transport"),
    pytest.param("GET", POLL_PATH, {"Origin": "null"}, 400, "not an accepted origin", id="origin-null"),
    pytest.param("GET", POLL_PATH, {"Origin": "http://localhost.evil.test"}, 400,
                 "not an accepted origin", id="origin-localhost-lookalike"),
    pytest.param("GET", POLL_PATH, {"Origin": "http://127.0.0.1.evil.test"}, 400,
                 "not an accepted origin", id="origin-127-lookalike"),
    pytest.param("GET", POLL_PATH, {"Origin": "http://localhost@evil.test"}, 400,
                 "not an accepted origin", id="origin-userinfo-trick"),
]


@pytest.mark.parametrize("method,path,headers,status,words", HTTP)
async def test_bad_http_requests_are_refused(raw, chat, chat_server, method, path, headers, status, words):
    observer = await joined(raw, "observer")
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.request(method, chat_server.url + path, headers=headers) as response:
            assert response.status == status
            assert words in await response.text()
            assert "Access-Control-Allow-Origin" not in response.headers
    await observer_still_chats(chat, observer, "after bad http")
    assert chat.names() == ["observer"]


async def test_a_content_length_over_the_limit_is_refused_at_once(raw, chat, chat_server):
    observer = await joined(raw, "observer")
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        sid = await open_polling_session(session, chat_server.url)
    # One byte over the limit, sent in full: aiohttp would otherwise linger
    # reading the rest of an unsent body before closing its side.
    body = b"4" * (Limits().http_buffer_size + 1)
    reader, writer = await asyncio.open_connection("127.0.0.1", chat_server.port)
    try:
        writer.write(
            f"POST {POLL_PATH}&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n".encode() + body)
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5)
        await asyncio.wait_for(reader.read(), 5)  # the server closes the connection
    finally:
        writer.close()
        await writer.wait_closed()
    assert status.startswith(b"HTTP/1.1 413"), status
    await observer_still_chats(chat, observer, "after a huge body")


async def test_a_garbage_polling_body_leaves_the_server_serving(raw, chat, chat_server):
    observer = await joined(raw, "observer")
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        sid = await open_polling_session(session, chat_server.url)
        url = f"{chat_server.url}{POLL_PATH}&sid={sid}"
        # engineio logs an unreadable polling body and answers "ok".
        async with session.post(url, data="garbage\x1e\x00\x1e") as response:
            assert response.status in (200, 400)
        async with session.get(chat_server.url + f"{POLL_PATH}&sid=nope") as response:
            assert response.status == 400
    await observer_still_chats(chat, observer, "after garbage")
    assert chat.names() == ["observer"]


async def test_a_rate_limit_of_0_is_no_limit():
    chat = ChatServer(limits=Limits(events_per_second=0))
    server = await chat.serve(name="no-limit")
    client = RecordingClient("fast")
    await client.connect(server.url)
    replies = await asyncio.gather(*(client.call("join", "x", timeout=5) for _ in range(100)))
    assert all("too fast" not in reply.get("reason", "") for reply in replies), replies
    await client.shutdown()
    await server.stop()


def test_a_negative_rate_limit_is_refused_when_the_chat_is_made():
    with pytest.raises(ValueError, match="rate > 0"):
        ChatServer(limits=Limits(events_per_second=-1))
