"""The chat's message store: SQLite, off the event loop.

Every public chat message is stored before it is sent, and gets an offset:
1, 2, 3, … in the order the server accepted them, never reused. A client
that comes back tells the server the last offset it saw and gets the rest;
a message sent again with the same message id is stored once.

SQLite (the standard library's ``sqlite3``) blocks while it works, so every
call runs on the store's own single thread, which also keeps them in order.
The database lives in memory unless a file path is given; a file keeps the
history (and the chat's id) across server restarts.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

__all__ = ["MessageStore", "StoredMessage"]

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS chat (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    -- AUTOINCREMENT: an offset is never handed out twice, even if the
    -- newest rows were ever deleted, so a client's offset stays meaningful.
    offset     INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT UNIQUE,  -- the sender's own id for it; NULL if it gave none
    user       TEXT NOT NULL,
    sender     TEXT NOT NULL,  -- the sender's connection id at the time
    text       TEXT NOT NULL,
    stored_at  REAL NOT NULL
);
"""


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
    """Public chat messages in SQLite (``path`` ``":memory:"`` by default).

    ``chat_id`` names this history: offsets from another store (a server
    restarted without a file) mean nothing here, and clients can tell.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatlab-store")
        self._db: sqlite3.Connection | None = None
        self._chat_id: str | None = None

    @property
    def in_memory(self) -> bool:
        return self.path == ":memory:"

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._db is None:
                self._open()
            assert self._db is not None
            return work(self._db)

        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    def _open(self) -> None:
        # isolation_level=None: each statement commits on its own, so a
        # stored message is on disk before anyone is told about it.
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.executescript(SCHEMA)
            db.execute("INSERT OR IGNORE INTO chat VALUES ('id', ?)", (uuid.uuid4().hex,))
            (self._chat_id,) = db.execute("SELECT value FROM chat WHERE key = 'id'").fetchone()
        except sqlite3.Error:
            db.close()
            raise
        self._db = db

    async def chat_id(self) -> str:
        """This history's id (made when the database was created)."""
        if self._chat_id is None:
            await self._run(lambda db: None)
        assert self._chat_id is not None
        return self._chat_id

    async def add(
        self, user: str, sender: str, text: str, message_id: str | None = None
    ) -> tuple[StoredMessage, bool]:
        """Store a message; return it with its offset, and whether it is new
        (False: ``message_id`` was stored before, and that message returns)."""
        def add(db: sqlite3.Connection) -> tuple[StoredMessage, bool]:
            if message_id is not None:
                row = db.execute(
                    "SELECT offset, user, sender, text FROM messages WHERE message_id = ?",
                    (message_id,)).fetchone()
                if row is not None:
                    return StoredMessage(*row), False
            cursor = db.execute(
                "INSERT INTO messages (message_id, user, sender, text, stored_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (message_id, user, sender, text, time.time()))
            assert cursor.lastrowid is not None
            return StoredMessage(cursor.lastrowid, user, sender, text), True

        return await self._run(add)

    async def last_offset(self) -> int:
        """The newest message's offset (0 when there is none)."""
        def last(db: sqlite3.Connection) -> int:
            return db.execute("SELECT COALESCE(MAX(offset), 0) FROM messages").fetchone()[0]

        return await self._run(last)

    async def after(self, offset: int) -> list[StoredMessage]:
        """Every message with a greater offset than ``offset``, oldest first."""
        def after(db: sqlite3.Connection) -> list[StoredMessage]:
            rows = db.execute(
                "SELECT offset, user, sender, text FROM messages "
                "WHERE offset > ? ORDER BY offset", (offset,))
            return [StoredMessage(*row) for row in rows]

        return await self._run(after)

    async def count(self) -> int:
        return await self._run(
            lambda db: db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    async def close(self) -> None:
        """Close the database file (it opens again when next used). An
        in-memory store keeps its history: closing it would lose it."""
        if self.in_memory:
            return

        def close(db: sqlite3.Connection) -> None:
            db.close()
            self._db = None

        if self._db is not None:
            await self._run(close)

    def __repr__(self) -> str:
        return f"<MessageStore {self.path!r}>"
