"""Nothing lost, nothing twice: stored messages, offsets, history and replay.

What the official Socket.IO tutorial calls server and client delivery, and
python-socketio does not do by itself. Every public message is stored
(:mod:`chatlab.store`) before it is sent, and its ``message`` payload
carries its ``offset``. On every connection the server first sends
``history`` ``{chat, after, last}``, then the stored messages after
``after``, then live ones: a client that connects with ``auth={"chat": ...,
"serverOffset": N}`` gets every message it missed, in order, exactly once;
any other client gets the ``history`` most recent ones. A message sent
again under the same message id (a retry after a lost acknowledgement) is
acknowledged with its first offset, and not stored or sent again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import socketio

from .store import MessageStore
from .validation import Refused, check_resume

__all__ = ["Delivery", "LIVE_ROOM"]

# The connections that have had their history and now get public messages
# as they are sent. Not a chat room (no prefix), so no client can join it.
LIVE_ROOM = "chatlab:live"


class Delivery:
    """Public messages of one chat server: stored, numbered, replayed.

    :param sio: the server that sends them.
    :param store: where they are kept.
    :param history: how many recent messages a new client is sent.
    """

    def __init__(self, sio: socketio.AsyncServer, store: MessageStore, history: int) -> None:
        self.sio = sio
        self.store = store
        self.history = history
        # Held while a message is stored and sent, and while a connection is
        # sent its history, so every client sees the messages in offset order,
        # each once, with no gap between its history and the live ones.
        self.order = asyncio.Lock()
        # What each connecting client said it has seen, until it has had
        # its history, and an event set once it has.
        self._resume: dict[str, tuple[str | None, int | None]] = {}
        self._caught_up: dict[str, asyncio.Event] = {}
        # The store's id and newest offset, kept here (only this server
        # writes to it) so a new connection's `history` goes out at once,
        # before any other event can reach it.
        self._chat_id: str | None = None
        self._last = 0

    async def open(self) -> None:
        """Open the store (once), so that history can go out without waiting."""
        if self._chat_id is None:
            self._chat_id = await self.store.chat_id()
            self._last = await self.store.last_offset()

    def connecting(self, sid: str, auth: Any) -> None:
        """Note where a connecting client's history ends (its ``auth``);
        refuse the connection when that makes no sense."""
        try:
            self._resume[sid] = check_resume(auth)
        except Refused as refusal:
            raise socketio.exceptions.ConnectionRefusedError(refusal.reason) from None
        self._caught_up[sid] = asyncio.Event()

    def forget(self, sid: str) -> None:
        """Let go of a connection that left (perhaps before its history)."""
        self._resume.pop(sid, None)
        caught_up = self._caught_up.pop(sid, None)
        if caught_up is not None:
            caught_up.set()

    async def caught_up(self, sid: str) -> None:
        """Wait until a connection has had its history and what it missed."""
        caught_up = self._caught_up.get(sid)
        if caught_up is not None:
            await caught_up.wait()

    @property
    def waiting(self) -> int:
        """How many connections are still to be sent their history."""
        return len(self._caught_up)

    async def catch_up(self, sid: str) -> None:
        """Send a connection ``history``, what it missed, and from then on
        every public message. Runs as a task started by the connect handler:
        python-socketio counts the client as connected only once that
        handler has returned, so this sends ``history`` before awaiting
        anything else, and it is the first event the client gets."""
        try:
            await self._catch_up(sid)
        finally:
            self.forget(sid)

    async def _catch_up(self, sid: str) -> None:
        chat, seen = self._resume.pop(sid, (None, None))
        await self.open()  # open already, unless served without ChatServer.serve()
        if chat != self._chat_id or seen is None or seen > self._last:
            # A new client, or offsets from another history (a server
            # restarted without a database file): the recent messages.
            seen = max(0, self._last - self.history)
        await self.sio.emit(
            "history", {"chat": self._chat_id, "after": seen, "last": self._last}, to=sid)
        async with self.order:
            # Everything stored since, including what was sent to the others
            # while this connection waited for the lock (none: no trip to
            # the store's thread, which a connection would otherwise pay).
            missed = await self.store.after(seen) if seen < self._last else []
            for message in missed:
                await self.sio.emit("message", message.payload(), to=sid)
            if self.sio.manager.is_connected(sid, "/"):
                await self.sio.enter_room(sid, LIVE_ROOM)

    async def publish(self, user: str, sid: str, text: str,
                      message_id: str | None) -> dict[str, Any]:
        """Store a public message and send it to every live connection; the
        acknowledgement says its offset (and ``duplicate`` for a repeat)."""
        async with self.order:
            message, new = await self.store.add(user, sid, text, message_id)
            if new:
                self._last = message.offset
                await self.sio.emit("message", message.payload(), room=LIVE_ROOM)
        if new:
            return {"ok": True, "offset": message.offset}
        if (message.user, message.text) != (user, text):
            raise Refused(f"the message id {message_id!r} is another message's; "
                          f"send this one with an id of its own")
        return {"ok": True, "offset": message.offset, "duplicate": True}
