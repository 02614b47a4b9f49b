"""Replay that is bounded and holds up no one: a (re)connection is sent at
most ``Limits.replay`` stored messages, a page at a time and only as fast as
it reads them, while live messages go on to the others; and the hand-over
from its replay to the live messages still loses none and repeats none."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

import chatlab
from chatlab import ChatClient, ChatServer, Limits, RecordingClient, RunningServer
from chatlab.outbox import outbox_of
from chatlab.store import MessageStore
from chatlab.validation import MAX_OFFSET, Refused, check_resume
from chatlab.waiting import Changes

pytestmark = pytest.mark.integration

FAST = {"events_per_second": 1000, "burst": 1000}  # senders here are not the point
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)


class Replayer(RecordingClient):
    """A RecordingClient that keeps the offset of every public message it
    gets, in order (its log keeps only the newest 1,000 events)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.offsets: list[int] = []
        self.arrivals = Changes()
        self.on("message", self._message)

    def _message(self, data: dict[str, Any]) -> None:
        self.offsets.append(data["offset"])
        self.arrivals.notify()

    async def got(self, count: int, timeout: float = 30) -> None:
        await self.wait_for("message", count=count, timeout=timeout)

    async def reached(self, offset: int, timeout: float = 30) -> None:
        """Wait until the message with ``offset`` (or a later one) is here."""
        await self.arrivals.wait_until(lambda: self.offsets and self.offsets[-1] >= offset,
                                       timeout=timeout, what=f"{self.name} got {offset}")


async def prefilled(path: Path, count: int, padding: int = 0) -> str:
    """A database file with ``count`` messages (offsets 1 to ``count``), as a
    server that ran before left it; returns its chat id."""
    store = MessageStore(path)
    chat_id = await store.chat_id()
    await store.close()
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO messages (user, sender, text, stored_at) VALUES (?, ?, ?, ?)",
            (("old", "sid-old", f"old {n} " + "x" * padding, time.time())
             for n in range(1, count + 1)))
    db.close()
    return chat_id


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Awaitable[tuple[ChatServer, RunningServer]]]]:
    """``chat, server = await start(db=..., limits=...)``: a ChatServer,
    running; everything is shut down after the test."""
    async def make(**options: Any) -> tuple[ChatServer, RunningServer]:
        chat = ChatServer(**options)
        return chat, await chat.serve(name=f"replay-{id(chat)}")

    yield make
    await chatlab.shutdown()


async def joined(url: str, name: str) -> ChatClient:
    client = ChatClient(url)
    await client.connect()
    await client.add_user(name)
    return client


# -- paged, and not in the others' way ----------------------------------------

async def test_a_live_message_is_acknowledged_while_a_big_replay_goes_on(tmp_path, start):
    chat_id = await prefilled(tmp_path / "chat.db", 20_000)
    chat, server = await start(db=tmp_path / "chat.db", limits=Limits(replay=20_000, **FAST))
    ann = await joined(server.url, "ann")
    replayer = Replayer("replayer")
    await replayer.connect(server.url, auth={"chat": chat_id, "serverOffset": 0})
    await replayer.got(1)  # its replay has begun
    assert await ann.send("live") == 20_001
    # Stored and sent to everyone live while the replay still goes on: it
    # did not wait for the replay's 20,000 messages.
    assert chat.delivery.waiting == 1, "the live message waited for the whole replay"
    await replayer.got(20_001, timeout=120)
    assert replayer.offsets == list(range(1, 20_002)), "each once, in order, no gap"


