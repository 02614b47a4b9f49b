"""chatlab.serve runs a learner's own AsyncServer on the running loop."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading

import aiohttp
import pytest
import socketio

import chatlab
from chatlab import PortInUseError, RecordingClient, serve

pytestmark = pytest.mark.integration


def make_sio() -> socketio.AsyncServer:
    sio = socketio.AsyncServer(async_mode="aiohttp")

    @sio.event
    async def echo(sid, data=None):
        return data

    return sio


async def refuses_connections(url: str) -> bool:
    async with aiohttp.ClientSession() as session:
        try:
            await session.get(f"{url}/socket.io/?EIO=4&transport=polling")
        except aiohttp.ClientConnectionError:
            return True
    return False


@pytest.fixture(autouse=True)
async def no_servers_left():
    yield
    await chatlab.shutdown()
    assert chatlab.running_servers() == {}


async def test_serves_on_a_free_port_of_127_0_0_1_and_stops():
    server = await serve(make_sio(), name="basic")
    assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
    assert chatlab.running_servers() == {"basic": server}
    client = RecordingClient()
    await client.connect(server.url)
    assert await client.call("echo", {"x": 1}, timeout=5) == {"x": 1}
    await server.stop()
    assert not server.running
    await client.wait_for("disconnect")
    assert await refuses_connections(server.url)
    await server.stop()  # idempotent
    await client.shutdown()


async def test_stop_from_several_tasks_at_once():
    server = await serve(make_sio(), name="concurrent")
    await asyncio.gather(server.stop(), server.stop(), server.stop())
    assert not server.running


async def test_async_with_stops_on_exit():
    async with serve(make_sio(), name="scoped") as server:
        assert server.running
    assert not server.running
    assert await refuses_connections(server.url)


async def test_rerunning_under_the_same_name_replaces_the_old_server():
    sio = make_sio()
    first = await serve(sio, name="cell")
    client = RecordingClient(reconnection=False)
    await client.connect(first.url)
    # the learner re-runs the cell: same name, maybe the same sio object
    second = await serve(sio, name="cell")
    assert not first.running and second.running
    assert chatlab.running_servers() == {"cell": second}
    assert await refuses_connections(first.url)
    await client.wait_for("disconnect")
    await client.connect(second.url)
    assert await client.call("echo", "again", timeout=5) == "again"
    await client.shutdown()


async def test_rerunning_on_the_same_fixed_port_does_not_fail():
    first = await serve(make_sio(), name="fixed")
    port = first.port
    second = await serve(make_sio(), name="fixed", port=port)
    assert second.port == port and not first.running


async def test_one_sio_under_two_names_is_refused_clearly():
    sio = make_sio()
    await serve(sio, name="one")
    with pytest.raises(RuntimeError, match="already served as 'one'"):
        await serve(sio, name="two")


async def test_a_fixed_port_taken_by_another_program_raises_a_clear_error():
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 is already in use"):
            await serve(make_sio(), name="clash", port=port)
    assert chatlab.running_servers() == {}


class ClientLoop:
    """Clients on an event loop of their own, in a thread, so that the
    server's loop holds only the server's tasks (as when clients live
    elsewhere)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def run(self, coroutine):
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    async def close(self) -> None:
        async def settle() -> None:
            # python-socketio's client leaves its write loop waiting for a
            # while after the server hung up; end it rather than wait.
            others = asyncio.all_tasks() - {asyncio.current_task()}
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        await self.run(settle())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def test_stop_leaves_no_tasks_with_clients_still_connected():
    before = asyncio.all_tasks()
    server = await serve(make_sio(), name="busy")
    elsewhere = ClientLoop()
    clients = [RecordingClient(f"c{i}", reconnection=False) for i in range(3)]
    try:
        for i, client in enumerate(clients):
            transports = ["polling"] if i == 0 else None
            await elsewhere.run(client.connect(server.url, transports=transports))
            assert await elsewhere.run(client.call("echo", i, timeout=5)) == i
        await server.stop()
        assert asyncio.all_tasks() - before == set()
        for client in clients:
            await elsewhere.run(client.wait_for("disconnect"))
    finally:
        for client in clients:
            await elsewhere.run(client.shutdown())
        await elsewhere.close()


