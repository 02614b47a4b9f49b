"""chatlab.fast.eager_handlers: an event's handler starts in the task that
read the event, and becomes a task of its own only when it first waits:
no task for a handler that never waits, every handler started in order,
a waiting one not holding up the next event, its errors reported and its
task stopped with the server, as before."""

from __future__ import annotations

import asyncio

import pytest
import socketio

from chatlab import RecordingClient
from fast_support import serve_fast

pytestmark = pytest.mark.integration

EAGER = [True, False]
IDS = ["eager", "tasks"]


@pytest.mark.parametrize("eager", EAGER, ids=IDS)
async def test_a_handler_that_never_waits_has_no_task_of_its_own(eager):
    sio = socketio.AsyncServer(async_mode="aiohttp")
    tasks: list[asyncio.Task] = []

    @sio.event
    async def note(sid, n):
        tasks.append(asyncio.current_task())
        return n

    async with serve_fast(sio, name=f"no-task-{eager}", eager_handlers=eager) as server:
        client = RecordingClient(reconnection=False)
        await client.connect(server.url, transports=["websocket"])
        for n in range(5):
            assert await client.call("note", n, timeout=5) == n
        await client.shutdown()
    # Eager, every one ran in the connection's reading task; else each in its own.
    assert len(set(tasks)) == (1 if eager else 5)


@pytest.mark.parametrize("eager", EAGER, ids=IDS)
async def test_a_waiting_handler_goes_on_in_a_task_and_lets_the_next_event_through(eager):
    sio = socketio.AsyncServer(async_mode="aiohttp")
    started: list[int] = []
    opened = asyncio.Event()

    @sio.event
    async def wait_for_door(sid, n):
        started.append(n)
        reader = asyncio.current_task()
        await opened.wait()  # set by the next event, read while this waits
        return [n, asyncio.current_task() is not reader]

    @sio.event
    async def open_door(sid, n):
        started.append(n)
        opened.set()
        return n

    async with serve_fast(sio, name=f"waiting-{eager}", eager_handlers=eager) as server:
        client = RecordingClient(reconnection=False)
        await client.connect(server.url, transports=["websocket"])
        loop = asyncio.get_running_loop()
        waited = loop.create_future()
        await client.emit("wait_for_door", 0, callback=lambda *answer: waited.set_result(answer))
        assert await client.call("open_door", 1, timeout=5) == 1
        # Eager, it went on in another task than the one it started in.
        assert await asyncio.wait_for(waited, 5) == ([0, eager],)
        await client.shutdown()
    assert started == [0, 1]


async def test_handlers_start_in_the_order_their_events_were_sent():
    sio = socketio.AsyncServer(async_mode="aiohttp")
    started: list[int] = []

    @sio.event
    async def note(sid, n):
        started.append(n)
        if n % 3 == 0:
            await asyncio.sleep(0.001 * (n % 7))  # some wait, some not
        return n

    async with serve_fast(sio, name="in-order-eager") as server:
        client = RecordingClient(reconnection=False)
        await client.connect(server.url, transports=["websocket"])
        loop = asyncio.get_running_loop()
        answers = []
        for n in range(200):
            answers.append(loop.create_future())
            await client.emit("note", n, callback=answers[-1].set_result)
        assert await asyncio.wait_for(asyncio.gather(*answers), 10) == list(range(200))
        await client.shutdown()
    assert started == list(range(200))


@pytest.mark.parametrize("eager", EAGER, ids=IDS)
@pytest.mark.parametrize("waits", [False, True], ids=["at-once", "after-waiting"])
async def test_an_error_outside_the_handler_is_reported_as_before(eager, waits):
    """A handler's own errors are caught where it is called; an answer that
    cannot be encoded fails python-socketio's part, in the handling task,
    which is reported under the same name, eager or not."""
    sio = socketio.AsyncServer(async_mode="aiohttp")

    @sio.event
    async def unanswerable(sid):
        if waits:
            await asyncio.sleep(0)
        return object()  # not JSON

    async with serve_fast(sio, name=f"error-{eager}-{waits}", eager_handlers=eager) as server:
        server.report_errors = False
        client = RecordingClient(reconnection=False)
        await client.connect(server.url, transports=["websocket"])
        await client.emit("unanswerable", callback=lambda *_: None)
        [error] = await server.wait_for_errors(1)
        assert error.background
        assert error.event == "AsyncServer._handle_event_internal"
        assert isinstance(error.exception, TypeError)
        await client.shutdown()


async def test_a_waiting_handler_is_stopped_with_the_server():
    sio = socketio.AsyncServer(async_mode="aiohttp")
    waiting = asyncio.Event()
    ended: list[str] = []

    @sio.event
    async def wait_forever(sid):
        waiting.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise

    client = RecordingClient(reconnection=False)
    async with serve_fast(sio, name="stopped-eager") as server:
        await client.connect(server.url, transports=["websocket"])
        await client.emit("wait_forever")
        await asyncio.wait_for(waiting.wait(), 5)
    assert ended == ["cancelled"]
    assert not [task for task in asyncio.all_tasks()
                if "_carry_on" in repr(task.get_coro())]
    await client.shutdown()
