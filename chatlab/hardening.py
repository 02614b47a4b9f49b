"""The chat server's defences below the level of events.

:mod:`chatlab.guards` checks the events a client sends; this module deals
with what a broken or hostile client sends that is not an event at all:

- a packet the server cannot read (bad JSON, nesting too deep for the
  decoder, an event that is not a list, a stray attachment) closes that
  one connection, after an ``error`` saying why, as Node's server closes
  it (python-socketio would log it and carry on);
- a long-polling request bigger than ``max_http_buffer_size`` is answered
  413 at once (engineio closes the session and leaves the request waiting
  for a poll that never comes, the whole ping timeout).
"""

from __future__ import annotations

from typing import Any

import socketio
from aiohttp import web

from . import _compat

__all__ = ["close_on_unreadable_packets", "refuse_oversized_requests"]


def close_on_unreadable_packets(sio: socketio.AsyncServer) -> None:
    """Close a connection that sends ``sio`` a packet it cannot read."""

    async def close(eio_sid: str, exc: BaseException) -> None:
        kind = "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__
        reason = f"the server could not read a packet ({kind}); closing this connection"
        sio.logger.warning("closing %s: unreadable packet: %r", eio_sid, exc)
        sid = sio.manager.sid_from_eio_sid(eio_sid, "/")
        if sid is not None:
            await sio.emit("error", {"event": None, "reason": reason}, to=sid)
        await sio.eio.disconnect(eio_sid)

    _compat.handle_unreadable_packets(sio, close)


def refuse_oversized_requests(sio: socketio.AsyncServer) -> Any:
    """An aiohttp middleware answering 413 to a request body over ``sio``'s
    ``max_http_buffer_size``."""

    @web.middleware
    async def refuse_oversized(request: web.Request, handler: Any) -> web.StreamResponse:
        limit = sio.eio.max_http_buffer_size
        if request.content_length is not None and request.content_length > limit:
            refusal = web.Response(
                status=413, text=f"the request is over the limit of {limit} bytes")
            refusal.force_close()  # the unread body would follow on this connection
            return refusal
        return await handler(request)

    return refuse_oversized