async def test_every_client_gets_every_message_once_in_order_across_the_hand_over(
        tmp_path, start):
    chat_id = await prefilled(tmp_path / "chat.db", 500)
    chat, server = await start(db=tmp_path / "chat.db", limits=Limits(replay=5_000, **FAST))
    senders = [await joined(server.url, f"sender{n}") for n in range(3)]
    replayers = [Replayer(f"replayer{n}") for n in range(8)]
    first = senders[0]

    async def chatter(sender: ChatClient) -> None:
        for n in range(60):
            await sender.send(f"{sender.name} {n}", timeout=10)

    async def replay(replayer: Replayer, after_sent: int) -> None:
        # Each replay starts at another moment of the sending, so that its
        # last page and its step into the live room meet live messages.
        await first.wait_until(lambda: (first.last_offset or 0) >= 500 + after_sent,
                               timeout=30)
        await replayer.connect(server.url, auth={"chat": chat_id, "serverOffset": 0})

    await asyncio.gather(*map(chatter, senders),
                         *(replay(r, 20 * n) for n, r in enumerate(replayers)))
    for replayer in replayers:
        await replayer.reached(680)
        assert replayer.offsets == list(range(1, 681)), replayer.name
    assert chat.delivery.waiting == 0


async def test_messages_sent_while_the_last_page_waits_for_the_lock_all_follow(chat, user):
    """More messages than the last page holds go out while it waits for the
    order lock: the replay goes on with them, then live."""
    chat.delivery.last_page = 5
    ann = await user("ann")
    await ann.send("one")
    (ann_sid,) = chat.users
    late = Replayer("late")
    async with chat.delivery.order:
        sending = [asyncio.ensure_future(chat.delivery.publish("ann", ann_sid, f"queued {n}", None))
                   for n in range(12)]
        chat_id = await chat.store.chat_id()
        await late.connect(chat.running.url, auth={"chat": chat_id, "serverOffset": 1})
        await late.wait_for("history")  # its replay waits behind the 12 for the lock
    assert [reply["offset"] for reply in await asyncio.gather(*sending)] == list(range(2, 14))
    await ann.send("live")
    await late.reached(14)
    assert late.offsets == list(range(2, 15))
    await late.shutdown()


async def test_a_client_that_never_reads_is_paced_and_holds_little(tmp_path, start):
    """A long-polling client that connects from offset 0 and then never
    polls: its replay stops at the outbox's low-water mark (a quarter of
    ``Limits.outgoing_buffer``) instead of queueing 1.4 MB; once it reads,
    it gets all of it, then live messages."""
    chat_id = await prefilled(tmp_path / "chat.db", 3_000, padding=400)
    chat, server = await start(db=tmp_path / "chat.db", limits=Limits(replay=5_000, **FAST))
    ann = await joined(server.url, "ann")
    base = server.url + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        async with http.get(base) as response:
            eio_sid = json.loads((await response.text())[1:])["sid"]
        poll = f"{base}&sid={eio_sid}"
        auth = json.dumps({"chat": chat_id, "serverOffset": 0})
        async with http.post(poll, data="40" + auth) as response:
            assert response.status == 200

        # Meanwhile a client that reads does the same replay, and a live
        # message goes out: the one that does not read was given every chance.
        reader = Replayer("reader")
        await reader.connect(server.url, auth={"chat": chat_id, "serverOffset": 0})
        await reader.got(3_000)
        assert await ann.send("live") == 3_001
        await reader.got(3_001)

        sid = chat.sio.manager.sid_from_eio_sid(eio_sid, "/")
        outbox = outbox_of(chat.sio, sid)
        assert outbox is not None and outbox.sent_away is None
        one_message = 600  # bytes: a 400-character message's packet, and some
        assert outbox.low_water <= outbox.peak <= outbox.low_water + one_message, outbox.peak
        assert chat.delivery.waiting == 1, "its replay waits for it to read"

        offsets: list[int] = []
        while 3_001 not in offsets:
            async with http.get(poll) as response:
                body = await response.text()
            for packet in body.split("\x1e"):
                if packet.startswith('42["message"'):
                    offsets.append(json.loads(packet[2:])[1]["offset"])
        assert offsets == list(range(1, 3_002))
        assert outbox.peak <= outbox.low_water + one_message
        assert chat.delivery.waiting == 0
        async with http.post(poll, data="41") as response:  # leave
            assert response.status == 200


# -- the bound ----------------------------------------------------------------