async def test_a_connection_opened_while_the_server_stops_is_refused():
    """Until stop() closes the listener, a client reconnecting at once would
    get a new connection that stop() then cuts off mid-handler."""
    sio = make_sio()
    leaving = asyncio.Event()
    let_go = asyncio.Event()

    @sio.event
    async def disconnect(sid, reason=None):
        leaving.set()
        await let_go.wait()  # stop() is now busy dropping this client

    server = await serve(sio, name="stopping")
    client = RecordingClient(reconnection=False)
    await client.connect(server.url, transports=["websocket"])
    stopping = asyncio.create_task(server.stop())
    await asyncio.wait_for(leaving.wait(), 5)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/socket.io/?EIO=4&transport=polling") as response:
            assert (response.status, await response.text()) == (503, "the server is stopping")
    let_go.set()
    await stopping
    await client.shutdown()


async def test_a_handler_cancelled_by_stop_sends_no_empty_acknowledgement():
    """python-socketio acknowledges a cancelled handler as if it had returned
    None; a client would take that for the answer instead of retrying."""
    sio = make_sio()
    started = asyncio.Event()

    @sio.event
    async def slow(sid, data=None):
        started.set()
        await asyncio.Event().wait()

    server = await serve(sio, name="cancelled")
    client = RecordingClient(reconnection=False)
    await client.connect(server.url, transports=["websocket"])
    answers: list[object] = []
    try:
        await client.emit("slow", callback=lambda *data: answers.append(data))
        await asyncio.wait_for(started.wait(), 5)
        for task in list(server._tasks):  # as stop() ends a handler
            task.cancel()
        # An acknowledgement sent for the cancelled handler would have gone
        # out before the echo's answer, on the same websocket, and the client
        # handles acknowledgements in the order they arrive.
        assert await client.call("echo", "still here", timeout=5) == "still here"
        assert answers == []
    finally:
        await client.shutdown()
        await server.stop()


async def test_handler_errors_are_recorded_with_a_hint(caplog):
    sio = make_sio()

    @sio.event
    async def needs_data(sid, data):
        return data

    @sio.event
    async def broken(sid, data=None):
        raise ValueError("bad handler")

    server = await serve(sio, name="errors")
    client = RecordingClient()
    await client.connect(server.url)
    await client.emit("needs_data")
    await client.emit("broken", 1)
    errors = await server.wait_for_errors(2)
    by_event = {error.event: error for error in errors}
    assert "give the data parameter a default" in str(by_event["needs_data"])
    assert "async def needs_data(sid, data=None)" in str(by_event["needs_data"])
    assert str(by_event["broken"]) == "the handler for 'broken' raised ValueError: bad handler"
    assert by_event["broken"].sid == client.get_sid()
    assert "chatlab server 'errors'" in caplog.text
    with pytest.raises(RuntimeError, match="needs_data"):
        server.raise_errors()
    # the server goes on serving
    assert await client.call("echo", "ok", timeout=5) == "ok"
    await client.shutdown()


async def test_a_failing_connect_handler_refuses_and_is_recorded():
    sio = make_sio()

    @sio.event
    async def connect(sid, environ, auth=None):
        if auth == "crash":
            raise KeyError("oops")
        if auth != "let me in":
            raise socketio.exceptions.ConnectionRefusedError("wrong password")

    server = await serve(sio, name="gate")
    client = RecordingClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, auth="nope")
    assert client.received("connect_error") == [({"message": "wrong password"},)]
    assert server.errors == [], "refusing on purpose is not an error"
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, auth="crash")
    [error] = await server.wait_for_errors(1)
    assert error.event == "connect" and isinstance(error.exception, KeyError)
    await client.connect(server.url, auth="let me in")
    await client.shutdown()


async def test_quiet_servers_keep_library_log_lines_off_stderr(capfd):
    server = await serve(make_sio(), name="quiet")
    async with aiohttp.ClientSession() as session:
        response = await session.get(
            f"{server.url}/socket.io/?EIO=4&transport=polling",
            headers={"Origin": "https://foreign.example"})
        assert response.status == 400
    assert capfd.readouterr().err == ""
    assert any("not an accepted origin" in line for line in server.log)


async def test_stopping_restores_the_server_object():
    sio = make_sio()
    dispatcher = sio._trigger_event
    server = await serve(sio, name="restore")
    assert sio._trigger_event != dispatcher
    await server.stop()
    assert sio._trigger_event == dispatcher
    assert "start_background_task" not in vars(sio.eio)


