"""The harness the lesson checks share.

A :class:`CheckRun` serves the learner's server under the check's own name,
connects the clients that talk to it, turns an untouched stub into the
"not tried yet" line, tells a failure which exercise it is and what was
expected, and always cleans up: every client shut down, the server stopped.

A check never decides that something did *not* happen by waiting a while
for it: :meth:`CheckRun.settle` returns once the server has finished
handling everything the clients sent and every client has received what
that sent it, so that what is not in a client's log by then is not coming.
It rests on two facts: a connection delivers its packets in order, and
python-socketio runs each event handler (and each task a learner starts with
``sio.start_background_task``) in a task started through the server's
``start_background_task``, which the run watches. ``WAIT`` only bounds what
a right answer does at once; it runs out only for a handler that never
finishes.
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
from ..waiting import Changes, WaitTimeout
from . import ExerciseFailed, NotAttempted, not_attempted

__all__ = ["CheckRun", "WAIT", "call_or_error"]

# An event the checks add to the learner's server: its answer, sent after
# everything the server queued for that client before, tells a check that the
# client has received all of it (see CheckRun.settle for what else is needed
# to know that nothing more is on its way).
PING = "chatlab-check-ping"

# How long a check waits, at most, for something that a right answer does at
# once (a connection, an acknowledgement, a handler to finish). A wrong answer
# is found out from what happened, not by waiting this out.
WAIT = 2.0


def _pong(sid: str, *args: Any) -> str:
    return "pong"


class CheckRun:
    """One run of a check: the learner's server and the clients talking to it.

    Use as ``async with CheckRun("check-name", "what it is") as run:``; on the
    way out every client is shut down and the server stopped, whatever
    happened. :class:`NotAttempted` raised inside is turned into the "not
    tried yet" line; an :class:`ExerciseFailed` is told the exercise's name
    (``what``) and what a right answer does (``expected``).
    """

    def __init__(self, name: str, what: str, *, expected: str | None = None) -> None:
        self.name = name
        self.what = what
        self.expected = expected
        self.server: RunningServer | None = None
        self.clients: list[RecordingClient] = []
        # The server's handler tasks and the learner's background tasks that
        # have not finished yet (see _watch_tasks).
        self._tasks: set[asyncio.Future[Any]] = set()
        # Those of them that outlived a wait of WAIT seconds (a handler that
        # never finishes, a task that runs for good): not waited for again.
        self._lingering: set[asyncio.Future[Any]] = set()
        self._task_changes = Changes()
        self._unwatch: Callable[[], None] | None = None

    async def __aenter__(self) -> "CheckRun":
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        try:
            for client in self.clients:
                await client.shutdown()
        finally:
            try:
                if self.server is not None:
                    await self.server.stop()
            finally:
                if self._unwatch is not None:
                    self._unwatch()
                    self._unwatch = None
        if exc_type is not None and issubclass(exc_type, NotAttempted):
            not_attempted(str(exc) or self.what)
            return True
        if isinstance(exc, ExerciseFailed):
            exc.exercise = exc.exercise or self.what
            exc.expected = exc.expected or self.expected
        return False

    async def serve(self, make_server: Callable[[], Any]) -> RunningServer:
        """Call the learner's ``make_server()`` and serve what it returns."""
        if not callable(make_server):
            raise ExerciseFailed(
                f"the check was given {make_server!r}, which is not a function",
                hint="pass the function itself, e.g. check(make_server), not what it returns")
        try:
            sio = make_server()
        except NotImplementedError:
            raise NotAttempted(self.what) from None
        if not isinstance(sio, socketio.AsyncServer):
            raise ExerciseFailed(
                f"{_name_of(make_server)}() should return a socketio.AsyncServer, "
                f"but it returned {sio!r}", hint="did you forget `return sio`?")
        sio.on(PING, handler=_pong)
        try:
            # The check reports the learner's handler errors itself.
            self.server = await serve(sio, name=self.name, report_errors=False)
        except RuntimeError as exc:  # the same AsyncServer is served elsewhere
            raise ExerciseFailed(
                f"{_name_of(make_server)}() returned an AsyncServer that is already "
                f"running ({exc})",
                hint=f"{_name_of(make_server)}() should create a new AsyncServer each "
                     f"time it is called: `sio = socketio.AsyncServer(...)` inside "
                     f"the function") from None
        except ValueError as exc:  # e.g. another async_mode than aiohttp
            raise ExerciseFailed(str(exc)) from None
        self._watch_tasks(sio)
        return self.server

    def _watch_tasks(self, sio: socketio.AsyncServer) -> None:
        """Keep every task started with ``sio.start_background_task`` until
        it ends: python-socketio starts each event handler that way (and a
        learner each background task), so when none is left, every handler
        has finished and has sent all it was going to send. Only this
        instance is changed, and only while the check runs."""
        original = sio.start_background_task

        def start_background_task(target: Any, *args: Any, **kwargs: Any) -> Any:
            task = original(target, *args, **kwargs)
            if isinstance(task, asyncio.Future):
                self._tasks.add(task)
                task.add_done_callback(self._task_done)
            return task

        sio.start_background_task = start_background_task  # type: ignore[method-assign]

        def unwatch() -> None:
            if vars(sio).get("start_background_task") is start_background_task:
                del sio.start_background_task

        self._unwatch = unwatch

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        self._lingering.discard(task)
        self._task_changes.notify()

    async def handlers_done(self) -> bool:
        """Return once no event handler of the server and no task started
        with ``sio.start_background_task`` is running (True), or after
        ``WAIT`` seconds if one still is (False; such a task is not waited
        for again)."""
        try:
            await self._task_changes.wait_until(
                lambda: self._tasks <= self._lingering, timeout=WAIT,
                what="the server's handlers and background tasks finished")
        except WaitTimeout:
            self._lingering |= self._tasks
            return False
        return True

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
        """Return once the server has handled everything every client sent
        so far, and each of ``clients`` (all, by default) has received what
        the handlers sent it: what it has not received by then, the server
        did not send. Three steps, each settled by an event:

        1. every client pings the server: the server reads a connection's
           packets in order, so by the answer each event sent before the
           ping has been dispatched (its handler started);
        2. every handler, and every background task, has finished;
        3. each of ``clients`` pings again: the answer comes after all that
           the handlers queued for it.

        A handler that never finishes holds step 2 up for ``WAIT`` seconds
        at most; then the check goes on with what has arrived.
        """
        for client in self.clients:
            await self._ping(client)
        await self.handlers_done()
        for client in clients or tuple(self.clients):
            await self._ping(client)

    async def _ping(self, client: RecordingClient) -> None:
        if not client.connected:
            return
        try:
            await client.call(PING, timeout=WAIT)
        except socketio.exceptions.TimeoutError:
            self.raise_handler_errors()
            raise ExerciseFailed(f"the server stopped answering {client.name}") from None

    async def expect(self, client: RecordingClient, event: str, count: int, problem: str) -> None:
        """Make sure ``client`` has received ``event`` ``count`` times, once
        the server has finished with what was sent so far (see
        :meth:`settle`); if it has not, report the handler errors or else
        ``problem``."""
        if client.log.counts["in", event] >= count:
            return
        await self.settle(client)
        if client.log.counts["in", event] < count:
            self.raise_handler_errors()
            raise ExerciseFailed(problem)

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
    """Send ``event`` with ``data`` asking for an acknowledgement (as
    ``client.call(event, data)`` does) and return the acknowledgement.

    If a handler raises instead, report that at once; if the server finishes
    handling the event without answering (no handler for it, for one), fail
    with ``problem`` as soon as that is known (see :meth:`CheckRun.settle`:
    an answer would have reached the client before the last ping's). Only a
    handler that never finishes makes the check wait, ``WAIT`` seconds."""
    assert run.server is not None
    server = run.server
    answer: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

    def answered(*args: Any) -> None:
        # Called as the acknowledgement is read, before any later packet.
        if not answer.done():
            answer.set_result(args)

    error = asyncio.ensure_future(
        server.wait_for_errors(len(server.errors) + 1, timeout=WAIT))
    settled: asyncio.Future[None] | None = None
    try:
        await client.emit(event, data, callback=answered)
        settled = asyncio.ensure_future(run.settle(client))
        await asyncio.wait({answer, error, settled}, timeout=WAIT,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        waits = [task for task in (error, settled) if task is not None]
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    if answer.done():
        args = answer.result()  # as client.call() returns it
        return args[0] if len(args) == 1 else args if args else None
    run.raise_handler_errors()
    raise ExerciseFailed(problem)
