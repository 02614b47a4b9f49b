"""chatlab.store: the message store on its own, in memory and in a file:
offsets handed out once, message ids stored once, a history's id."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import AsyncIterator

import pytest

from chatlab.store import MessageStore, StoredMessage
from chatlab.validation import check_resume

pytestmark = pytest.mark.unit


@pytest.fixture
async def store() -> AsyncIterator[MessageStore]:
    store = MessageStore()
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


async def test_closing_an_in_memory_store_keeps_its_history(store):
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
