"""chatlab.store: the message store on its own, in memory and in a file:
offsets handed out once, message ids stored once, a history's id, the
in-memory store's bound, a file's group commits, and one store at a time
per database file.
(tests/test_store_lock.py: the same file from another process.)"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
from pathlib import Path
from typing import AsyncIterator

import pytest

from chatlab.sqlite_store import SQLiteStore
from chatlab.store import DatabaseInUseError, MemoryStore, MessageStore, StoredMessage
from chatlab.validation import Limits, check_resume

pytestmark = pytest.mark.unit


@pytest.fixture(params=["memory", "file"])
async def store(request, tmp_path: Path) -> AsyncIterator[MessageStore]:
    """Each store, for what both do alike."""
    store = MessageStore() if request.param == "memory" else MessageStore(tmp_path / "any.db")
    yield store
    await store.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "chat.db"


async def test_offsets_count_up_from_1_in_the_order_added(store):
    assert await store.last_offset() == 0
    added = [await store.add("ann", "sid-a", text) for text in ("one", "two", "three")]
    assert added == [(StoredMessage(1, "ann", "sid-a", "one"), True),
                     (StoredMessage(2, "ann", "sid-a", "two"), True),
                     (StoredMessage(3, "ann", "sid-a", "three"), True)]
    assert await store.last_offset() == 3
    assert await store.count() == 3


async def test_the_payload_is_the_message_event_s(store):
    message, _ = await store.add("ann", "sid-a", "hello")
    assert message.payload() == {"message": "hello", "user": "ann", "id": "sid-a", "offset": 1}


async def test_a_message_id_is_stored_once(store):
    first, new = await store.add("ann", "sid-a", "hello", "ann-1")
    assert (first.offset, new) == (1, True)
    # Sent again (a lost acknowledgement), even from a new connection: the
    # stored message comes back as it was, not the one sent now.
    again, new = await store.add("ann", "sid-b", "hello, edited", "ann-1")
    assert again == first and new is False
    assert await store.count() == 1
    other, new = await store.add("ann", "sid-b", "hello", "ann-2")
    assert (other.offset, new) == (2, True)
    assert [m.text for m in await store.after(0)] == ["hello", "hello"]


async def test_messages_without_an_id_are_never_taken_for_each_other(store):
    for _ in range(2):
        _, new = await store.add("ann", "sid-a", "same text")
        assert new
    assert await store.count() == 2


async def test_after_an_offset_come_the_newer_messages_oldest_first(store):
    for text in ("one", "two", "three"):
        await store.add("ann", "sid-a", text)
    assert [m.offset for m in await store.after(0)] == [1, 2, 3]
    assert [(m.offset, m.text) for m in await store.after(1)] == [(2, "two"), (3, "three")]
    assert await store.after(3) == []
    assert await store.after(99) == []
    assert [m.offset for m in await store.after(-5)] == [1, 2, 3]


def test_a_store_is_made_for_its_path(tmp_path):
    assert type(MessageStore()) is MemoryStore and MessageStore().in_memory
    assert type(MessageStore(tmp_path / "a.db")) is SQLiteStore
    assert type(MessageStore(str(tmp_path / "a.db"))) is SQLiteStore
    assert repr(MessageStore()) == "<MemoryStore ':memory:'>"
    with pytest.raises(ValueError, match="MessageStore\\(path\\) keeps a file"):
        MemoryStore(tmp_path / "a.db")
    with pytest.raises(ValueError, match="MessageStore\\(\\) keeps memory"):
        SQLiteStore(":memory:")


async def test_an_in_memory_store_never_waits():
    """Each of its calls is done when first stepped: no thread, no loop turn."""
    store = MessageStore()
    adding = store.add("ann", "sid-a", "at once", "id-1").__await__()
    with pytest.raises(StopIteration) as done:
        next(adding)
    assert done.value.value == (StoredMessage(1, "ann", "sid-a", "at once"), True)


async def test_closing_an_in_memory_store_keeps_its_history():
    store = MessageStore()
    await store.add("ann", "sid-a", "kept")
    chat = await store.chat_id()
    await store.close()
    assert [m.text for m in await store.after(0)] == ["kept"]
    assert await store.chat_id() == chat
    assert (await store.add("ann", "sid-a", "next"))[0].offset == 2


async def test_two_in_memory_stores_are_two_histories():
    first, second = MessageStore(), MessageStore()
    assert first.in_memory and second.in_memory
    assert await first.chat_id() != await second.chat_id()
    await first.add("ann", "sid-a", "only in the first")
    assert await second.count() == 0


async def test_a_chat_id_is_one_clients_can_send_back(store):
    chat = await store.chat_id()
    assert await store.chat_id() == chat
    assert check_resume({"chat": chat, "serverOffset": 0}) == (chat, 0)


async def test_a_file_keeps_history_offsets_and_chat_id_across_close_and_reopen(db):
    store = MessageStore(db)
    assert not store.in_memory
    chat = await store.chat_id()
    for text in ("one", "two"):
        await store.add("ann", "sid-a", text, f"id-{text}")
    await store.close()

    assert (await store.add("bob", "sid-b", "three"))[0].offset == 3, "it opens again"
    await store.close()

    reopened = MessageStore(db)  # as a restarted server would
    try:
        assert await reopened.chat_id() == chat
        assert await reopened.last_offset() == 3
        assert [(m.offset, m.user, m.text) for m in await reopened.after(1)] == [
            (2, "ann", "two"), (3, "bob", "three")]
        again, new = await reopened.add("ann", "sid-c", "two", "id-two")
        assert (again.offset, new) == (2, False), "message ids survive a restart"
        assert (await reopened.add("ann", "sid-c", "four"))[0].offset == 4
    finally:
        await reopened.close()


async def test_two_files_are_two_histories(tmp_path):
    first, second = MessageStore(tmp_path / "a.db"), MessageStore(tmp_path / "b.db")
    try:
        assert await first.chat_id() != await second.chat_id()
    finally:
        await first.close()
        await second.close()


async def test_an_added_message_is_in_the_file_when_add_returns(db):
    store = MessageStore(db)
    try:
        await store.add("ann", "sid-a", "durable")
        # Another connection, as another process would see the file.
        with sqlite3.connect(db) as other:
            assert other.execute("SELECT offset, text FROM messages").fetchall() == [
                (1, "durable")]
    finally:
        await store.close()


async def test_an_offset_is_never_handed_out_twice_even_after_the_newest_is_deleted(db):
    store = MessageStore(db)
    for text in ("one", "two", "three"):
        await store.add("ann", "sid-a", text)
    await store.close()
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("DELETE FROM messages WHERE offset = 3")  # pruned by hand
    finally:
        other.close()
    try:
        assert await store.last_offset() == 2
        assert (await store.add("ann", "sid-a", "four"))[0].offset == 4
        assert [m.offset for m in await store.after(0)] == [1, 2, 4]
    finally:
        await store.close()


async def test_closing_a_store_never_used_is_harmless(db):
    store = MessageStore(db)
    await store.close()
    assert not db.exists()
    assert await store.count() == 0
    await store.close()


async def test_after_with_a_limit_gives_the_first_ones(store):
    for n in range(5):
        await store.add("ann", "sid-a", f"m{n}")
    assert [m.offset for m in await store.after(0, 2)] == [1, 2]
    assert [m.offset for m in await store.after(3, 10)] == [4, 5]
    assert await store.after(5, 2) == []


# -- the in-memory store's bound ----------------------------------------------

async def test_an_in_memory_store_keeps_the_newest_kept_messages():
    store = MessageStore(kept=3)
    for n in range(1, 6):
        assert (await store.add("ann", "sid-a", f"m{n}", f"id-{n}"))[0].offset == n
    assert await store.count() == 3
    assert [m.offset for m in await store.after(0)] == [3, 4, 5], "the oldest go"
    assert await store.last_offset() == 5
    assert store.dropped_until(5) == 2
    # Offsets count on; an id is remembered as long as its message is kept.
    assert (await store.add("ann", "sid-a", "m6"))[0].offset == 6
    assert (await store.add("ann", "sid-a", "m5 again", "id-5"))[1] is False
    again, new = await store.add("ann", "sid-a", "m1 again", "id-1")
    assert (again.offset, new) == (7, True)
    assert [m.offset for m in await store.after(0)] == [5, 6, 7]


async def test_messages_sent_together_are_stored_in_order_and_answered_in_order(store):
    """However the store gathers them (a file commits those that arrive
    together in one transaction), each caller gets its own message, with
    offsets in the order they were sent, ids stored once."""
    added = await asyncio.gather(
        *(store.add("ann", "sid-a", f"m{n}", f"id-{n % 30}") for n in range(40)))
    assert [(m.offset, m.text, new) for m, new in added] == [
        (n + 1, f"m{n}", True) for n in range(30)] + [
        (n - 29, f"m{n - 30}", False) for n in range(30, 40)]
    assert [m.text for m in await store.after(0)] == [f"m{n}" for n in range(30)]


async def test_a_file_commits_the_messages_that_arrive_together_at_once(db):
    store = MessageStore(db)
    try:
        await store.add("ann", "sid-a", "alone")
        await asyncio.gather(*(store.add("bob", "sid-b", f"b{n}") for n in range(50)))
        reader = sqlite3.connect(db)
        try:
            stamps = [row[0] for row in reader.execute(
                "SELECT COUNT(DISTINCT stored_at) FROM messages GROUP BY user ORDER BY user")]
        finally:
            reader.close()
        assert stamps == [1, 1], "one commit for the first, one for the 50 that came together"
    finally:
        await store.close()


async def test_a_message_the_file_cannot_take_fails_alone(db):
    """A text SQLite cannot encode (a lone surrogate, which the chat's own
    checks refuse earlier) fails its own add, not the others committed
    with it, and takes no offset."""
    store = MessageStore(db)
    results = await asyncio.gather(
        store.add("ann", "sid-a", "one"), store.add("ann", "sid-a", "bad \ud800"),
        store.add("ann", "sid-a", "two"), return_exceptions=True)
    assert [(m.offset, m.text) for m, _ in (results[0], results[2])] == [(1, "one"), (2, "two")]
    assert isinstance(results[1], UnicodeEncodeError)
    assert (await store.add("ann", "sid-a", "three"))[0].offset == 3
    assert [m.text for m in await store.after(0)] == ["one", "two", "three"]
    await store.close()


async def test_closing_a_file_stores_what_was_sent_first(db):
    store = MessageStore(db)
    adding = [asyncio.ensure_future(store.add("ann", "sid-a", f"m{n}")) for n in range(5)]
    await asyncio.sleep(0)  # one step: the adds have started, and wait for their commit
    assert not any(add.done() for add in adding)
    await store.close()
    assert [m.offset for m, _ in await asyncio.gather(*adding)] == [1, 2, 3, 4, 5]
    reopened = MessageStore(db)
    try:
        assert await reopened.count() == 5
    finally:
        await reopened.close()


async def test_the_default_bound_is_the_limits_one():
    assert MessageStore().kept == Limits().kept == 10_000


async def test_a_file_keeps_every_message(db):
    store = MessageStore(db, kept=2)
    try:
        for n in range(4):
            await store.add("ann", "sid-a", f"m{n}")
        assert await store.count() == 4 and store.dropped_until(4) == 0
    finally:
        await store.close()


@pytest.mark.parametrize("kept", [0, -1, 1.5, True, None])
def test_a_bound_must_be_a_whole_number_of_messages(kept):
    with pytest.raises(ValueError, match="kept must be a whole number"):
        MessageStore(kept=kept)


# -- one store per database file ----------------------------------------------

async def test_a_second_store_on_an_open_file_is_refused_until_the_first_closes(db):
    first, second = MessageStore(db), MessageStore(db)
    await first.add("ann", "sid-a", "one")
    with pytest.raises(DatabaseInUseError) as refused:
        await second.count()
    assert str(refused.value) == (
        f"another chatlab server in this process is using {db}; stop it first "
        f"(await server.stop()), or give this one another file")
    assert isinstance(refused.value, sqlite3.OperationalError)
    assert await first.count() == 1, "the first store goes on as before"
    await first.close()
    try:
        assert [m.text for m in await second.after(0)] == ["one"]
        with pytest.raises(DatabaseInUseError):
            await first.count()  # now it is the second's
    finally:
        await second.close()
    assert await first.count() == 1, "closed, the file is free again"
    await first.close()


async def test_a_file_in_use_can_still_be_read(db):
    store = MessageStore(db)
    try:
        await store.add("ann", "sid-a", "readable")
        reader = sqlite3.connect(db)
        try:
            assert reader.execute("SELECT text FROM messages").fetchall() == [("readable",)]
        finally:
            reader.close()
        assert (await store.add("ann", "sid-a", "still writable"))[0].offset == 2
    finally:
        await store.close()


async def test_the_same_file_by_another_path_is_the_same_file(db, tmp_path):
    (tmp_path / "link.db").symlink_to(db)
    first, second = MessageStore(db), MessageStore(tmp_path / "link.db")
    await first.count()
    try:
        with pytest.raises(DatabaseInUseError):
            await second.count()
    finally:
        await first.close()


async def test_in_memory_stores_and_other_files_are_not_in_each_others_way(tmp_path):
    stores = [MessageStore(), MessageStore(), MessageStore(tmp_path / "a.db"),
              MessageStore(tmp_path / "b.db")]
    try:
        for store in stores:
            await store.add("ann", "sid-a", "hello")
    finally:
        for store in stores:
            await store.close()


async def test_a_store_dropped_without_closing_lets_go_of_the_file(db):
    store = MessageStore(db)
    await store.add("ann", "sid-a", "one")
    del store  # as when a notebook variable is assigned again
    gc.collect()
    again = MessageStore(db)
    try:
        assert await again.count() == 1
    finally:
        await again.close()
