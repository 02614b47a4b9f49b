"""Connections that never finish a request, and running out of file
descriptors: real sockets to a real chat server on 127.0.0.1, in this
process and, for the open-file limit, as ``python -m chatlab serve``."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import resource
import sys
from pathlib import Path
from typing import AsyncIterator, Callable

import aiohttp
import pytest

import chatlab
from chatlab import ChatClient, ChatServer
from chatlab.connections import (
    BACKLOG, FULL_RESPONSE, RESERVED_FILES, ConnectionLimits, default_max_connections)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
POLL_PATH = "/socket.io/?EIO=4&transport=polling"
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=5)
# Timeouts of a second in the tests; ten times that for anything to happen.
QUICK = ConnectionLimits(head_timeout=1.0, body_timeout=1.0)
WITHIN = 10.0

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def quick() -> AsyncIterator[ChatServer]:
    """A chat server whose connections get a second to send a request."""
    chat = ChatServer(connections=QUICK)
    chat.running = await chat.serve(name="test-connections")  # type: ignore[attr-defined]
    yield chat
    await chatlab.shutdown()


async def opened(port: int, data: bytes = b"") -> Stream:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if data:
        writer.write(data)
        await writer.drain()
    return reader, writer


async def read_to_end(stream: Stream, timeout: float = WITHIN) -> bytes:
    """Everything the server sends until it closes the connection (a reset
    counts as closed); fails if it is still open after ``timeout``."""
    reader, writer = stream

    async def read_all() -> bytes:
        chunks: list[bytes] = []
        try:
            while chunk := await reader.read(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(read_all(), timeout)
    except asyncio.TimeoutError:
        pytest.fail(f"the server kept the connection open for {timeout:g} s")
    finally:
        writer.close()


async def until(condition: Callable[[], bool], what: str, timeout: float = WITHIN) -> None:
    """Wait until ``condition()`` holds (it reads server state that no
    event announces), checking every 10 ms."""
    async def check() -> None:
        while not condition():
            await asyncio.sleep(0.01)
    try:
        await asyncio.wait_for(check(), timeout)
    except asyncio.TimeoutError:
        pytest.fail(f"not within {timeout:g} s: {what}")


# -- requests that never come, or never end ---------------------------------


async def test_a_connection_that_sends_nothing_is_closed(quick):
    assert await read_to_end(await opened(quick.running.port)) == b""
    await until(lambda: quick.connections.open == 0, "the connection is let go")


async def test_a_request_head_that_never_ends_is_closed(quick):
    stream = await opened(quick.running.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert await read_to_end(stream) == b""


async def test_a_request_head_sent_a_byte_at_a_time_is_closed(quick):
    head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000
    reader, writer = stream = await opened(quick.running.port)

    async def trickle() -> None:
        for byte in head:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)  # the pace of a slow sender, not a wait

    sending = asyncio.create_task(trickle())
    try:
        assert await read_to_end(stream) == b""
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)


async def test_an_idle_keep_alive_connection_is_closed(quick):
    stream = await opened(
        quick.running.port, b"GET /static/chat.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = await read_to_end(stream)
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:100]


async def test_a_long_poll_and_a_websocket_outlast_the_timeouts(quick):
    """Both have sent their whole request: waiting for data is not idling."""
    ann = ChatClient(quick.running.url)
    await ann.connect()
    await ann.add_user("ann")
    ann_id = ann.id
    base = quick.running.url + POLL_PATH
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as response:
            sid = json.loads((await response.text())[1:])["sid"]
        url = f"{base}&sid={sid}"
        async with http.post(url, data="40") as response:
            assert response.status == 200

        async def poll() -> str:
            async with http.get(url) as response:
                assert response.status == 200
                return await response.text()

        # Poll until a poll waits (the first ones collect the connect reply
        # and the history), for three head timeouts.
        for _ in range(5):
            waiting = asyncio.create_task(poll())
            done, _ = await asyncio.wait({waiting}, timeout=3 * QUICK.head_timeout)
            if not done:
                break
            waiting.result()
        else:
            pytest.fail("every poll was answered at once")
        await quick.sio.emit("note", "for the patient")
        assert "for the patient" in await asyncio.wait_for(waiting, WITHIN)

    await ann.send("still here")
    await ann.wait_for_message(text="still here")
    assert ann.id == ann_id  # the same connection all along
    await ann.disconnect()


# -- the most connections held at once -------------------------------------------


def test_the_most_connections_leaves_the_backlog_and_a_reserve():
    assert default_max_connections(1024) == 1024 - BACKLOG - RESERVED_FILES
    assert default_max_connections(100) == 16  # never fewer


def test_connection_limits_are_checked():
    with pytest.raises(ValueError, match="head_timeout"):
        ConnectionLimits(head_timeout=0)
    with pytest.raises(ValueError, match="max_connections"):
        ConnectionLimits(max_connections=0)


async def test_a_full_server_refuses_newcomers_and_keeps_serving_those_in(caplog):
    chat = ChatServer(connections=ConnectionLimits(max_connections=4))
    server = await chat.serve(name="test-connections-full")
    idle: list[Stream] = []
    try:
        ann = ChatClient(server.url)
        await ann.connect()
        await ann.add_user("ann")
        idle = [await opened(server.port) for _ in range(3)]
        await until(lambda: chat.connections.open == 4, "four connections held")

        with caplog.at_level(logging.WARNING, logger="chatlab"):
            refused = [await read_to_end(await opened(server.port)) for _ in range(3)]
        assert refused == [FULL_RESPONSE] * 3
        assert b"503 Service Unavailable" in FULL_RESPONSE
        assert b"try again in a moment" in FULL_RESPONSE
        full = [record for record in caplog.records if "refusing new ones" in record.getMessage()]
        assert len(full) == 1, caplog.text  # once for the burst
        assert chat.connections.refused == 3

        await ann.send("still served")
        await ann.wait_for_message(text="still served")

        idle.pop()[1].close()
        await until(lambda: chat.connections.open == 3, "a place free")
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
            async with http.get(server.url + "/") as response:
                assert response.status == 200
        await ann.disconnect()
    finally:
        for _, writer in idle:
            writer.close()
        await server.stop()


# -- the open-file limit, in a process of its own -----------------------------------

URL_LINE = re.compile(rb"^chatlab chat server on (http://127\.0\.0\.1:(\d+)/)")
FLOOD = 300  # more connections than the server may open files


async def serve_limited(soft: int, hard: int, *args: str) -> tuple[asyncio.subprocess.Process, str]:
    """``python -m chatlab serve`` with an open-file limit of ``soft`` (and
    ``hard``), once it has printed its URL."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chatlab", "serve", "--port", "0", *args,
        cwd=ROOT, preexec_fn=limit,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    match = URL_LINE.match(line)
    if match is None:
        process.kill()
        _, error = await process.communicate()
        pytest.fail(f"chatlab serve printed {line!r}; stderr: {error.decode()!r}")
    return process, match.group(1).decode()


