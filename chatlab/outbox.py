"""Bounded outgoing queues: a connection that does not read is sent away.

python-engineio keeps the packets waiting for each connection in a queue
of its own, with no limit: a client that stops reading (but is still
connected) makes the server hold every event sent to it, for as long as it
stays. In a busy chat (five users chatting) one such client made the server
grow by 31.7 MB in 30 s.

:class:`Outbox` is that queue, counting what it holds. Each packet counts
its encoded length: characters for text (a byte each for ASCII; text is
what a Socket.IO event is), bytes for binary. What a connection holds
(:meth:`Outbox.unsent`) is its queue plus what its websocket's transport
has not written yet: up to about 320 KiB of its own, as aiohttp's writer
writes 256 KiB before it waits on a full socket, and direct writes
(:mod:`chatlab.fast.direct_writes`) stop at 64 KiB; a bound should be well
above that (the default 1 MiB is). The kernel's socket buffers are not
counted.

A connection *stays over* its ``bound`` (``Limits.outgoing_buffer``) when
it holds more than ``bound`` for :data:`GRACE` seconds in a row, or more
than its ``ceiling`` (twice the bound) at any moment: a client reading
slowly through a burst drains in time, one that does not read is caught.
It is then sent away:

- its queue is emptied at once, and nothing more is queued for it;
- it is sent ``error`` ``{event: None, reason}`` (which a client reading
  slowly still gets), and a warning names it in the ``chatlab`` log;
- its connection closes once that error is taken (a long poll answered,
  or the websocket's writer has it), or after :data:`GOODBYE_TIMEOUT`
  seconds at most, with no goodbye packet, as a lost connection does: its
  disconnect handlers run, and Socket.IO clients reconnect by themselves.
  A websocket that has not taken its error by then is cut, and what its
  socket held goes with it;
- the public messages it did not get are in the store: a client that
  reconnects with its ``serverOffset`` is sent them
  (:mod:`chatlab.delivery`).

So the server never holds more than ``ceiling`` bytes, plus the one packet
that crossed it, for any connection; a client that reads slowly but keeps
under its bound is never sent away.

Two more jobs of the queue:

- A long-polling GET takes at most :data:`MAX_POLL_PACKETS` packets (16,
  the most a python-engineio client of any version decodes in one body);
  the rest go with the next GET. engineio's ``AsyncSocket.poll`` reads its
  queue as one ``await get()`` and then ``get_nowait()`` until
  ``QueueEmpty``, so the queue ends each batch itself.
- :func:`room_to_send` lets a sender of many events (a replay) wait until
  a connection has taken most of what it holds.

The queue reaches engineio through its public ``create_queue()``;
:func:`install` sets it on one server only (the chat's), never process-wide.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import engineio
import socketio
from engineio import packet as eio_packet

from . import _compat

__all__ = [
    "CEILING_FACTOR",
    "GOODBYE_TIMEOUT",
    "GRACE",
    "LOW_WATER_FACTOR",
    "MAX_POLL_PACKETS",
    "Outbox",
    "install",
    "on_websocket_open",
    "outbox_of",
    "packet_size",
    "room_to_send",
    "use_queue_class",
]

logger = logging.getLogger("chatlab")

#: Seconds a connection may hold more than its bound before it is sent away.
GRACE = 2.0
#: A connection holding more than this many times its bound is sent away at once.
CEILING_FACTOR = 2
#: :func:`room_to_send` answers once a connection holds less than its bound
#: divided by this (a quarter: 256 KiB of the default 1 MiB).
LOW_WATER_FACTOR = 4
#: The most packets one long-polling GET takes: the most python-engineio's
#: client decodes from one body (see _compat.polling_packet_limit).
MAX_POLL_PACKETS = 16
#: Seconds a websocket sent away has to take its ``error`` before its TCP
#: connection is cut (one that does not read never takes it).
GOODBYE_TIMEOUT = 1.0
# Without a bound, room_to_send waits for what the default bound's low water is.
_DEFAULT_LOW_WATER = 1024 * 1024 // LOW_WATER_FACTOR


def _check_bound(bound: Any) -> None:
    if isinstance(bound, bool) or not isinstance(bound, int) or bound <= 0:
        raise ValueError(f"the outgoing buffer must be a whole number of bytes above 0, "
                         f"not {bound!r}")


def packet_size(pkt: Any) -> int:
    """What ``pkt`` (an engineio packet, or None) counts for: its encoded
    length, in characters for text and in bytes for binary."""
    if pkt is None:
        return 0
    data = pkt.data
    if isinstance(data, str):
        return len(data) + 1  # the packet type's digit
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    if data is None:
        return 1
    return len(pkt.encode())  # a dict or list, as JSON


class Outbox(asyncio.Queue):  # type: ignore[type-arg]
    """An engineio connection's outgoing queue that counts what it holds.

    :param bound: the most bytes it may hold for long (see the module's
        docstring); ``None`` counts without a bound.
    :param sio: the Socket.IO server whose connection it serves (needed to
        send the connection away, and to name it in the log).

    ``held`` is what the queue holds, ``peak`` the most :meth:`unsent` has
    been when a packet was added, ``sent_away`` the reason once it has been
    sent away, ``closed`` whether its connection is closing or gone.
    """

    def __init__(self, maxsize: int = 0, *, bound: int | None = None,
                 sio: socketio.AsyncServer | None = None) -> None:
        super().__init__(maxsize)
        if bound is not None:
            _check_bound(bound)
        self.bound = bound
        self.ceiling = None if bound is None else bound * CEILING_FACTOR
        self.low_water = _DEFAULT_LOW_WATER if bound is None else bound // LOW_WATER_FACTOR
        self.sio = sio
        self.held = 0
        self.peak = 0
        self.sent_away: str | None = None
        self.closed = False
        # The engineio connection, its aiohttp websocket and transport, once
        # it is on a websocket (see on_websocket_open).
        self._socket: Any = None
        self._ws: Any = None
        self._transport: asyncio.Transport | None = None
        self._taken = 0  # packets taken since the last get(): one poll's batch
        self._grace: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future[None]] = []
        # Once sent away: its error packet, its engineio id, and the task closing it.
        self._goodbye: Any = None
        self._eio_sid: str | None = None
        self._closing: asyncio.Task[None] | None = None

    # -- what engineio calls --------------------------------------------------

    def attach(self, socket: Any, ws: Any, transport: asyncio.Transport) -> None:
        """The connection ``socket`` is now on the websocket ``ws``, which
        writes to ``transport``."""
        self._socket, self._ws, self._transport = socket, ws, transport

    def put_nowait(self, item: Any) -> None:
        if item is None or getattr(item, "packet_type", None) == eio_packet.CLOSE:
            self._connection_closing()  # the writer told to end, or a goodbye
        elif self.sent_away is not None:
            return  # going away: nothing more is kept for it
        self._add(item)
        self._check()

    async def get(self) -> Any:
        self._taken = 0  # a new batch: engineio's poll() starts with get()
        return await super().get()

    def get_nowait(self) -> Any:
        # Not once it is closing: a closing long-polling session has no next
        # poll, so its last one takes everything, the reason for closing too.
        if self._taken >= MAX_POLL_PACKETS and not self.closed:
            self._taken = 0
            raise asyncio.QueueEmpty  # the rest go with the next poll
        item = super().get_nowait()
        self._taken += 1
        self.held -= packet_size(item)
        if item is not None and item is self._goodbye:
            self._close_soon()
        if self._grace is not None and self.unsent() <= self.bound:  # type: ignore[operator]
            self._grace.cancel()
            self._grace = None
        if self._waiters and self.has_room():
            self._wake()
        return item

    # -- what the server asks -------------------------------------------------

    def unsent(self) -> int:
        """The bytes held for the connection: its queue, and what its
        websocket's transport has not written yet."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return self.held
        return self.held + transport.get_write_buffer_size()

    def has_room(self) -> bool:
        """Whether a sender may add more now: nothing queued, or less than
        the low water mark held."""
        return self.empty() or self.unsent() < self.low_water

    async def room(self) -> bool:
        """Wait until :meth:`has_room`: True then, False as soon as the
        connection is closing or gone."""
        loop = asyncio.get_running_loop()
        while not self.closing():
            if self.has_room():
                return True
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return False

    def closing(self) -> bool:
        """Whether its connection is closing or gone (its websocket's socket
        may close before engineio knows)."""
        transport = self._transport
        return self.closed or (transport is not None and transport.is_closing())

    def connection_closed(self) -> None:
        """Its connection is closing or gone: wake whoever waits for room."""
        self._connection_closing()

    # -- inside -----------------------------------------------------------

    def _add(self, item: Any) -> None:
        super().put_nowait(item)
        self.held += packet_size(item)

    def _connection_closing(self) -> None:
        self.closed = True
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _check(self) -> None:
        unsent = self.unsent()
        if unsent > self.peak:
            self.peak = unsent
        if self.bound is None or self.sio is None or self.sent_away is not None:
            return
        if unsent > self.ceiling:  # type: ignore[operator]
            self._send_away(f"more than {self.ceiling:,} bytes at once")
        elif unsent > self.bound and self._grace is None and not self.closed:
            self._grace = asyncio.get_running_loop().call_later(GRACE, self._grace_over)

    def _grace_over(self) -> None:
        self._grace = None
        if self.sent_away is None and not self.closed and self.unsent() > self.bound:  # type: ignore[operator]
            self._send_away(f"more than {self.bound:,} bytes for {GRACE:g} s")

    def _send_away(self, why: str) -> None:
        sio = self.sio
        assert sio is not None
        unsent = self.unsent()
        self.sent_away = why
        self._drop_all()
        eio_sid = getattr(self._socket, "sid", None) or _compat.sid_of_queue(sio.eio, self)
        sid = sio.manager.sid_from_eio_sid(eio_sid, "/") if eio_sid is not None else None
        logger.warning(
            "chatlab: closed connection %s: it was not reading, and the server held "
            "%s bytes for it (%s; Limits.outgoing_buffer is %s); it can reconnect and "
            "get the messages it missed after its serverOffset",
            sid or eio_sid, f"{unsent:,}", why, f"{self.bound:,}")
        reason = (f"this connection was closed because it was not reading: more than "
                  f"{self.bound:,} bytes of events waited for it (the server's limit). "
                  f"Reconnect, and you are sent the messages you missed after your "
                  f"serverOffset.")
        encoded = sio.packet_class(socketio.packet.EVENT, namespace="/", data=[
            "error", {"event": None, "reason": reason}]).encode()
        self._eio_sid = eio_sid
        self._goodbye = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        self._add(self._goodbye)
        if self._socket is not None:
            self._add(None)  # the writer closes the websocket once it has written the error
        self._connection_closing()
        asyncio.get_running_loop().call_later(GOODBYE_TIMEOUT, self._goodbye_over)

    def _drop_all(self) -> None:
        while not self.empty():
            super().get_nowait()
            self.task_done()  # so that a close(wait=True) does not wait on them
        self.held = 0

    def _close_soon(self) -> None:
        # The connection closes once its error is taken (a poll answered,
        # or the writer has it), or when the time for that is over.
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())

    async def _close(self) -> None:
        if self._eio_sid is not None:
            await _compat.drop_connection(self.sio.eio, self._eio_sid)  # type: ignore[union-attr]

    def _goodbye_over(self) -> None:
        self._close_soon()
        transport = self._transport
        if transport is not None and (not transport.is_closing()
                                      or transport.get_write_buffer_size()):
            transport.abort()  # it did not read its error: its socket goes, and all it held


