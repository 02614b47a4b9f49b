"""chatlab.fast.direct_writes: packets written straight to an idle websocket
arrive whole, once and in order, whatever else the connection is doing."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import socketio

import chatlab
from chatlab import RecordingClient
from chatlab.fast.direct_writes import DirectQueue
from chatlab.fast import FanoutManager
from fast_support import serve_fast
from wire import connect_websocket

pytestmark = pytest.mark.integration


def eio_sockets(sio: socketio.AsyncServer) -> list:
    return list(sio.eio.sockets.values())


@pytest.fixture
async def served():
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=FanoutManager())

    @sio.event
    async def echo(sid, data=None):
        await sio.emit("echo", data, to=sid)
        return data

    server = await serve_fast(sio, name="direct")
    clients = []

    async def connect(name, transports):
        client = RecordingClient(name, reconnection=False)
        await client.connect(server.url, transports=transports)
        clients.append(client)
        return client

    yield sio, server, connect
    # The server first: a python-engineio client leaving over polling waits
    # for its long poll to end, up to 30 s, and dropping it ends it at once.
    await server.stop()
    for client in clients:
        await client.shutdown()


async def test_a_websocket_connection_writes_directly_and_a_polling_one_does_not(served):
    sio, server, connect = served
    on_websocket = await connect("ws", ["websocket"])
    on_polling = await connect("polling", ["polling"])
    await sio.emit("hello", "all")
    for client in (on_websocket, on_polling):
        await client.wait_for("hello")
    queues = {socket.upgraded: socket.queue for socket in eio_sockets(sio)}
    assert all(isinstance(queue, DirectQueue) for queue in queues.values())
    assert queues[True]._ws is not None and queues[False]._ws is None


async def test_the_broadcasts_of_one_turn_go_to_a_socket_in_one_write_at_its_end(served):
    sio, server, connect = served
    client = await connect("ws", ["websocket"])
    [socket] = eio_sockets(sio)
    queue, transport = socket.queue, socket.queue._transport
    written = transport.get_write_buffer_size()
    for n in range(5):  # no await that yields: one turn of the loop
        await sio.emit("turn", n)
    # Held for the end of the turn (and counted as held for the client)...
    assert queue.unsent() > 5 * len('42["turn",0]') and queue.empty()
    assert transport.get_write_buffer_size() == written
    await asyncio.sleep(0)  # ...which is the next thing the loop does
    assert queue.unsent() == 0
    await client.wait_for("turn", count=5)
    assert client.received("turn") == [(n,) for n in range(5)]


@pytest.mark.parametrize("fast", [{"direct_writes": False}, None], ids=["switched-off", "plain-serve"])
async def test_without_direct_writes_engineio_keeps_its_own_queue(fast):
    sio = socketio.AsyncServer(async_mode="aiohttp")
    serving = chatlab.serve(sio, name="engineio-writer") if fast is None \
        else serve_fast(sio, name="engineio-writer", **fast)
    async with serving as server:
        client = RecordingClient()
        await client.connect(server.url, transports=["websocket"])
        await sio.emit("hello", 1)
        await client.wait_for("hello")
        assert [type(socket.queue) for socket in eio_sockets(sio)] == [asyncio.Queue]
        await client.shutdown()


@pytest.mark.parametrize("transports", [["websocket"], ["polling"], ["polling", "websocket"]])
async def test_broadcasts_mixed_with_single_emits_and_acks_arrive_in_order(served, transports):
    """Broadcasts, an emit to one client and acknowledged calls, all at
    once; the polling-then-websocket client upgrades in the middle of it."""
    sio, server, connect = served
    # Hundreds of packets wait for each polling client: each long poll
    # carries 16 of them (chatlab.outbox), all python-engineio takes.
    clients = [await connect(f"c{i}", transports) for i in range(4)]
    sids = [client.get_sid() for client in clients]
    count = 600
    for n in range(count):
        await sio.emit("seq", n)
        if n % 7 == 0:
            await sio.emit("seq", n, to=sids[n % 4])  # one more copy, to one of them
        if n % 50 == 0:
            assert await clients[n % 4].call("echo", n, timeout=5) == n
    for i, client in enumerate(clients):
        expected = []
        for n in range(count):
            expected.append(n)
            if n % 7 == 0 and n % 4 == i:
                expected.append(n)
        await client.wait_for("seq", count=len(expected), timeout=20)
        assert [args[0] for args in client.received("seq")] == expected
    assert {socket.upgraded for socket in eio_sockets(sio)} == {"websocket" in transports}


@pytest.mark.parametrize("size", [0, 1, 118, 119, 120, 65520, 65535, 65536, 200_000])
async def test_frames_of_every_length_class_arrive_whole(size):
    """A websocket frame's length takes 7, 16 or 64 bits; the event's packet
    is 6 characters longer than its text (``42["m","..."]``)."""
    sio = socketio.AsyncServer(async_mode="aiohttp", max_http_buffer_size=1_000_000)
    async with serve_fast(sio, name="frames") as server:
        async with aiohttp.ClientSession() as http:
            async with await connect_websocket(http, server.url) as ws:
                text = "é" * (size // 2) + "x" * (size % 2)  # multi-byte characters too
                await sio.emit("m", text)
                await sio.emit("m", b"\x00\xffbinary")
                assert await ws.receive_str(timeout=5) == '42["m",' + socketio.packet.Packet.json.dumps(text, separators=(",", ":")) + "]"
                assert (await ws.receive_str(timeout=5)).startswith('451-["m",{"_placeholder":true')
                assert await ws.receive_bytes(timeout=5) == b"\x00\xffbinary"


async def test_a_client_that_stops_reading_gets_everything_in_order_when_it_reads_again(served):
    """Its socket's buffer fills, so packets queue for engineio's writer,
    which waits for the client to read. Messages keep coming while it
    catches up, and may not overtake the ones the writer holds."""
    sio, server, _connect = served
    chunk = "x" * 70_000  # more than aiohttp writes before it waits for a paused socket
    count = 600  # 42 MB: more than the kernel's socket buffers hold
    async with aiohttp.ClientSession() as http:
        async with await connect_websocket(http, server.url, max_msg_size=0) as ws:
            (socket,) = eio_sockets(sio)
            # The writer pauses on a buffer of 2 KiB, far below the 64 KiB
            # past which packets queue: it often holds packets while writing
            # straight to the socket would still be allowed.
            socket.queue._transport.set_write_buffer_limits(high=2048)
            queueing = asyncio.Event()

            async def send():
                for n in range(count):
                    await sio.emit("m", f"{n} {chunk}")
                    if socket.queue.qsize():
                        queueing.set()  # some had to wait for the writer
                    if n % 5 == 4:
                        await asyncio.sleep(0)  # let the client read meanwhile

            sending = asyncio.create_task(send())
            await asyncio.wait_for(queueing.wait(), 20)
            for n in range(count):
                message = await ws.receive_str(timeout=10)
                assert message.startswith(f'42["m","{n} ')
            await sending
            assert socket.queue.qsize() == 0
            await sio.emit("m", "after")
            assert await ws.receive_str(timeout=5) == '42["m","after"]'


async def test_a_connection_whose_messages_all_go_direct_outlives_the_ping_timeout():
    """engineio's writer closes a connection when nothing reaches its queue
    for a ping interval plus the ping timeout; pings still go through it."""
    sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=0.3, ping_timeout=0.3)
    async with serve_fast(sio, name="pings") as server:
        client = RecordingClient()
        await client.connect(server.url, transports=["websocket"])
        loop = asyncio.get_running_loop()
        until = loop.time() + 2.0  # more than three ping intervals and timeouts
        sent = 0
        while loop.time() < until:
            await sio.emit("tick", sent)
            sent += 1
            await client.wait_for("tick", count=sent)
            await asyncio.sleep(0.02)  # pacing, so that time passes in a few hundred ticks
        assert client.connected
        assert [args[0] for args in client.received("tick")] == list(range(sent))
        await client.shutdown()


async def test_with_websocket_compression_messages_take_the_queue_and_arrive():
    sio = socketio.AsyncServer(async_mode="aiohttp")
    async with serve_fast(sio, name="deflate", websocket_compression=True) as server:
        async with aiohttp.ClientSession() as http:
            async with await connect_websocket(http, server.url, compress=15) as ws:
                assert ws.compress
                for n in range(20):
                    await sio.emit("m", n)
                for n in range(20):
                    assert await ws.receive_str(timeout=5) == f'42["m",{n}]'
