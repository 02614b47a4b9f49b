"""A python-socketio client that logs every event it sends and receives.

The lessons use it where the learner writes the client's handlers: it is a
real ``socketio.AsyncClient`` (``@client.on(...)``, ``emit``, ``call`` work
as documented there), whose ``log`` an event-log widget can show and whose
``wait_for()`` lets a cell wait for an event instead of sleeping. Each
entry of the log names the namespace the event travelled on, so one client
connected to several namespaces (``connect(url, namespaces=["/chat",
"/admin"])``) keeps one log of them all.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import socketio

from . import _compat
from .events import EventLog

__all__ = ["RecordingClient", "shutdown_all"]

# Every client that connected, so that chatlab.shutdown() can close them all
# (a re-run cell leaves the old client behind, still connected).
_clients: "weakref.WeakSet[RecordingClient]" = weakref.WeakSet()


class RecordingClient(socketio.AsyncClient):
    """``socketio.AsyncClient`` plus ``name``, ``log`` and ``wait_for``.

    :param name: a label for the event-log widget and error messages.
    """

    def __init__(self, name: str = "client", **options: Any) -> None:
        options.setdefault("handle_sigint", False)  # leave Ctrl-C to the kernel
        super().__init__(**options)
        self.name = name
        self.log = EventLog()
        self._loop: asyncio.AbstractEventLoop | None = None
        _compat.watch_client_events(self)

    async def connect(self, *args: Any, **kwargs: Any) -> None:
        self._loop = asyncio.get_running_loop()
        _clients.add(self)
        await super().connect(*args, **kwargs)

    async def emit(self, event: str, data: Any = None, namespace: str | None = None,
                   callback: Any = None) -> None:
        namespace = namespace or "/"
        if namespace in self.namespaces:  # else emit() raises: nothing went out
            # A tuple travels as several arguments: log them as the server gets them.
            args = () if data is None else data if isinstance(data, tuple) else (data,)
            self.log.record("out", event, *args, namespace=namespace)
        await super().emit(event, data, namespace=namespace, callback=callback)

    def event_received(self, event: str, args: tuple[Any, ...], namespace: str = "/") -> None:
        """Log an incoming event on ``namespace``, whether or not it has a
        handler (connect_error and disconnect included)."""
        # python-socketio's own bookkeeping events ("__disconnect_final")
        # are not the server's.
        if not event.startswith("__"):
            self.log.record("in", event, *args, namespace=namespace or "/")

    async def wait_for(self, event: str, *, count: int = 1, timeout: float = 5.0,
                       namespace: str | None = None) -> int:
        """Wait until ``event`` has arrived ``count`` times in all, on
        ``namespace`` only if one is given."""
        return await self.log.wait_for(event, count=count, timeout=timeout,
                                       namespace=namespace)

    def received(self, event: str, namespace: str | None = None) -> list[tuple[Any, ...]]:
        """The data of every ``event`` received (on ``namespace`` only, if
        given) and still in the log."""
        return [e.data for e in self.log.entries if e.direction == "in" and e.event == event
                and namespace in (None, e.namespace)]

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<RecordingClient {self.name!r} {state}>"


async def shutdown_all() -> None:
    """Shut down every RecordingClient that connected on this event loop
    (disconnect it, and stop any reconnection in progress)."""
    loop = asyncio.get_running_loop()
    for client in list(_clients):
        if client._loop is loop:
            await client.shutdown()