async def stopped(process: asyncio.subprocess.Process) -> str:
    """Stop the server; what it printed on stderr."""
    if process.returncode is None:
        process.terminate()
    _, error = await asyncio.wait_for(process.communicate(), 15)
    return error.decode()


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="reads /proc")
async def test_chatlab_serve_raises_its_open_file_limit_to_the_hard_one():
    process, _ = await serve_limited(200, 300)
    try:
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        assert re.search(r"Max open files\s+300\s+300", limits), limits
    finally:
        await stopped(process)


async def test_chatlab_serve_out_of_file_descriptors_refuses_newcomers_cleanly():
    # 256 files: at most 64 connections (256 less 128 for the listening
    # backlog and 64 for the rest), which the flood fills.
    process, url = await serve_limited(256, 256, "--request-timeout", "5")
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    ann = ChatClient(url)
    flood: list[Stream] = []
    try:
        await ann.connect()
        await ann.add_user("ann")
        ann_id = ann.id
        flood = [await opened(port) for _ in range(FLOOD)]
        answers = await asyncio.gather(*(read_to_end(stream, 30) for stream in flood))
        refused = answers.count(FULL_RESPONSE)
        held = answers.count(b"")
        assert refused + held == FLOOD, {answer[:60] for answer in answers}
        assert held <= 63 and refused >= FLOOD - 63  # the most is 64, ann's included
        await ann.send("still served")
        await ann.wait_for_message(text="still served")

        # The idle ones closed by the timeout, a newcomer gets in.
        bob = ChatClient(url)
        await bob.connect()
        await bob.add_user("bob")
        await bob.wait_for_users(names=["ann", "bob"])
        assert ann.id == ann_id  # her websocket outlived the timeouts
        await bob.disconnect()
        await ann.disconnect()
    finally:
        for _, writer in flood:
            writer.close()
        error = await stopped(process)
    assert error.count("refusing new ones") == 1, error  # once for the burst
    assert "Too many open files" not in error and "out of system resource" not in error, error