async def test_a_reconnection_is_sent_at_most_replay_messages_and_after_says_so(start):
    chat, server = await start(limits=Limits(replay=10, **FAST))
    ann = await joined(server.url, "ann")
    for n in range(1, 31):
        await ann.send(f"m{n}")
    chat_id = await chat.store.chat_id()
    far_behind, close_behind = Replayer("far behind"), Replayer("close behind")
    await far_behind.connect(server.url, auth={"chat": chat_id, "serverOffset": 5})
    await close_behind.connect(server.url, auth={"chat": chat_id, "serverOffset": 25})
    await far_behind.got(10)
    await close_behind.got(5)
    # Missed 25, sent the last 10: `after` is above the 5 it sent.
    assert far_behind.received("history") == [({"chat": chat_id, "after": 20, "last": 30},)]
    assert far_behind.offsets == list(range(21, 31))
    assert close_behind.received("history") == [({"chat": chat_id, "after": 25, "last": 30},)]
    assert close_behind.offsets == list(range(26, 31))
    await ann.send("live")
    await far_behind.got(11)
    assert far_behind.offsets[-1] == 31


async def test_a_new_client_gets_history_but_never_more_than_replay(start):
    chat, server = await start(history=50, limits=Limits(replay=10, **FAST))
    ann = await joined(server.url, "ann")
    for n in range(30):
        await ann.send(f"m{n}")
    newcomer = Replayer("newcomer")
    await newcomer.connect(server.url)
    await newcomer.got(10)
    assert newcomer.received("history")[0][0]["after"] == 20
    assert newcomer.offsets == list(range(21, 31))


async def test_the_in_memory_history_keeps_the_kept_newest_and_after_says_so(start):
    chat, server = await start(limits=Limits(kept=5, **FAST))
    assert chat.store.kept == 5
    ann = await joined(server.url, "ann")
    for n in range(8):
        await ann.send(f"m{n}")
    assert await chat.store.count() == 5
    returning = Replayer("returning")
    chat_id = await chat.store.chat_id()
    await returning.connect(server.url, auth={"chat": chat_id, "serverOffset": 1})
    await returning.got(5)
    assert returning.received("history")[0][0]["after"] == 3, "2 and 3 are gone"
    assert returning.offsets == [4, 5, 6, 7, 8]


# -- offsets no chat reaches --------------------------------------------------

@pytest.mark.parametrize("offset,shown", [
    (MAX_OFFSET + 1, "9007199254740992"),
    (1e300, "1e+300"),
    (10**99, "a number of more than 20 digits"),  # the most digits engineio's JSON reads
], ids=["2**53", "1e300", "10**99"])
async def test_an_offset_no_chat_reaches_is_refused_with_the_reason(start, offset, shown):
    chat, server = await start()
    client = ChatClient(server.url)
    with pytest.raises(ConnectionError, match="the server refused") as refused:
        await client.connect(auth={"chat": await chat.store.chat_id(), "serverOffset": offset})
    assert (f"auth.serverOffset must be at most 9007199254740991 (the largest whole number "
            f"JavaScript holds exactly), not {shown}") in str(refused.value)
    assert chat.delivery.waiting == 0 and chat.namespace.admitted == 0


async def test_an_offset_too_long_for_the_json_reader_is_refused_with_the_reason(start):
    # 10**100 never reaches chatlab's checks: engineio's JSON reader
    # refuses the connect packet, and the client is told so.
    chat, server = await start()
    client = ChatClient(server.url)
    with pytest.raises(ConnectionError, match="the server refused") as refused:
        await client.connect(auth={"chat": await chat.store.chat_id(), "serverOffset": 10**100})
    assert "the server could not read the connect packet (ValueError: Integer is too large)" \
        in str(refused.value)
    assert chat.delivery.waiting == 0 and chat.namespace.admitted == 0


@pytest.mark.parametrize("offset", [10**100, 10**5000, float(2**60), MAX_OFFSET + 1],
                         ids=["10**100", "10**5000", "2.0**60", "2**53"])
def test_check_resume_refuses_offsets_sqlite_or_javascript_cannot_hold(offset):
    with pytest.raises(Refused, match="auth.serverOffset must be at most 9007199254740991"):
        check_resume({"serverOffset": offset})
    assert check_resume({"serverOffset": MAX_OFFSET}) == (None, MAX_OFFSET)
