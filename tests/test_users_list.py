"""The users list in a crowd: one list per burst to the others, every
newcomer its own at once, and everyone the newest list in the end."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from chatlab import ChatServer, FastPaths
from chatlab.waiting import Changes
from wire import connect_websocket

pytestmark = pytest.mark.integration


class WireUser:
    """A user speaking Engine.IO/Socket.IO over a bare websocket: cheap
    enough to have 120 of them in one test."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[tuple[str, object]] = []
        self.changes = Changes()
        self._reading = asyncio.create_task(self._read())

    @classmethod
    async def join(cls, http: aiohttp.ClientSession, url: str, name: str) -> "WireUser":
        user = cls(await connect_websocket(http, url))
        await user.ws.send_str(json.dumps(["adduser", name], separators=(",", ":")).join(["42", ""]))
        return user

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            if frame.data == "2":
                await self.ws.send_str("3")  # pong
            elif frame.data.startswith("42"):
                event, *args = json.loads(frame.data[2:])
                self.events.append((event, args[0] if args else None))
                self.changes.notify()

    def lists(self) -> list[list[str]]:
        return [data for event, data in self.events if event == "users"]  # type: ignore[misc]

    async def wait_for_list(self, size: int) -> None:
        await self.changes.wait_until(lambda: any(len(names) == size for names in self.lists()),
                                      what=f"a users list of {size} names")

    async def close(self) -> None:
        self._reading.cancel()  # aiohttp allows one reader, and close() reads the reply
        await asyncio.gather(self._reading, return_exceptions=True)
        await self.ws.close()


@pytest.fixture
async def crowd():
    """A chat with 100 users in it, each having joined once the one
    before had its welcome (the 100th makes a crowd: its list may reach
    the others a moment later); the first one watches."""
    chat = ChatServer(fast=FastPaths(users_interval=0.2))
    server = await chat.serve(name="crowd")
    users: list[WireUser] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        for n in range(100):
            users.append(await WireUser.join(http, server.url, f"u{n}"))
            await users[-1].changes.wait_until(
                lambda: any(event == "private" for event, _ in users[-1].events))
        await users[0].wait_for_list(100)
        yield chat, http, server.url, users
        for user in users:
            await user.close()
    await server.stop()


async def test_below_a_hundred_users_every_change_goes_to_everyone_at_once(crowd):
    _chat, _http, _url, users = crowd
    assert [len(names) for names in users[0].lists()] == list(range(1, 101))


async def test_a_burst_of_joins_in_a_crowd_is_one_list_to_the_others(crowd):
    chat, http, url, users = crowd
    watcher = users[0]
    before = len(watcher.lists())
    newcomers = await asyncio.gather(*(WireUser.join(http, url, f"new{n}") for n in range(20)))
    users.extend(newcomers)
    for user in users:  # all 120 get the newest list
        await user.wait_for_list(120)
    assert chat.names() == [f"u{n}" for n in range(100)] + [
        name for name in chat.names() if name.startswith("new")]
    lists_to_watcher = len(watcher.lists()) - before
    assert 1 <= lists_to_watcher <= 5, lists_to_watcher  # 20 joins in about one interval
    for newcomer in newcomers:
        # Its own list at once, with its name, before its welcome.
        events = [event for event, _ in newcomer.events]
        welcome = events.index("private")
        name = newcomer.events[welcome][1]["name"]  # type: ignore[index]
        before_welcome = [data for event, data in newcomer.events[:welcome] if event == "users"]
        assert before_welcome and name in before_welcome[-1]


async def test_a_user_leaving_a_crowd_gets_a_list_at_once_and_the_others_theirs_soon(crowd):
    _chat, _http, _url, users = crowd
    leaving = users.pop()
    await leaving.close()
    for user in users[:10]:
        await user.wait_for_list(99)


@pytest.mark.parametrize("fast", [FastPaths(users_interval=0), False], ids=["interval-0", "plain"])
async def test_with_users_interval_0_every_join_is_a_list_to_everyone(fast):
    chat = ChatServer(fast=fast)
    server = await chat.serve(name="each-time")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        users = []
        for n in range(100):
            users.append(await WireUser.join(http, server.url, f"u{n}"))
            await users[-1].wait_for_list(n + 1)
        users.extend(await asyncio.gather(*(WireUser.join(http, server.url, f"new{n}")
                                            for n in range(20))))
        await users[0].wait_for_list(120)
        assert [len(names) for names in users[0].lists()] == list(range(1, 121))
        for user in users:
            await user.close()
    await server.stop()


@pytest.mark.parametrize("interval", [-1, 11, True, "0.1"])
def test_a_bad_users_interval_is_refused(interval):
    with pytest.raises(ValueError, match="users_interval"):
        FastPaths(users_interval=interval)
