"""FanoutManager: python-socketio's broadcasts, without a task per recipient."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import socketio

import chatlab
from chatlab import RecordingClient
from chatlab.fast import FanoutManager
from fast_support import serve_fast

pytestmark = pytest.mark.integration


@pytest.fixture
async def fanout():
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=FanoutManager())

    @sio.event
    async def join(sid, room):
        await sio.enter_room(sid, room)
        return room

    @sio.event
    async def leave(sid, room):
        await sio.leave_room(sid, room)
        return room

    server = await serve_fast(sio, name="fanout")
    clients = []
    for name in ("ann", "bob", "cat"):
        client = RecordingClient(name)
        await client.connect(server.url, transports=["websocket"])
        clients.append(client)
    yield sio, clients, server.url
    for client in clients:
        await client.shutdown()
    await server.stop()


async def test_to_everyone_to_a_room_to_several_and_skipping(fanout):
    sio, (ann, bob, cat), _ = fanout
    await ann.call("join", "py", timeout=5)
    await bob.call("join", "py", timeout=5)
    await sio.emit("all", "hello")
    await sio.emit("room", "to py", room="py")
    await sio.emit("two", "to ann and cat", to=[ann.get_sid(), cat.get_sid()])
    await sio.emit("but", "not bob", skip_sid=bob.get_sid())
    await sio.emit("args", (1, "two", [3]))
    await sio.emit("none")
    for client in (ann, bob, cat):
        await client.wait_for("none")
    assert [ann.received(e) for e in ("all", "room", "two", "but", "args", "none")] == [
        [("hello",)], [("to py",)], [("to ann and cat",)], [("not bob",)],
        [(1, "two", [3])], [()]]
    assert bob.received("two") == [] and bob.received("but") == []
    assert cat.received("room") == []


async def test_a_room_s_recipients_follow_every_join_leave_disconnect_and_close(fanout):
    """The manager keeps each room's recipients between broadcasts; every
    change of who is in a room shows in the very next one."""
    sio, (ann, bob, cat), url = fanout
    marks = 0

    async def to_py_reaches(*expected: RecordingClient) -> None:
        nonlocal marks
        marks += 1
        await sio.emit("py", marks, room="py")
        # Then a mark to everyone still here: each connection gets its
        # packets in order, so one that got no "py" before it gets none.
        await sio.emit("mark", marks)
        for client in (ann, bob, cat):
            if client.connected:
                await client.wait_for("mark", count=marks)
        for client in (ann, bob, cat):
            got = marks in [args[0] for args in client.received("py")]
            assert got is (client in expected), (client.name, marks)

    await to_py_reaches()
    await ann.call("join", "py", timeout=5)
    await to_py_reaches(ann)
    await bob.call("join", "py", timeout=5)
    await to_py_reaches(ann, bob)
    await ann.call("leave", "py", timeout=5)
    await to_py_reaches(bob)
    await bob.disconnect()
    await to_py_reaches()
    await cat.call("join", "py", timeout=5)
    await to_py_reaches(cat)
    await sio.close_room("py")
    await to_py_reaches()
    late = RecordingClient("late")
    await late.connect(url, transports=["websocket"])
    await sio.emit("all", "to everyone, the late one too")
    for client in (ann, cat, late):
        await client.wait_for("all")
    await late.shutdown()


async def test_an_emit_that_wants_acknowledgements_still_gets_them(fanout):
    sio, (ann, _bob, _cat), _ = fanout
    ann.on("ask", lambda data: f"ann says {data}")
    answered = asyncio.get_running_loop().create_future()
    await sio.emit("ask", "hi", to=ann.get_sid(), callback=answered.set_result)
    assert await asyncio.wait_for(answered, 5) == "ann says hi"


async def test_a_websocket_client_offering_compression_gets_none_unless_asked():
    """aiohttp would accept permessage-deflate; the fast paths turn it off
    unless asked for websocket_compression=True, and a learner's server
    served plainly keeps aiohttp's own behaviour."""
    for compression, fast in ((False, True), (True, True), (True, False)):
        sio = socketio.AsyncServer(async_mode="aiohttp")
        name = f"deflate-{compression}-{fast}"
        server = await (serve_fast(sio, name=name, websocket_compression=compression) if fast
                        else chatlab.serve(sio, name=name))
        url = server.url + "/socket.io/?EIO=4&transport=websocket"
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url, compress=15) as ws:
                assert (await ws.receive_str()).startswith("0{")  # the handshake
                assert bool(ws.compress) is compression
        await server.stop()
