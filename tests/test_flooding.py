"""A client that floods events: refused before decoding, told once per wait,
closed when it goes on, while everyone else keeps chatting. Raw websockets
and long-polling requests against the real chat server on 127.0.0.1 (no
timings are asserted: the benchmarks measure those)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest
import socketio

import chatlab
from chatlab import ChatClient, ChatServer, Limits
from chatlab.guards import ECHO, GuardedNamespace

from test_chat_refusals import joined
from wire import connect_websocket, from_address

pytestmark = pytest.mark.integration


TIMEOUT = aiohttp.ClientTimeout(total=10)
POLL_PATH = "/socket.io/?EIO=4&transport=polling"
# The most refusals a flood is told before it is closed, on a slow machine
# (on a fast one, one: the 40 refusals it may have all come within one wait).
MOST_WAITS = 5
FLOOD_REASON = ("closing this connection: it kept sending events after being told to wait "
                "(the limit is {rate:g} events a second, in bursts of {burst})")


async def served(chat: ChatServer, name: str) -> str:
    return (await chat.serve(name=name)).url


async def send_all(ws: aiohttp.ClientWebSocketResponse, frames: list[str | bytes]) -> int:
    """Send ``frames`` without reading anything; how many went out before
    the server closed the connection."""
    for sent, frame in enumerate(frames):
        try:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
        except ConnectionError:
            return sent
    return len(frames)


async def frames_until(ws: aiohttp.ClientWebSocketResponse, last: Any = None,
                       timeout: float = 5) -> list[Any]:
    """The frames received (pings answered, not listed) until ``last(frame)``
    holds or, without ``last``, until the websocket closes; then ``None``
    stands for the closing."""
    frames: list[Any] = []
    while True:
        message = await ws.receive(timeout=timeout)
        if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            frames.append(None)
            if last is None:
                return frames
            raise AssertionError(f"the websocket closed first; frames: {frames}")
        if message.data == "2":  # a ping
            await ws.send_str("3")
            continue
        frames.append(message.data)
        if last is not None and last(message.data):
            return frames


def errors_in(frames: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(f[2:])[1] for f in frames
            if isinstance(f, str) and f.startswith('42["error"')]


def acks_in(frames: list[Any]) -> dict[int, Any]:
    """Each acknowledgement's id and payload."""
    acks = {}
    for frame in frames:
        if isinstance(frame, str) and frame.startswith("43"):
            number = frame[2:frame.index("[")]
            acks[int(number)] = json.loads(frame[2 + len(number):])[0]
    return acks


async def victim_chats(victim: Any, messages: int) -> None:
    for n in range(messages):
        reply = await victim.call("message", f"still here {n}", timeout=5)
        assert reply["ok"] is True, reply


async def test_a_websocket_flood_is_told_once_and_closed_while_another_user_chats(
        raw, chat, chat_server, caplog):
    victim = await joined(raw, "victim")
    flood = [f'42{n}["message","flood {n}"]' for n in range(5000)]
    with caplog.at_level(logging.WARNING, logger="chatlab"):
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            async with await connect_websocket(http, chat_server.url) as ws:
                # The flooder reads nothing until it has sent everything.
                await asyncio.gather(send_all(ws, flood), victim_chats(victim, 5))
                frames = await frames_until(ws)
    errors = errors_in(frames)
    too_fast = [e for e in errors if "too fast" in e["reason"]]
    # One per wait it was told: one, or a few if the server was slow
    # enough for a wait to end during the flood.
    assert 1 <= len(too_fast) <= MOST_WAITS, too_fast
    assert too_fast[0]["event"] == "message"
    assert "at most 20 events a second (bursts of 40)" in too_fast[0]["reason"]
    assert isinstance(too_fast[0]["retryAfter"], float)
    assert errors[-1] == {"event": None, "reason": FLOOD_REASON.format(rate=20, burst=40)}
    # The burst was handled (and refused for want of adduser), each refusal
    # told acknowledged, and the rest of the 5,000 dropped unanswered.
    acks = acks_in(frames)
    assert set(range(40)) <= set(acks) and len(acks) <= 40 + 2 * MOST_WAITS, sorted(acks)
    assert [a for _, a in sorted(acks.items()) if "too fast" in a["reason"]] == too_fast
    assert frames[-2:] == ["1", None], "engineio's goodbye, then the websocket closed"
    assert any("kept sending events after being told to wait" in record.getMessage()
               and "127.0.0.1" in record.getMessage() for record in caplog.records)
    # Nothing of the flood was stored; the victim chats on.
    await victim_chats(victim, 1)
    assert await chat.store.count() == 6
    assert victim.received("error") == []
    assert chat.names() == ["victim"]