LEARNER_SERVER = """
import asyncio, sys
import engineio.payload, socketio
import chatlab

async def main():
    sio = socketio.AsyncServer(async_mode="aiohttp")
    transports = dict(sio.eio._async)
    before = dict(vars(sio)), dict(vars(sio.eio))

    def changed():
        # attributes added or replaced on the server objects (values that
        # python-socketio itself sets later, such as counters, are not callables)
        return sorted(name for obj, old in zip((sio, sio.eio), before)
                      for name, value in vars(obj).items()
                      if old.get(name) is not value and (callable(value) or name == "logger"))

    @sio.event
    async def echo(sid, data=None):
        await sio.emit("echo", data)

    server = await chatlab.serve(sio, name="plain")
    client = chatlab.RecordingClient()
    await client.connect(server.url, transports=["websocket"])
    await client.emit("echo", "hi")
    await client.wait_for("echo")
    (socket,) = sio.eio.sockets.values()
    print("queue:", type(socket.queue).__module__, type(socket.queue).__name__)
    print("transports unchanged:", sio.eio._async == transports)
    print("manager:", type(sio.manager).__module__)
    print("changed while running:", changed())
    await client.shutdown()
    await server.stop()
    print("changed after stop:", changed())
    print("polling packets, a ChatServer made:", [chatlab.ChatServer(), engineio.payload.Payload.max_decode_packets][-1])

asyncio.run(main())
"""


async def test_a_learners_server_runs_as_python_socketio_ships_it():
    """Nothing process-wide, no transport or queue of chatlab's, and only the
    documented seams while it runs (in a process of its own, so that nothing
    another test did can hide a change)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LEARNER_SERVER,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert out.decode().splitlines() == [
        "queue: asyncio.queues Queue",
        "transports unchanged: True",
        "manager: socketio.async_manager",
        # the handler-error seam, the task tracking stop() needs, and the
        # loggers a quiet server keeps its lines in
        "changed while running: ['_trigger_event', 'logger', 'logger', 'start_background_task']",
        "changed after stop: []",
        "polling packets, a ChatServer made: 16",
    ]
    assert err.decode() == ""


async def test_servers_that_cannot_run_here_are_refused_clearly():
    with pytest.raises(TypeError, match="needs a socketio.AsyncServer, not Server"):
        serve(socketio.Server())
    with pytest.raises(ValueError, match="async_mode='asgi'"):
        serve(socketio.AsyncServer(async_mode="asgi"))


async def test_an_ipv6_address_is_bracketed_in_the_url():
    server = await serve(make_sio(), name="ipv6", host="::1")
    assert server.url == f"http://[::1]:{server.port}"
    client = RecordingClient()
    await client.connect(server.url)
    assert await client.call("echo", "v6", timeout=5) == "v6"
    await client.shutdown()


async def test_an_older_two_argument_connect_handler_still_works():
    sio = make_sio()
    seen = []

    @sio.event
    async def connect(sid, environ):
        seen.append(sid)

    server = await serve(sio, name="legacy")
    client = RecordingClient()
    await client.connect(server.url)
    assert seen == [client.get_sid()] and server.errors == []
    await client.shutdown()


async def test_shutdown_closes_recording_clients_too():
    server = await serve(make_sio(), name="closing")
    client = RecordingClient()
    await client.connect(server.url)
    await chatlab.shutdown()
    assert not client.connected and not server.running


@pytest.mark.parametrize("takes_auth", [True, False], ids=["with-auth", "two-argument"])
async def test_a_connect_handler_that_fails_without_auth_reports_its_own_error(takes_auth):
    """python-socketio calls a connect handler again without auth when it
    raises TypeError: the error reported is the handler's, not the retry's."""
    sio = make_sio()
    if takes_auth:
        @sio.event
        async def connect(sid, environ, auth):
            return auth["serverOffset"] >= 0  # auth is None: TypeError
    else:
        @sio.event
        async def connect(sid, environ):
            return len(5)  # TypeError inside the handler

    server = await serve(sio, name="auth-typeerror")
    client = RecordingClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url)
    [error] = await server.wait_for_errors(1)
    expected = "not subscriptable" if takes_auth else "has no len()"
    assert expected in str(error), str(error)
    await client.shutdown()
    await server.stop()


async def test_an_error_in_a_background_task_is_recorded():
    sio = make_sio()

    async def replay(sid):
        raise RuntimeError("replay went wrong")

    @sio.event
    async def connect(sid, environ, auth=None):
        sio.start_background_task(replay, sid)

    server = await serve(sio, name="background")
    client = RecordingClient()
    await client.connect(server.url)
    [error] = await server.wait_for_errors(1)
    assert error.background and "replay" in error.event
    assert str(error).startswith("the background task")
    assert str(error).endswith("raised RuntimeError: replay went wrong")
    await client.shutdown()
    await server.stop()
