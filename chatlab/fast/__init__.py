"""Opt-in speed-ups for the chat server and ``chatlab serve``.

The chat works without any of them, and the lessons' servers never have
them: each one trades some plainness for speed in a busy chat (measured
one by one in docs/benchmarks.md).

- :mod:`.fanout`: a broadcast puts one encoded packet in each recipient's
  queue in turn, instead of a task per recipient.
- :mod:`.direct_writes`: a packet for an idle websocket is written to its
  socket at once, instead of waking engineio's writer task (the queue is
  still the chat's bounded :class:`~chatlab.outbox.Outbox`, and what is
  written counts in it until the socket has sent it).
- :mod:`.inline_reads`: a websocket's messages handled as they are read,
  instead of through a task and a timer each in engineio's reading loop.
- :mod:`.packets`: Socket.IO packets encoded and decoded with JSON coders
  made once, instead of one made for every packet.
- :mod:`.compression`: websocket compression refused, as in Node.
- :mod:`.users_list`: in a chat of 100 users or more, one users list per
  burst of joins and leaves.

``ChatServer(fast=FastPaths())`` turns them all on, ``FastPaths(fanout=False)``
and so on leaves one out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import socketio
from aiohttp import web

from . import direct_writes, inline_reads
from .compression import without_compression
from .fanout import FanoutManager
from .packets import ChatPacket
from .users_list import UsersAnnouncer

__all__ = ["FanoutManager", "FastPaths", "UsersAnnouncer"]


@dataclass(frozen=True)
class FastPaths:
    """Which speed-ups a chat server uses (all, unless switched off here).

    :param users_interval: in a chat of 100 users or more, the shortest
        time between two ``users`` lists to everyone (0: every change).
    """

    fanout: bool = True
    direct_writes: bool = True
    inline_reads: bool = True
    packets: bool = True
    websocket_compression: bool = False
    users_interval: float = 0.05

    def __post_init__(self) -> None:
        interval = self.users_interval
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) \
                or not 0 <= interval <= 10:
            raise ValueError("users_interval must be a number of seconds from 0 to 10")

    def client_manager(self) -> socketio.AsyncManager | None:
        """The manager to create the server with (None: python-socketio's)."""
        return FanoutManager() if self.fanout else None

    def serializer(self) -> type | str:
        """The packet class to create the server with (python-socketio's
        ``serializer``)."""
        return ChatPacket if self.packets else "default"

    def users_announcer(self, sio: socketio.AsyncServer,
                        names: Callable[[], list[str]]) -> UsersAnnouncer | None:
        """What sends the users list in a crowd (None: every change to all)."""
        return UsersAnnouncer(sio, names, self.users_interval) if self.users_interval else None

    def apply(self, sio: socketio.AsyncServer, app: web.Application) -> None:
        """Put the transport-level speed-ups on ``sio``, served by ``app``."""
        if self.direct_writes:
            direct_writes.install(sio.eio)
        if self.inline_reads:
            inline_reads.install(sio.eio)
        if not self.websocket_compression:
            app.middlewares.append(without_compression)
