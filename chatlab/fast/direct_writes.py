"""Writing a packet straight to its websocket when nothing is waiting before it.

python-engineio gives every websocket connection a writer task: sending a
packet puts it in the connection's queue, which wakes the writer, which
takes it out (one ``asyncio.wait_for`` each time), frames it and writes it.
A broadcast to a hundred users paid that round for each of them, and it was
most of what a delivery cost (docs/benchmarks.md). Node's Socket.IO builds
the frame once and writes it to every socket.

:class:`DirectQueue` is the connection's queue with a shortcut: when the
writer is idle, waiting on an empty queue, everything sent before has
already been written, so a new packet can be written to the socket at once,
in order, without waking the writer. The finished frame (the same bytes for
every recipient: a server does not mask its frames) is built once per
packet. The frames written this way in one turn of the event loop go to
each socket in one write, at the end of the turn (a callback the loop runs
next, before it waits for anything): several broadcasts reaching a
connection at once cost one system call, not one each, and none waits
longer than the turn. Pings, and anything else (the writer busy, packets queued, a polling or
upgrading connection, a compressed or closing websocket, a client that is
not reading) takes the queue as before.

engineio has no seam for this; :func:`install` uses two it does have: the
server's ``create_queue`` (public) and its table of transport classes,
where a websocket class of :mod:`chatlab._compat`'s tells each queue which
websocket is its own.
"""

from __future__ import annotations

import asyncio
import struct
import weakref
from typing import Any

from engineio import packet as eio_packet

from .. import _compat, outbox
from ..outbox import Outbox

__all__ = ["DirectQueue", "frame_of", "install"]

# Past this many unsent bytes in a socket's buffer, packets queue again, and
# the writer (aiohttp's flow control) paces them for a client not reading.
WRITE_BUFFER_LIMIT = 64 * 1024

_TEXT, _BINARY = 0x81, 0x82  # FIN + opcode

# The frame last built, with its packet: a broadcast sends one packet object
# to every recipient in turn.
_last_frame: tuple[Any, bytes] = (None, b"")


def frame_of(pkt: eio_packet.Packet) -> bytes:
    """The websocket frame (unmasked, uncompressed) carrying ``pkt``."""
    global _last_frame
    last = _last_frame
    if last[0] is pkt:
        return last[1]
    encoded = pkt.encode()
    if isinstance(encoded, str):
        first, payload = _TEXT, encoded.encode()
    else:
        first, payload = _BINARY, bytes(encoded)
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, size)
    elif size < 65536:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    frame = header + payload
    _last_frame = (pkt, frame)
    return frame


class _TurnEnd:
    """The queues of one event loop with frames to write when its turn
    ends: one callback for them all, however many recipients."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._call_soon = loop.call_soon
        self._queues: list[DirectQueue] = []

    def add(self, queue: DirectQueue) -> None:
        if not self._queues:
            self._call_soon(self._write)
        self._queues.append(queue)

    def _write(self) -> None:
        queues, self._queues = self._queues, []
        for queue in queues:
            queue._write_frames()


# Each loop's, made when it first has frames to write.
_turn_ends: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _TurnEnd] = \
    weakref.WeakKeyDictionary()


def _turn_end() -> _TurnEnd:
    loop = asyncio.get_running_loop()
    turn_end = _turn_ends.get(loop)
    if turn_end is None:
        turn_end = _turn_ends[loop] = _TurnEnd(loop)
    return turn_end


class DirectQueue(Outbox):
    """An engineio connection's :class:`~chatlab.outbox.Outbox` that writes
    past an idle writer. What it writes straight to the socket counts in
    :meth:`~chatlab.outbox.Outbox.unsent` while the socket's transport
    holds it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._writer_waiting = False
        self._frames: list[bytes] = []  # to write at the end of this turn
        self._frames_size = 0
        self._turn_end: _TurnEnd | None = None  # its loop's, once known
        self._compressed = True  # until attach() says otherwise

    async def get(self) -> Any:
        # Only the writer reads a websocket connection's queue (once a
        # connection is upgraded, engineio answers a late poll with a NOOP).
        # Waiting here, with the queue empty, it holds nothing unsent.
        self._writer_waiting = True
        try:
            return await super().get()
        finally:
            self._writer_waiting = False

    def put_nowait(self, item: Any) -> None:
        if item is None or not self.write_now(item):
            super().put_nowait(item)

    def write_now(self, pkt: eio_packet.Packet) -> bool:
        """Write ``pkt`` to the socket, with the others of this turn, if
        nothing is ahead of it; False if it must take the queue."""
        # Pings keep the queue's way: the writer closes the connection when
        # nothing reaches it for a ping interval and timeout, and a ping
        # every interval is what keeps it waiting.
        if pkt.packet_type != eio_packet.MESSAGE or not self._can_write():
            return False
        if not self._frames:  # the first of this turn: written when the turn ends
            if self._turn_end is None:
                # Kept: looking the running loop up costs a system call
                # (getpid()) on Python 3.11, for each recipient of a message.
                self._turn_end = _turn_end()
            self._turn_end.add(self)
        frame = frame_of(pkt)
        self._frames.append(frame)
        self._frames_size += len(frame)
        return True

    def unsent(self) -> int:
        return super().unsent() + self._frames_size

    def _write_frames(self) -> None:
        frames, self._frames, self._frames_size = self._frames, [], 0
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # gone: as a write to a closing transport would be
        try:
            transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
        except Exception:  # noqa: BLE001 - a transport that failed: its connection ends
            pass

    def attach(self, socket: Any, ws: Any, transport: Any) -> None:
        super().attach(socket, ws, transport)
        # Settled by the handshake, for good: whether frames are compressed.
        self._compressed = bool(ws.compress)

    def _can_write(self) -> bool:
        transport = self._transport
        return (
            self._writer_waiting
            and self.empty()
            and not self.closed
            and transport is not None
            and not self._compressed
            and _compat.socket_is_open_websocket(self._socket)
            and not self._ws.closed
            and not transport.is_closing()
            and transport.get_write_buffer_size() + self._frames_size < WRITE_BUFFER_LIMIT
        )


def install(eio: Any) -> bool:
    """Give the connections ``eio`` makes from now on the direct way (with
    the bound :func:`chatlab.outbox.install` gave them, if any); False (and
    the writer's way for every packet) where engineio has no seam."""
    if _compat.set_websocket_class(
            eio, _compat.websocket_class_telling(outbox.on_websocket_open)) is None:
        return False
    outbox.use_queue_class(eio, DirectQueue)
    return True
