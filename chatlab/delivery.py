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

Replay is bounded and never holds up the others. One (re)connection is sent
at most ``limits.replay`` of the messages stored before it connected: when
it missed more, ``history``'s ``after`` is where its replay starts, above
the offset it sent, so it can tell that older ones were not sent. The
messages go out a page at a time, each only once the connection has read
most of what it was sent before (:func:`chatlab.outbox.room_to_send`), and
the lock that orders live messages is held only for the last, short page
and the step into the live room: a client that never reads holds on to
little, and live messages keep flowing while a long replay is under way.

Several servers can share one chat (:mod:`chatlab.cluster`): with
``shared=True`` the store numbers the messages for all of them, and
:meth:`Delivery.publish` only stores; each server's feed reads them back in
offset order and hands them to :meth:`Delivery.deliver`, which sends them
to the live room under the same lock and moves ``last`` on. A replay sends
only messages up to ``last``, and steps into the live room when it has
reached it, so the hand-over has no gap and no duplicate here too.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Any

import socketio

from .outbox import room_to_send
from .store import MessageStore, StoredMessage
from .validation import Limits, Refused, check_resume

__all__ = ["Delivery", "LAST_PAGE", "LIVE_ROOM", "PAGE"]

# The connections that have had their history and now get public messages
# as they are sent. Not a chat room (no prefix), so no client can join it.
LIVE_ROOM = "chatlab:live"

# How many stored messages a replay fetches at a time, and the most it sends
# while holding the order lock (the last few, then the step into the live
# room), which also keeps that part under a connection's outgoing bound.
PAGE = 100
LAST_PAGE = 10


