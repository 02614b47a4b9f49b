"""A chat's message store in a SQLite file, off the event loop, committed in groups.

SQLite (the standard library's ``sqlite3``) blocks while it works, so every
call runs on the store's own single thread, which also keeps them in order.

A message is acknowledged only once it is in the file, and committing is
most of what storing one costs: it waits for the disk (``fsync``). So the
messages that arrive while one commit is under way are stored together in
the next, one transaction for all of them (a group commit): a busy chat
waits for the disk once per group, not once per message, and a quiet one
commits each message at once, as before. The file is in SQLite's
write-ahead-log mode with ``synchronous=FULL``: each commit is on the disk
before its messages are acknowledged, and a reader (the ``sqlite3`` shell,
a notebook cell) may look at the file meanwhile.
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
from pathlib import Path
from typing import Any, Callable, TypeVar

from .store import DatabaseInUseError, MessageStore, StoredMessage

try:
    import fcntl
except ImportError:  # Windows: only stores of this process are kept apart
    fcntl = None  # type: ignore[assignment]

__all__ = ["SQLiteStore"]

T = TypeVar("T")

# A message to store: (message_id, user, sender, text).
Adding = tuple[str | None, str, str, str]

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


class SQLiteStore(MessageStore):
    """Public chat messages in a SQLite file: ``MessageStore(path)``."""

    def __init__(self, path: str | Path, *, kept: int = 10_000) -> None:
        super().__init__(path, kept=kept)
        if self.in_memory:
            raise ValueError("a SQLiteStore keeps a file; MessageStore() keeps memory")
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatlab-store")
        self._db: sqlite3.Connection | None = None
        self._chat_id: str | None = None
        # Lets go of the database file: on close(), or if the store is
        # dropped without one (a notebook variable assigned again).
        self._release: Callable[[], Any] = lambda: None
        # The messages waiting for the next commit, each with its caller's
        # future, and the task that commits them while there are any.
        self._adding: list[tuple[Adding, asyncio.Future[tuple[StoredMessage, bool]]]] = []
        self._committing: asyncio.Task[None] | None = None

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._db is None:
                self._open()
            assert self._db is not None
            return work(self._db)

        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    def _open(self) -> None:
        # isolation_level=None: no transaction but the ones _insert() begins.
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            self._claim()
            # The write-ahead log: a commit writes once and waits for one
            # fsync (synchronous=FULL), where a rollback journal waits for
            # several; readers in other processes are not in its way.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
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
        alone, or raise :class:`~chatlab.store.DatabaseInUseError`."""
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
        if self._chat_id is None:
            await self._run(lambda db: None)
        assert self._chat_id is not None
        return self._chat_id

    async def add(
        self, user: str, sender: str, text: str, message_id: str | None = None
    ) -> tuple[StoredMessage, bool]:
        added: asyncio.Future[tuple[StoredMessage, bool]] = \
            asyncio.get_running_loop().create_future()
        self._adding.append(((message_id, user, sender, text), added))
        if self._committing is None:
            self._committing = asyncio.ensure_future(self._commit_all())
        return await added

    async def _commit_all(self) -> None:
        """Commit the waiting messages, a group at a time, until none wait.
        Each group is answered in the order it was stored: its callers
        resume in offset order."""
        try:
            while self._adding:
                group, self._adding = self._adding, []
                await self._commit(group)
        finally:
            self._committing = None

    async def _commit(self, group: list[tuple[Adding, asyncio.Future[Any]]]) -> None:
        """Store ``group`` in one transaction and answer its callers; if that
        fails, each message on its own, so a bad one fails only itself."""
        try:
            stored = await self._run(lambda db: _insert(db, [adding for adding, _ in group]))
        except Exception as exc:  # noqa: BLE001 - its caller gets it
            if len(group) > 1:
                for one in group:
                    await self._commit([one])
            elif not group[0][1].done():
                group[0][1].set_exception(exc)
            return
        for (_, added), result in zip(group, stored):
            if not added.done():  # (its caller gone)
                added.set_result(result)

    async def last_offset(self) -> int:
        def last(db: sqlite3.Connection) -> int:
            return db.execute("SELECT COALESCE(MAX(offset), 0) FROM messages").fetchone()[0]

        return await self._run(last)

    async def after(self, offset: int, limit: int | None = None) -> list[StoredMessage]:
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
        use it (this store opens it again when next used)."""
        if self._committing is not None:
            await asyncio.shield(self._committing)  # what was sent is stored first

        def close(db: sqlite3.Connection) -> None:
            db.close()
            self._db = None
            self._release()

        if self._db is not None:
            await self._run(close)


def _insert(db: sqlite3.Connection, group: list[Adding]) -> list[tuple[StoredMessage, bool]]:
    """Store ``group`` in one transaction, in order: each message with its
    offset and whether it is new (a message id stored before, or earlier
    in the group, returns that message)."""
    results = []
    now = time.time()
    db.execute("BEGIN IMMEDIATE")
    try:
        for message_id, user, sender, text in group:
            if message_id is not None:
                row = db.execute(
                    "SELECT offset, user, sender, text FROM messages WHERE message_id = ?",
                    (message_id,)).fetchone()
                if row is not None:
                    results.append((StoredMessage(*row), False))
                    continue
            offset = db.execute(
                "INSERT INTO messages (message_id, user, sender, text, stored_at) "
                "VALUES (?, ?, ?, ?, ?)", (message_id, user, sender, text, now)).lastrowid
            assert offset is not None
            results.append((StoredMessage(offset, user, sender, text), True))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return results
