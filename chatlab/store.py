"""The chat's message store: SQLite, off the event loop.

Every public chat message is stored before it is sent, and gets an offset:
1, 2, 3, … in the order the server accepted them, never reused. A client
that comes back tells the server the last offset it saw and gets the rest;
a message sent again with the same message id is stored once.

SQLite (the standard library's ``sqlite3``) blocks while it works, so every
call runs on the store's own single thread, which also keeps them in order.
The database lives in memory unless a file path is given; a file keeps the
history (and the chat's id) across server restarts.

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

import asyncio
import os
import sqlite3
import threading
import time
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

try:
    import fcntl
except ImportError:  # Windows: only stores of this process are kept apart
    fcntl = None  # type: ignore[assignment]

__all__ = ["DatabaseInUseError", "MessageStore", "StoredMessage"]

T = TypeVar("T")

# The database files the stores of this process have open, by (device,
# inode), so a second store is refused before it opens a descriptor of its
# own to lock: closing any descriptor of a file drops every POSIX lock this
# process holds on it, the first store's SQLite locks included.
_files_in_use: set[tuple[int, int]] = set()
_files_lock = threading.Lock()  # each store opens on a thread of its own

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


class DatabaseInUseError(sqlite3.OperationalError):
    """Another chat server is using this database file; it has to stop
    (or this one needs another file) before this one can start."""


class _Claim:
    """A database file held by one store: its identity, and the descriptor
    that holds its flock() (None where there is no flock())."""

    def __init__(self, file: tuple[int, int], fd: int | None) -> None:
        self.file = file
        self.fd = fd

    def release(self) -> None:
        with _files_lock:
            if self.fd is not None:
                os.close(self.fd)  # which ends the flock() too
                self.fd = None
            _files_in_use.discard(self.file)


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

    :param path: a database file, or ``":memory:"`` for a history that ends
        with the store.
    :param kept: how many messages an in-memory store keeps (the oldest go
        first); a file keeps them all.

    ``chat_id`` names this history: offsets from another store (a server
    restarted without a file) mean nothing here, and clients can tell.
    A file is this store's alone from its first use until :meth:`close`
    (see :class:`DatabaseInUseError`).
    """

    def __init__(self, path: str | Path = ":memory:", *, kept: int = 10_000) -> None:
        if isinstance(kept, bool) or not isinstance(kept, int) or kept < 1:
            raise ValueError("kept must be a whole number of messages, 1 or more")
        self.path = str(path)
        self.kept = kept
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatlab-store")
        self._db: sqlite3.Connection | None = None
        self._chat_id: str | None = None
        # Lets go of the database file: on close(), or if the store is
        # dropped without one (a notebook variable assigned again).
        self._release: Callable[[], Any] = lambda: None

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
            if not self.in_memory:
                self._claim()
            db.executescript(SCHEMA)
            db.execute("INSERT OR IGNORE INTO chat VALUES ('id', ?)", (uuid.uuid4().hex,))
            (self._chat_id,) = db.execute("SELECT value FROM chat WHERE key = 'id'").fetchone()
        except BaseException:
            db.close()
            self._release()
            raise
        self._db = db

    def _claim(self) -> None:
        """Make the database file (which connecting created) this store's
        alone, or raise :class:`DatabaseInUseError`."""
        with _files_lock:
            info = os.stat(self.path)
            file = (info.st_dev, info.st_ino)
            if file in _files_in_use:
                raise DatabaseInUseError(
                    f"another chatlab server in this process is using {self.path}; "
                    f"stop it first (await server.stop()), or give this one another file")
            fd = None
            if fcntl is not None:
                # flock(), not SQLite's own locks: readers (the sqlite3 shell,
                # a notebook cell) may still look at the file meanwhile.
                fd = os.open(self.path, os.O_RDONLY)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise DatabaseInUseError(
                        f"another chatlab server is using {self.path}; stop it first, "
                        f"or give this one another file") from None
            _files_in_use.add(file)
        self._release = weakref.finalize(self, _Claim(file, fd).release)

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
            offset = cursor.lastrowid
            assert offset is not None
            if self.in_memory and offset > self.kept:
                # Only this store writes here, so offsets have no gaps: this
                # keeps the `kept` newest (normally deleting just one).
                db.execute("DELETE FROM messages WHERE offset <= ?", (offset - self.kept,))
            return StoredMessage(offset, user, sender, text), True

        return await self._run(add)

    def dropped_until(self, last: int) -> int:
        """The newest offset this store has let go of, when ``last`` is its
        newest (0 when it has all of them): an in-memory store keeps the
        ``kept`` newest, and only it numbers them, so there is no gap."""
        return max(0, last - self.kept) if self.in_memory else 0

    async def last_offset(self) -> int:
        """The newest message's offset (0 when there is none)."""
        def last(db: sqlite3.Connection) -> int:
            return db.execute("SELECT COALESCE(MAX(offset), 0) FROM messages").fetchone()[0]

        return await self._run(last)

    async def after(self, offset: int, limit: int | None = None) -> list[StoredMessage]:
        """The messages with a greater offset than ``offset``, oldest first:
        all of them, or the first ``limit``."""
        def after(db: sqlite3.Connection) -> list[StoredMessage]:
            rows = db.execute(
                "SELECT offset, user, sender, text FROM messages "
                "WHERE offset > ? ORDER BY offset LIMIT ?",
                (offset, -1 if limit is None else limit))  # -1: no limit
            return [StoredMessage(*row) for row in rows]

        return await self._run(after)

    async def count(self) -> int:
        return await self._run(
            lambda db: db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    async def close(self) -> None:
        """Close the database file and let go of it, so another server may
        use it (this store opens it again when next used). An in-memory
        store keeps its history: closing it would lose it."""
        if self.in_memory:
            return

        def close(db: sqlite3.Connection) -> None:
            db.close()
            self._db = None
            self._release()

        if self._db is not None:
            await self._run(close)

    def __repr__(self) -> str:
        return f"<MessageStore {self.path!r}>"
