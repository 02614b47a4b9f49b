"""chatlab.fast.inline_reads: a websocket's messages handled as they are
read, by the task that reads them: each once, in order, with pings still
answered, whatever the transport started as."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import socketio

from chatlab import RecordingClient
from fast_support import serve_fast
from wire import connect_websocket

pytestmark = pytest.mark.integration


def readers() -> set[asyncio.Task]:
    """The tasks in which engineio waits for a websocket's next packet."""
    return {task for task in asyncio.all_tasks()
            if task.get_coro().__qualname__.endswith("websocket_wait")}


def recording_server(**options) -> tuple[socketio.AsyncServer, list]:
    sio = socketio.AsyncServer(async_mode="aiohttp", **options)
    got: list = []

    @sio.event
    async def note(sid, n):
        got.append(n)
        return n

    return sio, got


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "engineio-loop"])
async def test_messages_are_handled_by_the_task_that_reads_them(inline):
    sio, got = recording_server()
    async with serve_fast(sio, name=f"reader-{inline}", inline_reads=inline) as server:
        client = RecordingClient(reconnection=False)
        await client.connect(server.url, transports=["websocket"])
        assert await client.call("note", 0, timeout=5) == 0
        before = readers()
        for n in range(1, 6):
            assert await client.call("note", n, timeout=5) == n
        # Inline, the same task reads on; engineio's loop makes one per packet.
        assert (readers() == before) is inline and (readers() & before == set()) is not inline
        assert got == list(range(6))
        await client.shutdown()


@pytest.mark.parametrize("transports", [["websocket"], ["polling", "websocket"]],
                         ids=["websocket", "upgraded"])
async def test_every_message_is_handled_once_in_order_and_acknowledged(transports):
    sio, got = recording_server()
    async with serve_fast(sio, name="in-order") as server:
        client = RecordingClient(reconnection=False)
        await client.connect(server.url, transports=transports)
        # Sent before, during and after an upgrade, some asking for an answer.
        loop = asyncio.get_running_loop()
        answers = []
        for n in range(300):
            if n % 3:
                await client.emit("note", n)
            else:
                answers.append(loop.create_future())
                await client.emit("note", n, callback=answers[-1].set_result)
        assert await asyncio.wait_for(asyncio.gather(*answers), 10) == list(range(0, 300, 3))
        assert await client.call("note", 300, timeout=10) == 300
        assert got == list(range(301))
        assert client.transport() == "websocket"
        await client.shutdown()


async def test_a_client_that_only_sends_still_answers_pings_and_stays():
    """engineio's loop gives a websocket ping_interval + ping_timeout to send
    something; read inline, messages do not count, and the pongs suffice."""
    sio, got = recording_server(ping_interval=0.3, ping_timeout=0.3)
    async with serve_fast(sio, name="pongs") as server:
        client = RecordingClient(reconnection=False)
        await client.connect(server.url, transports=["websocket"])
        loop = asyncio.get_running_loop()
        until, n = loop.time() + 2.0, 0  # more than three intervals and timeouts
        while loop.time() < until:
            await client.emit("note", n)
            n += 1
            if n % 20 == 0:
                assert await client.call("note", -n, timeout=5) == -n
        assert await client.call("note", "last", timeout=5) == "last"
        assert client.connected
        assert [x for x in got if isinstance(x, int) and x >= 0] == list(range(n))
        await client.shutdown()


async def test_a_message_over_the_size_limit_ends_the_connection():
    sio, got = recording_server(max_http_buffer_size=1000)
    left = asyncio.Event()
    sio.on("disconnect", lambda sid, reason=None: left.set())
    async with serve_fast(sio, name="too-large") as server:
        async with aiohttp.ClientSession() as http:
            async with await connect_websocket(http, server.url) as ws:
                await ws.send_str('42["note",1]')
                await ws.send_str('42["note","' + "x" * 2000 + '"]')
                while not ws.closed:
                    message = await ws.receive(timeout=5)
                    if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                        break
            await asyncio.wait_for(left.wait(), 5)
    assert got == [1]


async def test_a_connection_the_server_closes_while_its_client_sends_ends_cleanly():
    sio, got = recording_server()
    left = asyncio.Event()
    sio.on("disconnect", lambda sid, reason=None: left.set())
    async with serve_fast(sio, name="closed-mid-stream") as server:
        client = RecordingClient(reconnection=False)
        await client.connect(server.url, transports=["websocket"])
        sending = True

        async def send() -> None:
            n = 0
            while sending and client.connected:
                await client.emit("note", n)
                n += 1
                await asyncio.sleep(0)  # (the client's own tasks run meanwhile)

        sender = asyncio.create_task(send())
        await asyncio.wait_for(client.call("note", "first", timeout=5), 5)
        await sio.disconnect(client.get_sid())
        await asyncio.wait_for(left.wait(), 5)
        sending = False
        await sender
        await client.shutdown()
    numbers = [x for x in got if isinstance(x, int)]
    assert numbers == list(range(len(numbers))), "in order, none twice"
