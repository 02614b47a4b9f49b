"""Serving a plain AsyncServer with chatlab.fast's speed-ups, as ChatServer does."""

from __future__ import annotations

from typing import Any

import socketio
from aiohttp import web

import chatlab
from chatlab.fast import FastPaths


def serve_fast(sio: socketio.AsyncServer, *, name: str, **fast: Any) -> Any:
    """``chatlab.serve(sio)`` with ``FastPaths(**fast)`` applied to it."""
    app = web.Application()
    FastPaths(**fast).apply(sio, app)
    return chatlab.serve(sio, name=name, app=app)
