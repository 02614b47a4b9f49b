"""The harness the lesson checks share.

A :class:`CheckRun` serves the learner's server under the check's own name,
connects the clients that talk to it, turns an untouched stub into the ⏭
line, and always cleans up: every client shut down, the server stopped.
"""

from __future__ import annotations

import asyncio
import os
import traceback
from pathlib import Path
from typing import Any, Callable

import engineio
import socketio

from ..host import HandlerError, RunningServer, serve
from ..recording import RecordingClient
from ..waiting import WaitTimeout
from . import ExerciseFailed, NotAttempted, not_attempted

__all__ = ["CheckRun", "WAIT", "call_or_error"]

# An event the checks add to the learner's server: its answer, sent after
# everything the server queued for that client before, tells a check that the
# client has received all of it (and nothing more is on its way).
PING = "chatlab-check-ping"

# How long a check waits for something that a right answer does at once.
WAIT = 2.0


def _pong(sid: str, *args: Any) -> str:
    return "pong"


class CheckRun:
    """One run of a check: the learner's server and the clients talking to it.

    Use as ``async with CheckRun("check-name", "what it is") as run:``; on the
    way out every client is shut down and the server stopped, whatever
    happened. :class:`NotAttempted` raised inside is turned into the ⏭ line.
    """

    def __init__(self, name: str, what: str) -> None:
        self.name = name
        self.what = what
        self.server: RunningServer | None = None
        self.clients: list[RecordingClient] = []

    async def __aenter__(self) -> "CheckRun":
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        try:
            for client in self.clients:
                await client.shutdown()
        finally:
            if self.server is not None:
                await self.server.stop()
        if exc_type is not None and issubclass(exc_type, NotAttempted):
            not_attempted(str(exc) or self.what)
            return True
        return False

    async def serve(self, make_server: Callable[[], Any]) -> RunningServer:
        """Call the learner's ``make_server()`` and serve what it returns."""
        if not callable(make_server):
            raise ExerciseFailed(
                f"pass the function itself, e.g. check(make_server), not {make_server!r}")
        try:
            sio = make_server()
        except NotImplementedError:
            raise NotAttempted(self.what) from None
        if not isinstance(sio, socketio.AsyncServer):
            raise ExerciseFailed(
                f"{_name_of(make_server)}() should return a socketio.AsyncServer, "
                f"but it returned {sio!r}; did you forget `return sio`?")
        sio.on(PING, handler=_pong)
        try:
            # The check reports the learner's handler errors itself.
            self.server = await serve(sio, name=self.name, report_errors=False)
        except RuntimeError as exc:  # the same AsyncServer is served elsewhere
            raise ExerciseFailed(
                f"{_name_of(make_server)}() should create a new AsyncServer each "
                f"time it is called ({exc})") from None
        except ValueError as exc:  # e.g. another async_mode than aiohttp
            raise ExerciseFailed(str(exc)) from None
        return self.server

    async def connect(self, name: str, auth: Any = None) -> RecordingClient:
        """Connect a client called ``name``; the connection must be accepted."""
        client = await self.try_connect(name, auth)
        if not client.connected:
            self.raise_handler_errors()
            refusal = client.received("connect_error")
            raise ExerciseFailed(
                f"the server refused {name!r}, who connected with auth={auth!r}"
                + (f" (it said {refusal[-1][0]!r})" if refusal else ""))
        return client

    async def try_connect(self, name: str, auth: Any = None) -> RecordingClient:
        """Connect a client called ``name``; it may be refused (then it is
        returned not connected)."""
        assert self.server is not None
        client = RecordingClient(name, reconnection=False)
        self.clients.append(client)
        try:
            await client.connect(self.server.url, auth=auth, wait_timeout=WAIT)
        except socketio.exceptions.ConnectionError:
            pass
        return client

    async def settle(self, *clients: RecordingClient) -> None:
        """Return once each client has received everything the server sent
        it so far (a ping's answer comes after all of it)."""
        for client in clients or tuple(self.clients):
            if client.connected:
                try:
                    await client.call(PING, timeout=WAIT)
                except socketio.exceptions.TimeoutError:
                    self.raise_handler_errors()
                    raise ExerciseFailed(
                        f"the server stopped answering {client.name}") from None

    async def expect(self, client: RecordingClient, event: str, count: int, problem: str) -> None:
        """Wait until ``client`` has received ``event`` ``count`` times; if it
        does not, report the handler errors or else ``problem``."""
        try:
            await client.wait_for(event, count=count, timeout=WAIT)
        except WaitTimeout:
            self.raise_handler_errors()
            raise ExerciseFailed(problem) from None

    def raise_handler_errors(self, *, ignore: tuple[type[BaseException], ...] = ()) -> None:
        """Report the first error the learner's handlers raised, if any: a
        stub's ``NotImplementedError`` as not attempted, others as wrong."""
        assert self.server is not None
        errors = [e for e in self.server.errors if not isinstance(e.exception, ignore)]
        for error in errors:
            if isinstance(error.exception, NotImplementedError):
                raise NotAttempted(f"{self.what} (the {error.event!r} handler is still a stub)")
        if errors:
            raise ExerciseFailed(_describe(errors[0]))


def _describe(error: HandlerError) -> str:
    """The error, and the learner's line that raised it when it is known."""
    frames = [frame for frame in traceback.extract_tb(error.exception.__traceback__)
              if not frame.filename.startswith(_LIBRARIES)]
    where = f" at `{frames[-1].line}`" if frames and frames[-1].line else ""
    return f"{error}{where}"


# Frames in these packages are not the learner's code.
_LIBRARIES = tuple(
    str(Path(path).parent) + os.sep
    for path in (socketio.__file__, engineio.__file__, Path(__file__).parent))


def _name_of(function: Callable[..., Any]) -> str:
    return getattr(function, "__name__", "make_server")


async def call_or_error(run: CheckRun, client: Any, event: str, data: Any, problem: str) -> Any:
    """``client.call(event, data)`` and return the acknowledgement. If a
    handler raises instead, report that at once (rather than after waiting
    for an acknowledgement that will never come); if nothing answers,
    fail with ``problem``."""
    assert run.server is not None
    server = run.server
    call = asyncio.ensure_future(client.call(event, data, timeout=WAIT))
    error = asyncio.ensure_future(
        server.wait_for_errors(len(server.errors) + 1, timeout=WAIT))
    try:
        await asyncio.wait({call, error}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (call, error):
            task.cancel()
        await asyncio.gather(call, error, return_exceptions=True)
    if not call.cancelled() and call.exception() is None:
        return call.result()
    run.raise_handler_errors()
    raise ExerciseFailed(problem)
