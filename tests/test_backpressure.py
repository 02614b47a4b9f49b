"""chatlab.outbox: a client that does not read is sent away once the server
holds more than its bound for it; the others lose nothing, a slow reader
under the bound stays, and a polling client is never sent more packets in
one body than python-engineio decodes."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import struct
from typing import Any

import aiohttp
import engineio.payload
import pytest

import chatlab
from chatlab import ChatClient, ChatServer, Limits
from chatlab.outbox import GOODBYE_TIMEOUT, GRACE, Outbox, outbox_of, room_to_send

pytestmark = pytest.mark.integration

# Limits.outgoing_buffer for these chats: half the default, and still above
# what aiohttp buffers for a websocket before its writer waits (320 KiB).
BOUND = 512 * 1024
TEXT = "x" * 1900  # each message: about 2 kB once sent
PACKET = len(TEXT) + 200  # the most one message's packet counts for


def limits(bound: int = BOUND) -> Limits:
    return Limits(outgoing_buffer=bound, events_per_second=0)  # no rate limit: a busy chat


@pytest.fixture(params=[False, True], ids=["plain", "fast"])
async def chat(request):
    server = ChatServer(limits=limits(), fast=request.param)
    server.running = await server.serve(name=f"backpressure-{request.node.name}")
    yield server
    await chatlab.shutdown()


class RawWebSocket:
    """A websocket client on a bare socket with a small receive buffer: what
    it does not read stays with the server. It reads only when told to."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str, receive_buffer: int = 4096) -> "RawWebSocket":
        host, port = url.removeprefix("http://").split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        # A small stream buffer too: the client takes in at most a few kB.
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                      f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        ws = cls(reader, writer)
        assert (await ws.receive()).startswith("0{")  # Engine.IO open
        ws.send("40")
        assert (await ws.receive()).startswith("40{")
        return ws

    def send(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        size = len(payload)
        header = struct.pack("!BB", 0x81, 0x80 | size) if size < 126 \
            else struct.pack("!BBH", 0x81, 0x80 | 126, size)
        self.writer.write(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    async def receive(self, timeout: float = 5) -> str:
        """The next text frame (answering pings on the way)."""
        while True:
            first, second = await asyncio.wait_for(self.reader.readexactly(2), timeout)
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
            data = await asyncio.wait_for(self.reader.readexactly(size), timeout)
            if first & 0x0F == 0x8:
                raise ConnectionError("the server closed the websocket")
            text = data.decode()
            if text == "2":
                self.send("3")
                continue
            return text

    async def events(self, name: str, count: int) -> list[Any]:
        """Read until ``count`` events ``name`` have come; their data."""
        found = []
        while len(found) < count:
            text = await self.receive()
            if text.startswith("42"):
                event, *args = json.loads(text[2:])
                if event == name:
                    found.append(args[0] if args else None)
        return found

    async def closed_by_server(self, timeout: float = 10) -> bool:
        """Read everything left until the server ends the connection."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), timeout):
                pass
        except ConnectionResetError:
            pass  # cut: what was left unread is gone with it
        return True

    def close(self) -> None:
        self.writer.transport.abort()


async def lurker_joins(chat: ChatServer, name: str = "lurker") -> tuple[RawWebSocket, Outbox]:
    """A raw websocket user that reads up to its `private` welcome, and then its outbox."""
    ws = await RawWebSocket.open(chat.running.url)
    ws.send("42" + json.dumps(["adduser", name]))
    await ws.events("private", 1)
    (sid,) = [sid for sid, user in chat.users.items() if user == name]
    queue = outbox_of(chat.sio, sid)
    assert queue is not None and queue.bound == BOUND
    return ws, queue


async def chatters(chat: ChatServer, count: int) -> list[ChatClient]:
    clients = []
    for n in range(count):
        client = ChatClient(chat.running.url)
        await client.connect()
        await client.add_user(f"chatter{n}")
        clients.append(client)
    return clients


async def test_a_client_that_stops_reading_is_sent_away_and_the_others_lose_nothing(chat, caplog):
    others = await chatters(chat, 4)
    ws, queue = await lurker_joins(chat)
    await others[0].wait_until(lambda: "lurker" in others[0].users)
    sent = 0
    with caplog.at_level(logging.WARNING, logger="chatlab"):
        # A busy chat: everyone sends, until the server has sent the lurker away.
        while queue.sent_away is None:
            assert sent < 20000, "never sent away"
            await asyncio.gather(*(client.send(f"{sent + n} {TEXT}")
                                   for n, client in enumerate(others)))
            sent += len(others)
        # It leaves once its error has had its time to go out (it never reads
        # it): counted in time, not in messages, which a fast server sends
        # many more of meanwhile.
        await others[0].wait_until(lambda: "lurker" not in others[0].users,
                                   timeout=GOODBYE_TIMEOUT + 10)
        assert "lurker" not in chat.names()
        for client in others:
            await client.wait_until(lambda client=client: client.last_offset == sent, timeout=20)
            assert [m.offset for m in client.messages] == list(range(1, sent + 1))
            # The users list is sent when the leave is handled, which can
            # come after the last message reached this client.
            await client.wait_until(lambda client=client: "lurker" not in client.users)
    assert queue.sent_away is not None and queue.closed
    # Never more than the ceiling, plus the one packet that crossed it.
    assert BOUND < queue.peak <= queue.ceiling + PACKET
    assert queue.held < 1000, "what it held is dropped (all but the error)"
    [line] = [r.getMessage() for r in caplog.records
              if r.name == "chatlab" and "not reading" in r.getMessage()]
    assert "Limits.outgoing_buffer is 524,288" in line and "serverOffset" in line
    assert await ws.closed_by_server()
    for client in others:
        await client.disconnect()


async def test_a_client_that_stays_over_the_bound_in_a_quiet_chat_is_sent_away(chat, caplog):
    """Over its bound but under the ceiling: it goes once the grace is over."""
    (observer,) = await chatters(chat, 1)
    ws, queue = await lurker_joins(chat)
    (sid,) = [sid for sid, user in chat.users.items() if user == "lurker"]
    with caplog.at_level(logging.WARNING, logger="chatlab"):
        while queue.unsent() <= BOUND * 3 // 2:
            await chat.sio.emit("filler", TEXT, to=sid)
            # A turn of the loop: what went straight to the socket is written
            # (and fills the kernel's buffers first, as in a chat).
            await asyncio.sleep(0)
        assert queue.sent_away is None and queue.unsent() < queue.ceiling
        await observer.wait_until(lambda: "lurker" not in observer.users, timeout=GRACE + 10)
    assert queue.sent_away == f"more than {BOUND:,} bytes for {GRACE:g} s"
    assert any("for 2 s" in r.getMessage() for r in caplog.records)
    assert await ws.closed_by_server()


async def test_a_slow_reader_under_the_bound_stays_and_gets_everything(chat):
    others = await chatters(chat, 2)
    ws, queue = await lurker_joins(chat, "slow")
    sent = 0
    # It stops reading while its queue fills (beyond the socket's buffers)...
    while queue.held < BOUND // 4:
        await others[sent % 2].send(f"{sent} {TEXT}")
        sent += 1
    assert BOUND // 4 < queue.unsent() < BOUND
    # ...then reads it all, while the chat goes on.
    reading = asyncio.ensure_future(ws.events("message", sent + 20))
    for n in range(20):
        await others[n % 2].send(f"{sent + n} {TEXT}")
    messages = await asyncio.wait_for(reading, 20)
    assert [m["offset"] for m in messages] == list(range(1, sent + 21))
    assert queue.sent_away is None and "slow" in chat.names()
    assert queue.peak < BOUND
    ws.close()
    for client in others:
        await client.disconnect()


async def test_a_polling_client_that_stops_polling_is_told_why_on_its_next_poll(chat, caplog):
    others = await chatters(chat, 2)
    base = chat.running.url + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        async with http.get(base) as response:
            eio_sid = json.loads((await response.text())[1:])["sid"]
        url = f"{base}&sid={eio_sid}"
        for body in ("40", '42["adduser","poller"]'):
            async with http.post(url, data=body) as response:
                assert response.status == 200
        (sid,) = [sid for sid, user in chat.users.items() if user == "poller"]
        queue = outbox_of(chat.sio, sid)
        sent = 0
        with caplog.at_level(logging.WARNING, logger="chatlab"):
            while queue.sent_away is None:  # it does not poll meanwhile
                await others[sent % 2].send(f"{sent} {TEXT}")
                sent += 1
        assert queue.sent_away is not None and queue.peak <= queue.ceiling + PACKET
        async with http.get(url) as response:
            packets = (await response.text()).split("\x1e")
        assert len(packets) == 1 and packets[0].startswith("42")
        event, error = json.loads(packets[0][2:])
        assert event == "error" and error["event"] is None
        assert "not reading" in error["reason"] and "serverOffset" in error["reason"]
        async with http.get(url) as response:
            assert response.status == 400  # gone: its client connects again
    assert any("not reading" in r.getMessage() for r in caplog.records)
    assert "poller" not in chat.names()
    for client in others:
        assert await client.wait_until(lambda client=client: client.last_offset == sent)
        await client.disconnect()


class Valve:
    """A TCP relay to a server whose way back to the client can be shut:
    the client then gets nothing, as one that has stopped reading."""

    def __init__(self, target: str) -> None:
        self.host, port = target.removeprefix("http://").split(":")
        self.target_port = int(port)
        self.open = asyncio.Event()
        self.open.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._relay, self.host, 0)
        return f"http://{self.host}:{self._server.sockets[0].getsockname()[1]}"

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # holds little itself
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (self.host, self.target_port))
        up_reader, up_writer = await asyncio.open_connection(sock=sock, limit=1024)
        self._writers += [writer, up_writer]
        for pump in (self._pump(reader, up_writer, None), self._pump(up_reader, writer, self.open)):
            task = asyncio.ensure_future(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    valve: asyncio.Event | None) -> None:
        try:
            while True:
                if valve is not None:
                    await valve.wait()
                data = await reader.read(4096)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()

    async def stop(self) -> None:
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self.open.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)


async def test_a_client_sent_away_reconnects_and_catches_up_by_its_offset(chat):
    """python-socketio's client takes the closed connection as lost, and
    reconnects with where its history ends."""
    others = await chatters(chat, 1)
    await others[0].send("before")
    valve = Valve(chat.running.url)
    try:
        slow = ChatClient(await valve.start(), transports=["websocket"])
        await slow.connect()
        await slow.add_user("slow")
        await slow.wait_for_message(text="before")
        (sid,) = [sid for sid, user in chat.users.items() if user == "slow"]
        queue = outbox_of(chat.sio, sid)
        valve.open.clear()  # it stops reading
        sent = 1
        while queue.sent_away is None:
            await others[0].send(f"{sent} {TEXT}")
            sent += 1
        valve.open.set()
        # Back under a new id, with every message once, in order.
        await slow.wait_until(lambda: slow.last_offset == sent and sid not in chat.users
                              and "slow" in chat.names(), timeout=20)
        assert [m.offset for m in slow.messages] == list(range(1, sent + 1))
        await chatlab.shutdown()
    finally:
        await valve.stop()


async def test_a_polling_chat_client_catches_up_on_history_and_replay_16_packets_a_poll(chat):
    writer = ChatClient(chat.running.url)
    await writer.connect()
    await writer.add_user("writer")
    for n in range(80):
        await writer.send(f"m{n}")
    reader = ChatClient(chat.running.url, transports=["polling"])
    await reader.connect()
    await reader.add_user("reader")
    await reader.wait_until(lambda: reader.last_offset == 80)
    assert [m.offset for m in reader.messages] == list(range(31, 81))  # the 50 recent ones
    await reader.go_offline()
    for n in range(80, 200):
        await writer.send(f"m{n}")
    await reader.go_online()
    await reader.wait_until(lambda: reader.last_offset == 200, timeout=10)
    assert [m.offset for m in reader.messages] == list(range(31, 201))
    # Forty events queued at once (between two polls), then one more message.
    (sid,) = [sid for sid, user in chat.users.items() if user == "reader"]
    await asyncio.gather(*(chat.sio.emit("burst", n, to=sid) for n in range(40)))
    await writer.send("after")
    await reader.wait_for_message(text="after")
    assert [m.offset for m in reader.messages] == list(range(31, 202))
    # Twice connected, never dropped: no poll carried more than it decodes.
    connects = [e for e in reader.log.entries if e.direction == "in" and e.event == "connect"]
    assert len(connects) == 2
    assert engineio.payload.Payload.max_decode_packets == 16
    for client in (writer, reader):
        await client.disconnect()


async def test_room_to_send_waits_for_a_reader_and_wakes_when_it_leaves(chat):
    ws, queue = await lurker_joins(chat)
    (sid,) = list(chat.users)
    assert await room_to_send(chat.sio, sid) is True  # nothing held
    sent = 0
    while queue.held < queue.low_water:  # the writer waits for the client
        await chat.sio.emit("filler", f"{sent} {TEXT}", to=sid)
        sent += 1
        await asyncio.sleep(0)  # a turn: direct frames written, kernel buffers filled first
    assert not queue.has_room()
    waiting = asyncio.ensure_future(room_to_send(chat.sio, sid))
    # It reads: room again, with less than the low water mark held.
    reading = asyncio.ensure_future(ws.events("filler", sent))
    assert await asyncio.wait_for(waiting, 10) is True
    await asyncio.wait_for(reading, 10)
    # It stops reading, and leaves while a sender waits.
    while queue.held < queue.low_water:  # the writer waits for the client
        await chat.sio.emit("filler", TEXT, to=sid)
        await asyncio.sleep(0)
    assert not queue.has_room()
    waiting = asyncio.ensure_future(room_to_send(chat.sio, sid))
    ws.close()
    assert await asyncio.wait_for(waiting, 10) is False
    assert await room_to_send(chat.sio, sid) is False  # gone: at once
    assert await room_to_send(chat.sio, "nobody") is False


async def test_room_to_send_wakes_when_a_polling_client_says_goodbye(chat):
    base = chat.running.url + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        async with http.get(base) as response:
            eio_sid = json.loads((await response.text())[1:])["sid"]
        url = f"{base}&sid={eio_sid}"
        async with http.post(url, data="40") as response:
            assert response.status == 200
        sid = chat.sio.manager.sid_from_eio_sid(eio_sid, "/")
        queue = outbox_of(chat.sio, sid)
        while queue.held < queue.low_water:
            await chat.sio.emit("filler", TEXT, to=sid)
        assert not queue.has_room()
        waiting = asyncio.ensure_future(room_to_send(chat.sio, sid))
        async with http.post(url, data="1") as response:  # Engine.IO close
            assert response.status == 200
        assert await asyncio.wait_for(waiting, 10) is False