# -- installing --------------------------------------------------------------

def on_websocket_open(socket: Any, ws: Any, transport: asyncio.Transport) -> None:
    """Tell a connection's :class:`Outbox` which websocket is its own (the
    callback of :func:`chatlab._compat.websocket_class_telling`)."""
    queue = getattr(socket, "queue", None)
    if isinstance(queue, Outbox):
        queue.attach(socket, ws, transport)


def install(sio: socketio.AsyncServer, bound: int) -> bool:
    """Give every connection ``sio`` accepts from now on an :class:`Outbox`
    of ``bound`` bytes. Only this server changes. False where engineio
    has no way to learn each connection's websocket: the queues still
    count and send away, but do not count or cut a websocket's socket."""
    _check_bound(bound)
    eio = sio.eio
    eio.create_queue = functools.partial(Outbox, bound=bound, sio=sio)
    _compat.on_connection_closed(eio, _closed(eio))
    return _compat.set_websocket_class(
        eio, _compat.websocket_class_telling(on_websocket_open)) is not None


def use_queue_class(eio: engineio.AsyncServer, queue_class: type[Outbox]) -> None:
    """Make ``eio``'s new connections use ``queue_class`` (a subclass of
    :class:`Outbox`), with the bound :func:`install` gave it, if any."""
    factory = getattr(eio, "create_queue", None)
    keywords: dict[str, Any] = {}
    if isinstance(factory, functools.partial) and isinstance(factory.func, type) \
            and issubclass(factory.func, Outbox):
        keywords = dict(factory.keywords)
    eio.create_queue = functools.partial(queue_class, **keywords)