class Delivery:
    """Public messages of one chat server: stored, numbered, replayed.

    :param sio: the server that sends them.
    :param store: where they are kept.
    :param history: how many recent messages a new client is sent.
    :param limits: ``limits.replay`` is the most messages one (re)connection
        is sent from the history (new clients included).
    :param page: how many stored messages a replay fetches at a time.
    :param last_page: the most it sends while live messages wait.
    :param shared: other servers add to ``store`` too (a cluster): the
        messages are sent by :meth:`deliver`, in the order the store gave
        them offsets, not by :meth:`publish`.
    :param wait: in a cluster, how long a sender's acknowledgement, or a
        replay ahead of this server, waits for the feed (seconds).
    """

    def __init__(self, sio: socketio.AsyncServer, store: MessageStore, history: int,
                 limits: Limits = Limits(), *, page: int = PAGE,
                 last_page: int = LAST_PAGE, shared: bool = False,
                 wait: float = 10.0) -> None:
        self.sio = sio
        self.store = store
        self.history = history
        self.limits = limits
        self.page = page
        self.last_page = last_page
        # Held while a stored message is sent to the live room, and while a
        # connection is sent the last of its history and enters the live
        # room, so every client sees the messages in offset order, each
        # once, with no gap between its history and the live ones.
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
        # In a cluster, deliver() sends to the live room here; who waits
        # for it to reach an offset: (offset, n, future), smallest offset
        # first (a future per message, no task: a busy node acknowledges
        # thousands a second).
        self.shared = shared
        self.wait = wait
        self._waiting: list[tuple[int, int, asyncio.Future[bool]]] = []
        self._count = itertools.count()

    async def open(self) -> None:
        """Open the store (once), so that history can go out without waiting."""
        if self._chat_id is None:
            self._chat_id = await self.store.chat_id()
            self._last = await self.store.last_offset()

    async def restart(self, chat: str) -> None:
        """In a cluster whose store lost its history (Redis restarted
        empty): a new history ``chat`` starts at offset 0, and every live
        client is told at once, before any of its messages."""
        async with self.order:
            self._chat_id = chat
            self._last = 0
            # Whoever waited for an offset of the old history waits no more.
            for _, _, reached in self._waiting:
                if not reached.done():
                    reached.set_result(False)
            self._waiting.clear()
            await self.sio.emit("history", {"chat": chat, "after": 0, "last": 0},
                                room=LIVE_ROOM, ignore_queue=True)

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
        last = self._last
        if self.shared and chat == self._chat_id and seen is not None and seen > last:
            # Offsets another server of the cluster sent, ahead of this one's
            # feed: genuine if the store has them, and the feed brings them.
            if seen <= await self.store.last_offset():
                last = seen
        if chat != self._chat_id or seen is None or seen > last:
            # A new client, or offsets from another history (a server
            # restarted without a database file): the recent messages.
            seen = last - self.history
        # Never more than `replay` of them, nor any the store has let go
        # of: `after` says where they start.
        seen = max(0, seen, last - self.limits.replay, self.store.dropped_until(last))
        # To a connection of this server (as every replay below): never
        # through a cluster's Redis, which would pass it to every node.
        await self.sio.emit("history", {"chat": self._chat_id, "after": seen, "last": last},
                            to=sid, ignore_queue=True)
        while True:
            if seen > self._last:  # only in a cluster: ahead of this server's feed
                if not await self._reached(seen):
                    await self.sio.disconnect(sid)  # to come back, once the feed works
                    return
            if self._last - seen > self.last_page:
                # The bulk, without the order lock: live messages go on to
                # the others meanwhile, and this one gets them after these.
                # Never past `last`: the later ones come through the live room.
                page = self._upto_last(await self.store.after(seen, self.page))
                if page:
                    sent = await self._send_page(sid, page)
                    if sent is None:
                        return  # gone
                    seen = sent
                    continue
            if not await room_to_send(self.sio, sid):
                return  # gone
            async with self.order:
                # The rest, short unless more came while this waited for the
                # lock (no trip to the store's thread when there is none),
                # then the live room: no message can be sent in between.
                rest = (self._upto_last(await self.store.after(seen, self.last_page))
                        if seen < self._last else [])
                for message in rest:
                    await self.sio.emit("message", message.payload(), to=sid, ignore_queue=True)
                if rest:
                    seen = rest[-1].offset
                if len(rest) == self.last_page and seen < self._last:
                    continue  # there are more: on without the lock
                if self.sio.manager.is_connected(sid, "/"):
                    await self.sio.enter_room(sid, LIVE_ROOM)
                return

    def _upto_last(self, messages: list[StoredMessage]) -> list[StoredMessage]:
        """``messages`` without those past ``last`` (stored, but not sent
        to the live room yet: they go there next)."""
        if messages and messages[-1].offset > self._last:
            return [message for message in messages if message.offset <= self._last]
        return messages

    async def _reached(self, offset: int) -> bool:
        """Wait until the live room has had ``offset``: False if the feed
        does not get there within ``wait`` seconds."""
        if self._last >= offset:
            return True
        loop = asyncio.get_running_loop()
        reached: asyncio.Future[bool] = loop.create_future()
        heapq.heappush(self._waiting, (offset, next(self._count), reached))
        late = loop.call_later(self.wait, lambda: reached.done() or reached.set_result(False))
        try:
            return await reached
        finally:
            late.cancel()

    async def deliver(self, messages: list[StoredMessage]) -> None:
        """Send public messages stored by any server of a cluster to this
        server's live room, in order, each once (the feed's step). Sent
        with ``ignore_queue``: each server sends to its own connections."""
        async with self.order:
            for message in messages:
                if message.offset > self._last:
                    await self.sio.emit("message", message.payload(), room=LIVE_ROOM,
                                        ignore_queue=True)
                    self._last = message.offset
        while self._waiting and self._waiting[0][0] <= self._last:
            reached = heapq.heappop(self._waiting)[2]
            if not reached.done():  # (given up, or its sender gone)
                reached.set_result(True)

    async def _send_page(self, sid: str, page: list[StoredMessage]) -> int | None:
        """Send ``page`` to ``sid``, each message once it has room for it;
        return the last offset sent, or None if the connection is gone."""
        for message in page:
            if not await room_to_send(self.sio, sid):
                return None
            await self.sio.emit("message", message.payload(), to=sid, ignore_queue=True)
        return page[-1].offset

    async def publish(self, user: str, sid: str, text: str,
                      message_id: str | None) -> dict[str, Any]:
        """Store a public message and send it to every live connection; the
        acknowledgement says its offset (and ``duplicate`` for a repeat).
        In a cluster the feed sends it; the acknowledgement waits until it
        has gone to the live room here, as on a single server."""
        if self.shared:
            message, new = await self.store.add(user, sid, text, message_id)
            if new:
                await self._reached(message.offset)
        else:
            # Stored first, then sent under the order lock: the store answers
            # its callers in offset order (a file's group commit answers a
            # whole group at once), and the lock is first come, first served,
            # so the messages go out in offset order.
            message, new = await self.store.add(user, sid, text, message_id)
            if new:
                async with self.order:
                    self._last = message.offset
                    await self.sio.emit("message", message.payload(), room=LIVE_ROOM)
        if new:
            return {"ok": True, "offset": message.offset}
        if (message.user, message.text) != (user, text):
            raise Refused(f"the message id {message_id!r} is another message's; "
                          f"send this one with an id of its own")
        return {"ok": True, "offset": message.offset, "duplicate": True}
