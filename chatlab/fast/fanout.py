"""Sending one event to many connections, without a task for each.

python-socketio's in-process manager encodes a broadcast once, then starts
one asyncio task per recipient just to put the packet in that connection's
queue, and waits for them all. Putting a packet in a queue does not block,
so the tasks buy nothing; at a hundred listeners they were a large part of
what each delivery cost. :class:`FanoutManager` puts the same encoded
packet in each queue in turn instead, or, where the connection's writer is
idle, writes it to the socket at once (:mod:`chatlab.fast.direct_writes`). It is
passed to ``AsyncServer`` as its ``client_manager``, the library's own seam
for this.

It also keeps each room's recipients, with their queues, as a list made at
the room's first broadcast and dropped whenever anyone enters or leaves a
room (python-socketio's ``basic_enter_room`` and ``basic_leave_room``,
which every join, leave and disconnect goes through): a chat sends many
messages to a room for each change of who is in it.
"""

from __future__ import annotations

from typing import Any

import engineio
import socketio
from engineio import packet as eio_packet
from socketio import packet

from .. import _compat
from .direct_writes import DirectQueue

__all__ = ["FanoutManager", "FanoutRedisManager"]


# One recipient of a broadcast: its id in the namespace, its engineio id,
# and its queue when that can write past the writer (else None).
Recipient = tuple[str, str, "DirectQueue | None"]


class FanoutManager(socketio.AsyncManager):
    """``socketio.AsyncManager`` with a task-free broadcast. Emits that ask
    for acknowledgements (a packet id per recipient) go the usual way."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recipients: dict[tuple[str, Any], list[Recipient]] = {}

    def basic_enter_room(self, *args: Any, **kwargs: Any) -> Any:
        self._recipients.clear()
        return super().basic_enter_room(*args, **kwargs)

    def basic_leave_room(self, *args: Any, **kwargs: Any) -> Any:
        self._recipients.clear()
        return super().basic_leave_room(*args, **kwargs)

    def recipients(self, namespace: str, room: Any) -> list[Recipient]:
        """Who a broadcast to ``room`` (None: the whole namespace) reaches here."""
        try:
            return self._recipients[namespace, room]
        except KeyError:
            pass
        except TypeError:  # several rooms, in a list: made each time
            return self._recipients_now(namespace, room)
        made = self._recipients[namespace, room] = self._recipients_now(namespace, room)
        return made

    def _recipients_now(self, namespace: str, room: Any) -> list[Recipient]:
        eio = self.server.eio
        made = []
        for sid, eio_sid in self.get_participants(namespace, room):
            queue = _compat.socket_queue(eio, eio_sid)
            made.append((sid, eio_sid, queue if isinstance(queue, DirectQueue) else None))
        return made

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        if callback is not None:
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                               callback=callback, to=to, **kwargs)
            return
        room = to or room
        if namespace not in self.rooms:
            return
        # The data as python-socketio's own emit takes it: a tuple is
        # several arguments, None none, anything else one.
        if isinstance(data, tuple):
            args = list(data)
        elif data is not None:
            args = [data]
        else:
            args = []
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        encoded = self.server.packet_class(
            packet.EVENT, namespace=namespace, data=[event, *args]).encode()
        packets = [eio_packet.Packet(eio_packet.MESSAGE, part)
                   for part in (encoded if isinstance(encoded, list) else [encoded])]
        single = packets[0] if len(packets) == 1 else None
        for sid, eio_sid, queue in self.recipients(namespace, room):
            if sid in skip:
                continue
            # Straight to an idle websocket (chatlab.fast.direct_writes), past
            # engineio's send(), whose ping check its service task also makes.
            if single is not None and queue is not None and queue.write_now(single):
                continue
            for eio_pkt in packets:
                try:
                    await self.server.eio.send_packet(eio_sid, eio_pkt)
                except engineio.exceptions.SocketIsClosedError:
                    break  # closing: nothing more reaches it, and the others still get theirs


class FanoutRedisManager(socketio.AsyncRedisManager, FanoutManager):
    """``socketio.AsyncRedisManager`` whose sends to this server's own
    connections (its emits, and those other nodes pass on through Redis)
    are :class:`FanoutManager`'s: python-socketio's pub/sub manager makes
    them with ``super().emit``, which here is FanoutManager's. For a node
    of a cluster (:mod:`chatlab.cluster`)."""
