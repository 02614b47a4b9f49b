"""The chat's message store: every public message, numbered, before it is sent.

Every public chat message is stored before it is sent, and gets an offset:
1, 2, 3, … in the order the server accepted them, never reused. A client
that comes back tells the server the last offset it saw and gets the rest;
a message sent again with the same message id is stored once.

``MessageStore()`` keeps the history in memory, in plain Python objects:
storing a message is a few dictionary and deque steps, done at once on the
event loop, with nothing to wait for. ``MessageStore(path)`` keeps it in a
SQLite file (:mod:`chatlab.sqlite_store`), which outlives the server: its
history and the chat's id are there when it starts again.

Bounds: an in-memory store keeps the ``kept`` newest messages (10,000 by
default) and lets the oldest go, so a long-running chat does not grow
without end; offsets still count on and are never reused, and a message
id is remembered only as long as its message is kept. A file keeps every
message. One store at a time may use a database file: while one has it
open (from its first use until :meth:`MessageStore.close`), another, in
this process or in another one, raises :class:`DatabaseInUseError`, since
two chat servers numbering messages in one file would both hand out the
same offsets to clients that cannot tell them apart.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections import deque
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

__all__ = ["DatabaseInUseError", "MemoryStore", "MessageStore", "StoredMessage"]


class DatabaseInUseError(sqlite3.OperationalError):
    """Another chat server is using this database file; it has to stop
    (or this one needs another file) before this one can start."""


@dataclass(frozen=True)
class StoredMessage:
    offset: int
    user: str
    sender: str
    text: str

    def payload(self) -> dict[str, Any]:
        """The ``message`` event's payload: the tutorial's three keys plus
        the offset."""
        return {"message": self.text, "user": self.user, "id": self.sender,
                "offset": self.offset}


class MessageStore:
    """Public chat messages, in memory (``path`` ``":memory:"``, the
    default) or in a SQLite file.

    :param path: a database file, or ``":memory:"`` for a history that ends
        with the store.
    :param kept: how many messages an in-memory store keeps (the oldest go
        first); a file keeps them all.

    Like :class:`pathlib.Path`, this makes the store that fits its
    ``path``: a :class:`MemoryStore`, or a
    :class:`~chatlab.sqlite_store.SQLiteStore`. ``chat_id`` names this
    history: offsets from another store (a server restarted without a
    file) mean nothing here, and clients can tell. A file is this store's
    alone from its first use until :meth:`close` (see
    :class:`DatabaseInUseError`).
    """

    path: str
    kept: int

    def __new__(cls, path: str | Path = ":memory:", *, kept: int = 10_000) -> "MessageStore":
        if cls is MessageStore:
            if str(path) == ":memory:":
                cls = MemoryStore
            else:
                from .sqlite_store import SQLiteStore
                cls = SQLiteStore
        return super().__new__(cls)

    def __init__(self, path: str | Path = ":memory:", *, kept: int = 10_000) -> None:
        if isinstance(kept, bool) or not isinstance(kept, int) or kept < 1:
            raise ValueError("kept must be a whole number of messages, 1 or more")
        self.path = str(path)
        self.kept = kept

    @property
    def in_memory(self) -> bool:
        return self.path == ":memory:"

    def dropped_until(self, last: int) -> int:
        """The newest offset this store has let go of, when ``last`` is its
        newest (0 when it has all of them): an in-memory store keeps the
        ``kept`` newest, and only it numbers them, so there is no gap."""
        return max(0, last - self.kept) if self.in_memory else 0

    # What each store does its own way.

    async def chat_id(self) -> str:
        """This history's id (made when the history was created)."""
        raise NotImplementedError

    async def add(
        self, user: str, sender: str, text: str, message_id: str | None = None
    ) -> tuple[StoredMessage, bool]:
        """Store a message; return it with its offset, and whether it is new
        (False: ``message_id`` was stored before, and that message returns)."""
        raise NotImplementedError

    async def last_offset(self) -> int:
        """The newest message's offset (0 when there is none)."""
        raise NotImplementedError

    async def after(self, offset: int, limit: int | None = None) -> list[StoredMessage]:
        """The messages with a greater offset than ``offset``, oldest first:
        all of them, or the first ``limit``."""
        raise NotImplementedError

    async def count(self) -> int:
        raise NotImplementedError

    async def close(self) -> None:
        """Let go of what the store holds open (a database file, which
        another server may then use); the store opens it again when next
        used. An in-memory store keeps its history: closing it would lose it."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r}>"


class MemoryStore(MessageStore):
    """The ``kept`` newest messages in a deque, and their message ids in a
    dict: every method returns without waiting for anything."""

    def __init__(self, path: str | Path = ":memory:", *, kept: int = 10_000) -> None:
        super().__init__(path, kept=kept)
        if not self.in_memory:
            raise ValueError("a MemoryStore's path is ':memory:'; "
                             "MessageStore(path) keeps a file")
        self._chat_id = uuid.uuid4().hex
        self._messages: deque[tuple[StoredMessage, str | None]] = deque()
        self._by_id: dict[str, StoredMessage] = {}
        self._last = 0

    async def chat_id(self) -> str:
        return self._chat_id

    async def add(
        self, user: str, sender: str, text: str, message_id: str | None = None
    ) -> tuple[StoredMessage, bool]:
        if message_id is not None:
            stored = self._by_id.get(message_id)
            if stored is not None:
                return stored, False
        self._last += 1
        message = StoredMessage(self._last, user, sender, text)
        messages = self._messages
        messages.append((message, message_id))
        if message_id is not None:
            self._by_id[message_id] = message
        if len(messages) > self.kept:
            _, dropped_id = messages.popleft()
            if dropped_id is not None:
                del self._by_id[dropped_id]
        return message, True

    async def last_offset(self) -> int:
        return self._last

    async def after(self, offset: int, limit: int | None = None) -> list[StoredMessage]:
        messages = self._messages
        if not messages:
            return []
        # Offsets here have no gaps, so a message's place follows from its offset.
        start = max(0, offset - messages[0][0].offset + 1)
        stop = None if limit is None else start + max(0, limit)
        return [message for message, _ in islice(messages, start, stop)]

    async def count(self) -> int:
        return len(self._messages)