def _closed(eio: engineio.AsyncServer) -> Any:
    def closed(eio_sid: str) -> None:
        queue = _compat.socket_queue(eio, eio_sid)
        if isinstance(queue, Outbox):
            queue.connection_closed()
    return closed


# -- asking about a connection -----------------------------------------------

def outbox_of(sio: socketio.AsyncServer, sid: str, namespace: str = "/") -> Outbox | None:
    """The :class:`Outbox` of the Socket.IO connection ``sid`` (None when it
    is gone, or its server does not use them)."""
    eio_sid = sio.manager.eio_sid_from_sid(sid, namespace)
    queue = _compat.socket_queue(sio.eio, eio_sid) if eio_sid is not None else None
    return queue if isinstance(queue, Outbox) else None


async def room_to_send(sio: socketio.AsyncServer, sid: str) -> bool:
    """Wait until the Socket.IO connection ``sid`` (namespace ``"/"``) has
    room for more: True once it holds less than a quarter of its bound
    (:data:`LOW_WATER_FACTOR`; what its socket's transport holds counts),
    or nothing is left in its queue (what its socket holds is then
    aiohttp's to pace); False at once when it is gone or closing, and as
    soon as it disconnects, or is sent away, while waiting (it never waits
    on a connection that has left).

    A sender of many events to one connection (a replay) awaits it between
    batches, so a client that reads slowly paces the sender instead of
    growing what the server holds. On a server without outboxes it only
    says whether ``sid`` is connected.

    Note: this function is a coroutine.
    """
    if not sio.manager.is_connected(sid, "/"):
        return False
    eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
    queue = _compat.socket_queue(sio.eio, eio_sid) if eio_sid is not None else None
    if queue is None:
        return False
    if not isinstance(queue, Outbox):
        return True
    return await queue.room()
