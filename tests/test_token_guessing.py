"""A chat with a token against someone guessing it: each refused connect
closes its transport, so a guess costs a new connection, and an address
that keeps guessing is locked out for longer and longer, while a right
token from elsewhere gets in. Real sockets on 127.0.0.1 (and 127.0.0.2)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import AsyncIterator

import aiohttp
import pytest

import chatlab
from chatlab import ChatClient, ChatServer
from chatlab.ratelimit import Lockout

from test_flooding import frames_until, send_all
from wire import from_address

pytestmark = pytest.mark.integration


TOKEN = "open sesame"
TIMEOUT = aiohttp.ClientTimeout(total=10)
WS_PATH = "/socket.io/?EIO=4&transport=websocket"
POLL_PATH = "/socket.io/?EIO=4&transport=polling"
WRONG = '44{"message":"wrong token","data":{"token":"wrong"}}'
MISSING = '44{"message":"this chat needs a token","data":{"token":"missing"}}'


@pytest.fixture
async def locked() -> AsyncIterator[ChatServer]:
    chat = ChatServer(token=TOKEN)
    chat.running = await chat.serve(name="locked")  # type: ignore[attr-defined]
    yield chat
    await chatlab.shutdown()


async def guess_over_websocket(url: str, *frames: str) -> list[object]:
    """Open Engine.IO on a websocket, send ``frames`` at once, and return
    what comes back until the websocket closes."""
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        async with http.ws_connect(url + WS_PATH) as ws:
            assert (await ws.receive_str(timeout=5)).startswith("0{")
            await send_all(ws, list(frames))
            return await frames_until(ws)


async def test_a_wrong_token_closes_the_transport_and_nothing_more_gets_in_on_it(locked):
    right = '40{"token":"%s"}' % TOKEN
    frames = await guess_over_websocket(
        locked.running.url, '40{"token":"guess"}', *['40{"token":"again"}'] * 100, right)
    assert frames == [WRONG, "1", None], "refused once, then the goodbye and the close"
    assert locked.namespace.admitted == 0


async def test_a_missing_token_closes_the_transport_too(locked):
    assert await guess_over_websocket(locked.running.url, "40", "40") == [MISSING, "1", None]


async def test_over_long_polling_a_refused_connection_ends(locked):
    base = locked.running.url + POLL_PATH
    received: list[str] = []
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        async with http.get(base) as response:
            url = f"{base}&sid={json.loads((await response.text())[1:])['sid']}"

        async def poll() -> None:
            # A long-polling client always has a GET waiting.
            while True:
                async with http.get(url) as response:
                    if response.status != 200:  # the connection is gone
                        return
                    received.extend((await response.text()).split("\x1e"))
                    if "1" in received:  # engineio's goodbye
                        return

        polling = asyncio.create_task(poll())
        for attempt in ('40{"token":"guess"}', '40{"token":"%s"}' % TOKEN):
            async with http.post(url, data=attempt) as response:
                assert response.status in (200, 400)
        await asyncio.wait_for(polling, 5)
    assert received[0] == WRONG, received
    assert not [p for p in received if p.startswith("40")], "the right token did not get in on it"
    assert locked.namespace.admitted == 0


async def test_an_address_that_keeps_guessing_is_locked_out_and_others_are_not(locked, caplog):
    url = locked.running.url
    with caplog.at_level(logging.WARNING, logger="chatlab"):
        for n in range(5):
            with pytest.raises(ConnectionError, match="the server refused: wrong token"):
                await ChatClient(url).connect(auth={"token": f"guess {n}"})
    # Within the lockout, even the right token is refused, without comparing.
    with pytest.raises(ConnectionError, match=r"too many wrong tokens; try again in 1 s"):
        await ChatClient(url).connect(auth={"token": TOKEN})
    frames = await guess_over_websocket(url, '40{"token":"%s"}' % TOKEN)
    assert frames == ['44{"message":"too many wrong tokens; try again in 1 s",'
                      '"data":{"token":"wrong","retryAfter":1}}', "1", None]
    assert any("127.0.0.1 has sent too many wrong tokens" in record.getMessage()
               for record in caplog.records)
    # Someone else, from another address, with the right token.
    async with from_address("127.0.0.2") as elsewhere:
        ann = ChatClient(url, http_session=elsewhere)
        await ann.connect(auth={"token": TOKEN})
        try:
            await ann.add_user("ann")
            assert await ann.send("in, from elsewhere") == 1
        finally:
            await ann.disconnect()
    assert locked.namespace.wrong_tokens.locked_for("127.0.0.2") == 0


async def test_after_the_lockout_the_right_token_gets_in_and_clears_the_count(locked):
    tokens = locked.namespace.wrong_tokens = Lockout(free=1, first=0.25, longest=0.25)
    url = locked.running.url
    with pytest.raises(ConnectionError, match="wrong token"):
        await ChatClient(url).connect(auth={"token": "guess"})
    with pytest.raises(ConnectionError, match="too many wrong tokens"):
        await ChatClient(url).connect(auth={"token": TOKEN})
    # Waiting the lockout out is the behaviour under test.
    await asyncio.sleep(tokens.locked_for("127.0.0.1"))
    bob = ChatClient(url)
    await bob.connect(auth={"token": TOKEN})
    await bob.disconnect()
    assert len(tokens) == 0, "a right token clears the address"