async def test_a_long_polling_flood_is_told_once_and_closed_while_another_user_chats(
        raw, chat, chat_server):
    victim = await joined(raw, "victim")
    base = chat_server.url + POLL_PATH
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        async with http.get(base) as response:
            url = f"{base}&sid={json.loads((await response.text())[1:])['sid']}"
        async with http.post(url, data="40") as response:
            assert response.status == 200
        received: list[str] = []
        ended = asyncio.Event()

        async def poll() -> None:
            # A long-polling client always has a GET waiting.
            while True:
                async with http.get(url) as response:
                    if response.status != 200:  # the connection is gone
                        break
                    packets = (await response.text()).split("\x1e")
                    received.extend(packets)
                    if "1" in packets:  # engineio's goodbye
                        break
            ended.set()

        async def flood() -> int:
            posts = 0
            for batch in range(100):
                body = "\x1e".join(f'42["message","flood {batch}-{n}"]' for n in range(10))
                async with http.post(url, data=body) as response:
                    if response.status != 200:
                        break
                posts += 1
                if ended.is_set():
                    break
            return posts

        polling = asyncio.create_task(poll())
        posts, _ = await asyncio.gather(flood(), victim_chats(victim, 5))
        await asyncio.wait_for(polling, 5)
    assert posts < 100, "the flood was cut short"
    errors = errors_in(received)
    assert 1 <= len([e for e in errors if "too fast" in e["reason"]]) <= MOST_WAITS, errors
    assert errors[-1] == {"event": None, "reason": FLOOD_REASON.format(rate=20, burst=40)}
    await victim_chats(victim, 1)
    assert await chat.store.count() == 6
    assert chat.names() == ["victim"]


async def test_one_refusal_per_wait_and_a_client_that_waits_gets_through():
    url = await served(ChatServer(limits=Limits(events_per_second=10, burst=3)), "per-wait")
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        async with await connect_websocket(http, url) as ws:
            await send_all(ws, [f'42{n}["join","lobby"]' for n in range(6)])
            frames = await frames_until(ws, lambda f: f.startswith("433"))
            told = acks_in(frames)[3]
            assert "too fast" in told["reason"] and told["retryAfter"] > 0
            # Waiting what it was told is the behaviour under test.
            await asyncio.sleep(told["retryAfter"])
            await ws.send_str('426["join","lobby"]')
            frames += await frames_until(ws, lambda f: f.startswith("436"))
    acks = acks_in(frames)
    assert sorted(acks) == [0, 1, 2, 3, 6], "4 and 5 were dropped unanswered"
    assert [a["reason"] for n, a in sorted(acks.items()) if n != 3] == [
        "send adduser with your name before joining a room"] * 4, "the namespace checked them"
    assert len([e for e in errors_in(frames) if "too fast" in e["reason"]]) == 1
    await chatlab.shutdown()


async def test_the_attachments_of_a_dropped_binary_event_are_dropped_with_it():
    url = await served(ChatServer(limits=Limits(events_per_second=4, burst=2)), "binary")
    binary = ['451-{n}["message",{{"_placeholder":true,"num":0}}]', b"\x00\x01"]
    frames_out = [frame if isinstance(frame, bytes) else frame.format(n=n)
                  for n in range(4) for frame in binary]
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        async with await connect_websocket(http, url) as ws:
            await send_all(ws, frames_out)
            frames = await frames_until(ws, lambda f: f.startswith("432"))
            told = acks_in(frames)[2]
            await asyncio.sleep(told["retryAfter"])
            await ws.send_str('424["join","lobby"]')
            frames += await frames_until(ws, lambda f: f.startswith("434"))
    acks = acks_in(frames)
    assert sorted(acks) == [0, 1, 2, 4], "3 was dropped, and its attachment with it"
    assert acks[2]["event"] == "message" and "too fast" in acks[2]["reason"]
    assert not any("could not read" in e["reason"] for e in errors_in(frames)), frames
    await chatlab.shutdown()


