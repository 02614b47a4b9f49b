"""chatlab.fast.users_list.UsersAnnouncer on its own: what it asks the server
to send, and to whom, as users come and go. (tests/test_users_list.py
checks the same with a real server and a crowd of real connections.)"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from chatlab.fast.users_list import UsersAnnouncer

pytestmark = pytest.mark.unit


EVERYONE = None  # emit()'s ``to`` for a list to every connection
TIMEOUT = 5.0  # seconds a test may wait for a list that is due much sooner


class Recorder:
    """Takes the server's place: records each ``emit`` the announcer makes,
    and runs what it starts with ``start_background_task`` as a task."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str], str | None]] = []
        self.sent_at: list[float] = []  # loop time of each
        self.background: list[tuple[Callable[..., Awaitable[Any]], tuple[Any, ...]]] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self._sent_to_everyone = asyncio.Event()

    async def emit(self, event: str, data: list[str], to: str | None = None) -> None:
        self.sent.append((event, list(data), to))
        self.sent_at.append(asyncio.get_running_loop().time())
        if to is EVERYONE:
            self._sent_to_everyone.set()

    def start_background_task(self, target: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self.background.append((target, args))
        self.tasks.append(asyncio.ensure_future(target(*args)))

    def to_everyone(self) -> list[list[str]]:
        return [data for _, data, to in self.sent if to is EVERYONE]

    async def wait_for_lists_to_everyone(self, count: int) -> None:
        async def enough() -> None:
            while len(self.to_everyone()) < count:
                self._sent_to_everyone.clear()
                await self._sent_to_everyone.wait()

        await asyncio.wait_for(enough(), TIMEOUT)


class Chat:
    """The names the announcer lists, changed the way the server does: the
    list first, then ``changed(sid)``."""

    def __init__(self, names: list[str], interval: float, crowd: int) -> None:
        self.names = list(names)
        self.server = Recorder()
        self.announcer = UsersAnnouncer(
            self.server, lambda: list(self.names), interval=interval, crowd=crowd)  # type: ignore[arg-type]

    async def join(self, name: str) -> None:
        self.names.append(name)
        await self.announcer.changed(f"sid-{name}")

    async def leave(self, name: str) -> None:
        self.names.remove(name)
        await self.announcer.changed(f"sid-{name}")


@pytest.fixture
async def chats() -> AsyncIterator[Callable[..., Chat]]:
    made: list[Chat] = []

    def make(names: list[str], *, interval: float, crowd: int) -> Chat:
        made.append(Chat(names, interval, crowd))
        return made[-1]

    yield make
    # A test that failed midway leaves no list waiting to go out.
    tasks = [task for chat in made for task in chat.server.tasks]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def users(*names: str) -> list[str]:
    return sorted(names)


async def test_below_the_crowd_every_change_goes_to_everyone_at_once(chats):
    chat = chats([], interval=60, crowd=3)
    await chat.join("ann")
    await chat.join("bob")
    await chat.leave("ann")
    await chat.join("cat")
    assert chat.server.sent == [
        ("users", ["ann"], EVERYONE),
        ("users", ["ann", "bob"], EVERYONE),
        ("users", ["bob"], EVERYONE),
        ("users", ["bob", "cat"], EVERYONE),
    ]
    assert chat.server.background == [], "nothing is left for later"


async def test_reaching_the_crowd_within_the_interval_holds_the_others_list_back(chats):
    chat = chats(["ann"], interval=60, crowd=3)
    await chat.join("bob")
    await chat.join("cat")  # three listed: the crowd
    assert chat.server.sent == [
        ("users", ["ann", "bob"], EVERYONE),
        ("users", ["ann", "bob", "cat"], "sid-cat"),
    ]
    [(_, (wait,))] = chat.server.background
    assert 59 < wait <= 60, "due a minute after the list to everyone"


async def test_with_interval_0_every_change_goes_to_everyone_even_in_a_crowd(chats):
    chat = chats(["ann", "bob", "cat"], interval=0, crowd=2)
    for name in ("dan", "eve", "fay"):
        await chat.join(name)
    await chat.leave("dan")
    assert [to for _, _, to in chat.server.sent] == [EVERYONE] * 4
    assert chat.server.to_everyone()[-1] == ["ann", "bob", "cat", "eve", "fay"]
    assert chat.server.background == []


async def test_in_a_crowd_a_burst_is_one_list_to_the_others_at_the_end_of_the_interval(chats):
    interval = 0.3
    chat = chats(["ann", "bob"], interval=interval, crowd=3)
    loop = asyncio.get_running_loop()
    await chat.join("cat")  # three listed: a crowd, after a quiet spell
    assert chat.server.sent == [("users", ["ann", "bob", "cat"], EVERYONE)]
    first_at = chat.server.sent_at[0]

    # Within the interval: each changed user gets its own list at once, the
    # others nothing yet.
    await chat.join("dan")
    await chat.leave("bob")
    await chat.join("eve")
    assert chat.server.sent[1:] == [
        ("users", ["ann", "bob", "cat", "dan"], "sid-dan"),
        ("users", ["ann", "cat", "dan"], "sid-bob"),
        ("users", ["ann", "cat", "dan", "eve"], "sid-eve"),
    ]
    # One list is due, at the end of the interval since the last to everyone.
    [(_, (wait,))] = chat.server.background
    assert 0 < wait <= interval
    assert loop.time() < first_at + interval, "the burst was within the interval"

    await chat.server.wait_for_lists_to_everyone(2)
    assert chat.server.sent[4:] == [("users", ["ann", "cat", "dan", "eve"], EVERYONE)]
    assert chat.server.sent_at[4] >= first_at + interval - 0.01, "not before the interval ended"
    assert len(chat.server.background) == 1


async def test_the_list_at_the_end_of_the_interval_is_the_newest(chats):
    chat = chats(["ann", "bob"], interval=0.2, crowd=2)
    await chat.join("cat")
    await chat.join("dan")  # the end-of-interval list is due from here
    await chat.leave("cat")
    await chat.leave("dan")  # back to where it was: still one list, the newest
    await chat.server.wait_for_lists_to_everyone(2)
    assert chat.server.to_everyone() == [["ann", "bob", "cat"], ["ann", "bob"]]


async def test_after_the_list_at_the_end_of_an_interval_a_new_interval_begins(chats):
    interval = 0.2
    chat = chats(["ann", "bob"], interval=interval, crowd=2)
    await chat.join("cat")
    await chat.join("dan")
    await chat.server.wait_for_lists_to_everyone(2)
    # The list to everyone just went out: the next change is within the
    # interval again, and its list to everyone waits for the end of it.
    await chat.join("eve")
    assert chat.server.sent[-1] == ("users", ["ann", "bob", "cat", "dan", "eve"], "sid-eve")
    assert len(chat.server.background) == 2
    await chat.server.wait_for_lists_to_everyone(3)
    assert chat.server.to_everyone()[-1] == ["ann", "bob", "cat", "dan", "eve"]
    assert chat.server.sent_at[-1] - chat.server.sent_at[-3] >= interval - 0.01


async def test_after_a_quiet_spell_the_first_change_goes_to_everyone_at_once(chats):
    interval = 0.1
    chat = chats(["ann", "bob"], interval=interval, crowd=2)
    await chat.join("cat")
    # The quiet spell itself, not a wait for anything to happen: nothing
    # changes for longer than the interval.
    await asyncio.sleep(interval * 2)
    await chat.join("dan")
    assert chat.server.sent == [
        ("users", ["ann", "bob", "cat"], EVERYONE),
        ("users", ["ann", "bob", "cat", "dan"], EVERYONE),
    ]
    assert chat.server.background == []
