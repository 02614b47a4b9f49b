"""Handling a websocket's messages as they are read, without a task for each.

engineio's reading loop waits for each packet of a websocket in a new task
under ``asyncio.wait_for``: a task, a timer and three turns of the event
loop for every message a client sends, before its handler even starts. With
:func:`install`, the websocket's own ``wait()`` hands each message to the
connection as it reads it (:func:`chatlab._compat.websocket_class_telling`),
and engineio's loop sees only pings' answers and the end. What a message
does is unchanged: the same ``receive()``, in the same order, one at a time.
"""

from __future__ import annotations

from typing import Any

from .. import _compat, outbox

__all__ = ["install"]


def install(eio: Any) -> bool:
    """Make the websockets ``eio`` accepts from now on handle their
    messages as they read them; False (engineio's loop for every packet)
    where engineio has no seam for it."""
    return _compat.set_websocket_class(eio, _compat.websocket_class_telling(
        outbox.on_websocket_open, inline_messages=True)) is not None
