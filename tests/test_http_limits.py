"""Long-polling request bodies the chat server refuses, each with a status
and a sentence, instead of engineio's silent drop: too big (chunked as well
as sized), too slow, or more packets than any client needs; and bodies of
more packets than engineio decodes at once, handed on in parts. Real HTTP to a
real chat server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from typing import AsyncIterator

import aiohttp
import pytest

import chatlab
from chatlab import ChatServer, Limits, RunningServer, _compat, hardening
from chatlab.connections import ConnectionLimits

pytestmark = pytest.mark.integration

POLL_PATH = "/socket.io/?EIO=4&transport=polling"
TIMEOUT = aiohttp.ClientTimeout(total=10)
LIMIT = Limits().http_buffer_size
WITHIN = 10.0


@pytest.fixture
async def chat() -> AsyncIterator[ChatServer]:
    """A chat server that gives a request body a second to arrive."""
    chat = ChatServer(connections=ConnectionLimits(body_timeout=1.0))
    chat.running = await chat.serve(name="test-http-limits")  # type: ignore[attr-defined]
    yield chat
    await chatlab.shutdown()


@pytest.fixture
async def session(chat: ChatServer) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """An HTTP client and the URL of a long-polling session connected to "/"."""
    base = chat.running.url + POLL_PATH  # type: ignore[attr-defined]
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        async with http.get(base) as response:
            sid = json.loads((await response.text())[1:])["sid"]
        url = f"{base}&sid={sid}"
        async with http.post(url, data="40") as response:
            assert response.status == 200
        yield http, url


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    """A body sent chunked (no Content-Length)."""
    for part in parts:
        yield part


async def answer(stream: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> bytes:
    """What the server answers before it closes the connection."""
    reader, writer = stream
    try:
        return await asyncio.wait_for(reader.read(), WITHIN)
    except asyncio.TimeoutError:
        pytest.fail(f"no answer within {WITHIN:g} s")
    finally:
        writer.close()


async def test_a_chunked_body_over_the_limit_is_refused_413(session):
    http, url = session
    body = chunks(*([b"4" * 1024] * (LIMIT // 1024 + 1)))
    async with http.post(url, data=body) as response:
        assert response.status == 413
        assert f"over the limit of {LIMIT} bytes" in await response.text()


async def test_a_chunked_body_under_the_limit_is_read_whole(chat, session):
    http, url = session
    async with http.post(url, data=chunks(b'42["add', b'user","ann"]')) as response:
        assert response.status == 200
    async with http.get(url) as response:  # the answers to it
        assert response.status == 200
    assert chat.names() == ["ann"]


async def test_more_packets_than_engineio_takes_are_handed_on_in_parts(chat, session, capfd):
    # engineio decodes at most 16 packets from one body (and would lose a
    # bigger one without a word); a Python client's burst of quick emits
    # over long-polling is one body of them all.
    http, url = session
    most = _compat.polling_packet_limit()
    assert most == 16
    capfd.readouterr()
    body = ['42["adduser","ann"]'] + [f'42{n}["message","m{n}"]' for n in range(1, 30)]
    async with http.post(url, data="\x1e".join(body)) as response:
        assert response.status == 200
    acks: list[str] = []

    async def acknowledged() -> None:
        while len(acks) < 29:
            async with http.get(url) as response:
                assert response.status == 200
                acks.extend(p for p in (await response.text()).split("\x1e")
                            if p.startswith("43"))

    await asyncio.wait_for(acknowledged(), 5)
    assert chat.names() == ["ann"]
    stored = await chat.store.after(0)
    assert [message.text for message in stored] == [f"m{n}" for n in range(1, 30)]
    assert capfd.readouterr().err == ""
    assert not [line for line in chat.running.log if "post request handler error" in line]


async def test_a_body_of_more_packets_than_any_client_needs_is_refused_400(
        chat, session, capfd):
    http, url = session
    most = hardening.MOST_POLLING_PACKETS
    capfd.readouterr()
    async with http.post(url, data="\x1e".join(["3"] * (most + 1))) as response:
        assert response.status == 400
        assert await response.text() == (
            f"this request carries {most + 1} packets, and the server takes at most "
            f"{most} in one long-polling request: send them in several requests")
    # As many as it takes are taken, and the session goes on.
    # (pongs: a client answers pings with them)
    async with http.post(url, data="\x1e".join(['42["adduser","ann"]'] + ["3"] * (most - 1))) \
            as response:
        assert response.status == 200
    assert chat.names() == ["ann"]
    assert capfd.readouterr().err == ""
    assert not [line for line in chat.running.log if "post request handler error" in line]


@pytest.mark.parametrize("body,words", [
    pytest.param(b"42\xff\xfe", "not UTF-8 text", id="not-utf-8"),
    pytest.param(b"42[]\x1e\x1e3", "packet 2 of this request is not an Engine.IO packet",
                 id="empty-packet"),
    pytest.param(b"garbage", "packet 1 of this request is not an Engine.IO packet",
                 id="no-packet-type"),
    # engineio would close the session and hold the request until a poll came
    pytest.param(b"3\x1e6", "packet 2 of this request is not an Engine.IO packet a client sends",
                 id="noop"),
    pytest.param(b"2", "packet 1 of this request is not an Engine.IO packet a client sends",
                 id="ping"),
])
async def test_an_undecodable_polling_body_is_refused_400(chat, session, capfd, body, words):
    http, url = session
    capfd.readouterr()
    async with http.post(url, data=body) as response:
        assert response.status == 400
        assert words in await response.text()
    assert capfd.readouterr().err == ""
    assert not [line for line in chat.running.log if "post request handler error" in line]


@pytest.mark.parametrize("chunked", [False, True], ids=["sized", "chunked"])
async def test_a_body_that_trickles_is_answered_408(chat, session, chunked):
    _, url = session
    server: RunningServer = chat.running
    path = url.removeprefix(server.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: 100"
    writer.write(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 + framing + b"\r\n\r\n" + (b"2\r\n42\r\n" if chunked else b"42"))
    await writer.drain()
    response = await answer((reader, writer))
    assert response.startswith(b"HTTP/1.1 408"), response
    assert b"did not arrive whole within 1 s" in response
