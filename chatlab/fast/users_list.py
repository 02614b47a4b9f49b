"""Announcing the users list: in a big chat, to everyone at most once per
interval.

The protocol sends the whole list to every connection at every join and
leave, so a thousand users joining make half a million lists. Up to a crowd
(100 users) that is what happens, exactly as in the tutorial. From then on,
within a burst the others only need the newest list: the first change after
a quiet spell still goes to everyone at once, later ones within the
interval go in one list when it ends. The user who joined or left always
gets its list at once (a python-engineio client leaving over polling waits
for that packet).
"""

from __future__ import annotations

import asyncio
from typing import Callable

import socketio

__all__ = ["UsersAnnouncer"]


class UsersAnnouncer:
    """Sends ``users`` with the list ``names()`` returns: every change to
    everyone at once while fewer than ``crowd`` users are listed, or with
    ``interval`` 0."""

    def __init__(self, sio: socketio.AsyncServer, names: Callable[[], list[str]],
                 interval: float, crowd: int = 100) -> None:
        self._sio = sio
        self._names = names
        self.interval = interval
        self.crowd = crowd
        self._sent_at = float("-inf")  # loop time of the last list to everyone
        self._pending = False  # a list to everyone is due at the end of the interval

    async def changed(self, sid: str) -> None:
        """The connection ``sid`` joined or left (it is still connected)."""
        names = self._names()
        now = asyncio.get_running_loop().time()
        wait = self._sent_at + self.interval - now
        if not self._pending and (wait <= 0 or len(names) < self.crowd):
            self._sent_at = now
            await self._sio.emit("users", names)
            return
        if not self._pending:
            self._pending = True
            self._sio.start_background_task(self._send_later, wait)
        await self._sio.emit("users", names, to=sid)

    async def _send_later(self, wait: float) -> None:
        try:
            await asyncio.sleep(wait)  # the end of the interval, not a wait for an event
        finally:
            self._pending = False
        self._sent_at = asyncio.get_running_loop().time()
        await self._sio.emit("users", self._names())
