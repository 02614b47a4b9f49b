"""Checks for lesson 01 · Connect and emit.

The exercise: a function ``make_server()`` that returns a new
``socketio.AsyncServer`` (a "name badge" server) whose

* ``connect(sid, environ, auth)`` refuses a client whose ``auth`` carries no
  ``name``, saves the name in the connection's session, and sends that client
  alone the event ``welcome`` with the text ``"Welcome, <name>!"``;
* ``whoami`` handler acknowledges with the name saved for the connection.

:func:`check_name_badge` serves what the learner's function returns on
127.0.0.1, connects real clients to it and says what is right or wrong.

This module also holds :class:`CheckRun`, the small harness the lesson
checks share: the learner's server served under the check's own name, the
clients connected to it, and a cleanup that always runs.
"""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path
from typing import Any, Callable

import engineio
import socketio

from ..host import HandlerError, RunningServer, logger as _logger, serve
from ..recording import RecordingClient
from ..waiting import WaitTimeout
from . import ExerciseFailed, NotAttempted, not_attempted, passed

__all__ = ["check_name_badge", "CheckRun"]

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
        # The check reports the learner's handler errors itself; chatlab's
        # log line for each (with a traceback) would only repeat it on stderr.
        _logger.addFilter(self._not_mine)
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
                _logger.removeFilter(self._not_mine)
        if exc_type is not None and issubclass(exc_type, NotAttempted):
            not_attempted(str(exc) or self.what)
            return True
        return False

    def _not_mine(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.args, tuple) and record.args[:1] == (self.name,))

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
            self.server = await serve(sio, name=self.name)
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


async def check_name_badge(make_server: Callable[[], socketio.AsyncServer]) -> None:
    """Check the lesson 01 exercise: ``make_server()`` returns a new
    ``AsyncServer`` whose ``connect`` refuses clients without a name in
    ``auth``, saves the name in the session and sends ``welcome`` to that
    client alone, and whose ``whoami`` acknowledges with the saved name.

    Prints ✅ when right, raises :class:`ExerciseFailed` saying what is wrong,
    prints ⏭ while ``make_server`` (or a handler) still raises
    ``NotImplementedError``.
    """
    async with CheckRun("check-connect-and-emit", "the name badge server") as run:
        server = await run.serve(make_server)
        # Ann and Bob give their names; connecting, each must be welcomed alone.
        ann = await run.connect("Ann", auth={"name": "Ann"})
        await run.expect(ann, "welcome", 1,
                         "Ann connected with auth={'name': 'Ann'} but received no 'welcome': "
                         "emit it from connect with `await sio.emit('welcome', ..., to=sid)`")
        bob = await run.connect("Bob", auth={"name": "Bob"})
        await run.expect(bob, "welcome", 1,
                         "Bob connected but received no 'welcome'")
        await run.settle(ann, bob)
        if len(ann.received("welcome")) > 1:
            raise ExerciseFailed(
                "Ann received a 'welcome' meant for Bob: send it to the new client "
                "alone with `to=sid` (without `to`, emit goes to everyone)")
        for client in (ann, bob):
            if len(client.received("welcome")) != 1:
                raise ExerciseFailed(
                    f"{client.name} received 'welcome' {len(client.received('welcome'))} "
                    f"times: send it once, from connect")
            [args] = client.received("welcome")
            expected = f"Welcome, {client.name}!"
            if args != (expected,):
                shown = args[0] if len(args) == 1 else list(args)
                raise ExerciseFailed(
                    f"{client.name}'s 'welcome' should be the text {expected!r}, not {shown!r}")

        # whoami answers from the session, per connection.
        for client, name in ((bob, "Bob"), (ann, "Ann")):
            try:
                answer = await client.call("whoami", timeout=WAIT)
            except socketio.exceptions.TimeoutError:
                run.raise_handler_errors()
                raise ExerciseFailed(
                    "'whoami' got no answer: a handler's return value is the "
                    "acknowledgement, so `return` the name") from None
            if answer is None:
                raise ExerciseFailed(
                    f"{name} asked 'whoami' and got None: `return` the saved name from "
                    f"the handler (its return value is the acknowledgement)")
            if answer != name:
                raise ExerciseFailed(
                    f"{name} asked 'whoami' and got {answer!r} instead of {name!r}: "
                    f"save the name with `await sio.save_session(sid, ...)` in connect "
                    f"and read it back with `await sio.get_session(sid)`")
        run.raise_handler_errors()

        # A client without a name is refused, on purpose rather than by a crash.
        for auth in (None, {"token": "no name here"}):
            errors_before = len(server.errors)
            nameless = await run.try_connect("Nameless", auth=auth)
            if nameless.connected:
                raise ExerciseFailed(
                    f"a client that connected with auth={auth!r} was let in: refuse it "
                    f"in connect with `return False` or "
                    f"`raise socketio.exceptions.ConnectionRefusedError(...)`")
            crashes = [e for e in server.errors[errors_before:]
                       if not isinstance(e.exception, ConnectionRefusedError)]
            if crashes:
                raise ExerciseFailed(
                    f"a client that connected with auth={auth!r} was refused, but only "
                    f"because {_describe(crashes[0])}; check auth before using it, "
                    f"e.g. `if not auth or not auth.get('name'): return False`")
        passed("the server refuses clients without a name, welcomes each "
               "client alone by name, and remembers who is who")
