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


class FanoutManager(socketio.AsyncManager):
    """``socketio.AsyncManager`` with a task-free broadcast. Emits that ask
    for acknowledgements (a packet id per recipient) go the usual way."""

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
        eio = self.server.eio
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            # Straight to an idle websocket (chatlab.fast.direct_writes), past
            # engineio's send(), whose ping check its service task also makes.
            queue = _compat.socket_queue(eio, eio_sid)
            if len(packets) == 1 and isinstance(queue, DirectQueue) \
                    and queue.write_now(packets[0]):
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
