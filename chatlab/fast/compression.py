"""Refusing permessage-deflate, as Node's Socket.IO does by default.

aiohttp accepts websocket compression whenever a client offers it, and
browsers and socket.io-client always do; engineio has no option for it.
Compressing each small chat frame for each recipient cost a busy server
13-20% of its time and 230 KB of zlib state per connection.
"""

from __future__ import annotations

from typing import Any

from aiohttp import hdrs, web

__all__ = ["without_compression"]


@web.middleware
async def without_compression(request: web.Request, handler: Any) -> web.StreamResponse:
    """Serve a websocket request as if it had not offered compression."""
    if hdrs.SEC_WEBSOCKET_EXTENSIONS in request.headers:
        headers = request.headers.copy()
        del headers[hdrs.SEC_WEBSOCKET_EXTENSIONS]
        request = request.clone(headers=headers)
    return await handler(request)