async def test_a_refusal_echoes_only_the_start_of_a_long_event_name(raw):
    client = await raw("long-name")
    name = "e" * 60_000
    reply = await client.call(name, "x", timeout=5)
    assert reply["event"] == "e" * ECHO + "…"
    assert "unknown event " + repr("e" * ECHO + "…") in reply["reason"]
    assert len(json.dumps(reply)) < 300
    await client.wait_for("error")
    assert client.received("error") == [(reply,)]


async def test_connecting_again_and_again_counts_as_a_flood(chat_server):
    # python-socketio answers each CONNECT to a namespace the connection is
    # already in with a CONNECT_ERROR; the gate counts them as events.
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        async with await connect_websocket(http, chat_server.url) as ws:
            await send_all(ws, ["40"] * 500)
            frames = await frames_until(ws)
    answers = [f for f in frames if isinstance(f, str) and f.startswith(("40", "44"))]
    assert answers == [], "no answer to any of them"
    assert errors_in(frames) == [{"event": None, "reason": FLOOD_REASON.format(rate=20, burst=40)}]
    assert frames[-2:] == ["1", None]


async def test_an_address_closed_for_flooding_is_locked_out_for_a_while_and_others_are_not(
        chat, chat_server, caplog):
    # A flooder that connects again at once gets a fresh burst (and a fresh
    # history): in the benchmark it came back 12 times a second, and that
    # cost the others more than the flood itself.
    with caplog.at_level(logging.WARNING, logger="chatlab"):
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            async with await connect_websocket(http, chat_server.url) as ws:
                await send_all(ws, ["40"] * 500)
                assert errors_in(await frames_until(ws))[-1]["reason"].startswith(
                    "closing this connection")
    assert any("connects from there are refused for 2 s" in record.getMessage()
               for record in caplog.records)
    again = ChatClient(chat_server.url)
    with pytest.raises(ConnectionError, match=(
            r"the server refused: this address's last connection was closed for flooding; "
            r"try again in 2 s")):
        await again.connect()
    assert chat.namespace.admitted == 0 and chat.delivery.waiting == 0
    # Someone else, from another address, gets in and chats.
    async with from_address("127.0.0.2") as elsewhere:
        ann = ChatClient(chat_server.url, http_session=elsewhere)
        await ann.connect()
        try:
            await ann.add_user("ann")
            assert await ann.send("in, from elsewhere") == 1
        finally:
            await ann.disconnect()


class Rooms(GuardedNamespace):
    """A guarded namespace on a server without the chat's gate."""

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        self.check_token(auth)
        self.admit(sid)

    async def on_disconnect(self, sid: str, reason: str | None = None) -> None:
        self.release(sid)

    async def on_join(self, sid: str, room: Any) -> dict[str, Any]:
        return {"ok": True}


async def test_without_the_gate_the_namespace_judges_the_same_way_after_decoding():
    namespace = Rooms(limits=Limits(events_per_second=5, burst=5))
    sio = socketio.AsyncServer(async_mode="aiohttp")
    sio.register_namespace(namespace)
    running = await chatlab.serve(sio, name="ungated")
    assert namespace.gate is None
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        async with await connect_websocket(http, running.url) as ws:
            await send_all(ws, [f'42{n}["join","lobby"]' for n in range(300)])
            frames = await frames_until(ws, lambda f: f.startswith("41"))
    acks = acks_in(frames)
    assert sorted(acks) == list(range(6))
    assert [acks[n] for n in range(5)] == [{"ok": True}] * 5
    assert "too fast" in acks[5]["reason"]
    assert errors_in(frames)[-1] == {"event": None, "reason": FLOOD_REASON.format(rate=5, burst=5)}
    assert namespace.admitted == 0
    await running.stop()
