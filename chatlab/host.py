"""Run a python-socketio server on the event loop that is already running.

In a notebook that loop is the kernel's, in a script the one ``asyncio.run``
started. ``serve()`` puts a learner's own ``socketio.AsyncServer`` on an
aiohttp app bound to 127.0.0.1, on a free port unless one is given, and
returns a :class:`RunningServer` with its URL and an idempotent ``stop()``.

Servers are kept by name, so re-running the notebook cell that started one
stops the old server before starting the new one, instead of failing with
"address already in use" or leaving the old one running.

The server runs as python-socketio ships it: chatlab changes no option, no
transport and nothing process-wide. It adds only what a notebook needs
around it: the loop, the port, ``stop()``, re-runs, and handler errors
shown under the cell (through the one seam described in
:func:`chatlab._compat.watch_server_events`).
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import traceback
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Generator, Mapping, Protocol

import socketio
from aiohttp import web

from . import _compat
from .reporting import report_in_cell
from .waiting import Changes

__all__ = [
    "HandlerError",
    "PortInUseError",
    "RunningServer",
    "running_servers",
    "serve",
    "stop_all",
]

logger = logging.getLogger("chatlab")

# How often, and how long each time, stop() waits for a task it cancelled.
CANCEL_ATTEMPTS = 20
CANCEL_GRACE = 0.1

# Every server started by serve() and not yet stopped, by name.
_running: dict[str, "RunningServer"] = {}


class PortInUseError(OSError):
    """The fixed port asked for is already taken by another program."""


class Listener(Protocol):
    """How a server takes its connections, when not as aiohttp does by
    default: options for its ``web.AppRunner``, and the site that listens.
    The chat server's :class:`chatlab.connections.ConnectionGuard` is one."""

    @property
    def runner_options(self) -> Mapping[str, Any]: ...

    def site(self, runner: web.AppRunner, host: str, port: int) -> web.BaseSite: ...


@dataclass
class HandlerError:
    """An exception raised by one of the server's event handlers (or, with
    ``background`` set, by a task started with ``sio.start_background_task``,
    named by ``event``)."""

    event: str
    namespace: str
    sid: str | None
    exception: BaseException
    traceback: str = field(repr=False, default="")
    background: bool = False

    def __str__(self) -> str:
        where = f"the background task {self.event!r}" if self.background \
            else f"the handler for {self.event!r}"
        text = f"{where} raised {type(self.exception).__name__}: {self.exception}"
        if self.background:
            return text
        hint = _hint_for(self.exception, self.event)
        return f"{text} ({hint})" if hint else text


def _being_cancelled(loop: asyncio.AbstractEventLoop) -> bool:
    # The loop given: asking for the running one costs a system call
    # (getpid()) on Python 3.11, once per event of a busy chat.
    task = asyncio.current_task(loop)
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    return bool(cancelling and cancelling())


def _depth(exception: BaseException) -> int:
    return sum(1 for _ in traceback.walk_tb(exception.__traceback__))


def _hint_for(exception: BaseException, event: str) -> str:
    message = str(exception)
    if isinstance(exception, TypeError) and "positional argument" in message:
        if "missing" in message:
            return (
                f"the client sent {event!r} with less data than the handler "
                f"takes; give the data parameter a default, e.g. "
                f"`async def {event}(sid, data=None)`"
            )
        if "takes" in message:
            return (
                f"the client sent {event!r} with more data than the handler "
                f"takes; add a parameter for it, e.g. `*args`"
            )
    return ""


class _RecordHandler(logging.Handler):
    """Keeps log records in memory instead of printing them."""

    def __init__(self, records: collections.deque[str]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record))


class RunningServer:
    """A Socket.IO server started by :func:`serve`.

    ``url`` is where clients connect (``http://127.0.0.1:<port>``). ``errors``
    holds every exception the server's handlers raised, oldest first, and
    ``log`` the engineio/socketio log lines that a quiet server kept instead
    of printing. ``stop()`` may be called any number of times; the server can
    also be used as ``async with``.
    """

    def __init__(
        self,
        sio: socketio.AsyncServer,
        app: web.Application,
        *,
        name: str,
        host: str,
        quiet: bool,
        report_errors: bool,
        shutdown_timeout: float,
        listener: Listener | None = None,
    ) -> None:
        self.sio = sio
        self.app = app
        self.name = name
        self.host = host
        self.port = 0
        self.errors: list[HandlerError] = []
        self.log: collections.deque[str] = collections.deque(maxlen=1000)
        self._error_changes = Changes()
        self._quiet = quiet
        self.report_errors = report_errors
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=shutdown_timeout,
            **(listener.runner_options if listener is not None else {}),
        )
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        self._stop_lock = asyncio.Lock()
        self._stopped = False
        self._saved: dict[str, Any] = {}
        self._unwatch: Callable[[], None] | None = None
        self._tasks_tracked = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._requests: set[asyncio.Task[Any]] = set()
        app.middlewares.append(self._track_request)

    @property
    def url(self) -> str:
        """The base URL clients connect to."""
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6 needs brackets
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.port != 0 and not self._stopped

    async def _start(self, port: int) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port) if self._listener is None \
            else self._listener.site(self._runner, self.host, port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._restore()
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    exc.errno,
                    f"port {port} on {self.host} is already in use by another "
                    f"program; stop that program, choose another port, or "
                    f"pass port=0 to let chatlab pick a free one",
                ) from None
            raise
        self.port = self._runner.addresses[0][1]
        self._track_tasks()
        self._watch_handlers()
        if self._quiet:
            self._keep_logs()

    @web.middleware
    async def _track_request(self, request: web.Request, handler: Any) -> web.StreamResponse:
        # Each HTTP request (a long poll, or a whole websocket session) runs
        # in a task of aiohttp's; knowing them lets stop() end them itself
        # rather than leave aiohttp to cancel them after stop() returned.
        if self._stopped:
            # Until cleanup closes the listener, a client reconnecting at
            # once would get a fresh connection, and stop() would then cut
            # off the handlers of what it sent.
            return web.Response(status=503, text="the server is stopping")
        task = asyncio.current_task()
        assert task is not None
        self._requests.add(task)
        try:
            return await handler(request)
        finally:
            self._requests.discard(task)

    def _track_tasks(self) -> None:
        # Every task python-socketio and engineio start (event handlers,
        # pings, the client monitor) goes through this public method; keeping
        # them lets stop() end the stragglers instead of leaking them.
        # (engineio's own is asyncio.ensure_future(target(...)); the loop's
        # create_task is the same, without looking the running loop up.)
        create_task = self._loop.create_task
        self._tasks_tracked = True

        def start_background_task(target: Any, *args: Any, **kwargs: Any) -> Any:
            task = create_task(target(*args, **kwargs))
            self._tasks.add(task)
            task.add_done_callback(partial(self._task_done, target))
            return task

        self.sio.eio.start_background_task = start_background_task

    def _task_done(self, target: Any, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        # Handlers' errors are caught (and recorded) inside trigger_event;
        # what reaches here came from a task the server's code started, and
        # would otherwise only be "Task exception was never retrieved".
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        assert exc is not None
        name = getattr(target, "__qualname__", None) or repr(target)
        self._record_error(HandlerError(
            name, "/", None, exc, "".join(traceback.format_exception(exc)), background=True))

    def _watch_handlers(self) -> None:
        self._unwatch = _compat.watch_server_events(self.sio, self._recording_errors)

    def _recording_errors(self, original: Any) -> Any:
        """Wrap python-socketio's handler dispatch so that an exception in a
        handler is recorded and reported instead of lost in its task."""
        # The TypeError of a connect handler called with auth=None, by sid,
        # until python-socketio's second try shows whether it was the one.
        # (Its depth is taken here: a traceback grows as it propagates.)
        first_type_errors: dict[Any, tuple[TypeError, int]] = {}
        loop = self._loop

        async def trigger_event(event: str, namespace: str, *args: Any) -> Any:
            legacy_connect = event == "connect" and len(args) == 2
            first = first_type_errors.pop(args[0], None) if legacy_connect else None
            try:
                result = await original(event, namespace, *args)
                if _being_cancelled(loop):
                    # python-socketio takes a cancelled handler for one that
                    # returned None and acknowledges with no data, which a
                    # client reads as an answer; without one it can retry.
                    raise asyncio.CancelledError
                return result
            except (asyncio.CancelledError, socketio.exceptions.ConnectionRefusedError,
                    ConnectionRefusedError):
                raise  # python-socketio's own ways to end a handler
            except TypeError as exc:
                # Without auth, python-socketio first calls a connect handler
                # with auth=None and, on TypeError, again without it (the
                # older two-argument form): let it try that. If that fails
                # too, the error raised deeper (inside the handler, not at
                # the call for a wrong number of arguments) is its own.
                if event == "connect" and len(args) == 3 and args[2] is None:
                    first_type_errors[args[0]] = exc, _depth(exc)
                    raise
                if first is not None and first[1] >= _depth(exc):
                    exc = first[0]
                return self._failed(event, namespace, args, exc)
            except Exception as exc:
                return self._failed(event, namespace, args, exc)

        return trigger_event

    def _failed(self, event: str, namespace: str, args: tuple[Any, ...],
                exc: BaseException | None) -> Any:
        assert exc is not None
        sid = args[0] if args and isinstance(args[0], str) else None
        self._record_error(HandlerError(
            event, namespace, sid, exc, "".join(traceback.format_exception(exc))))
        # A failed connect handler refuses the connection; a failed event
        # handler sends no acknowledgement, as without chatlab.
        return False if event == "connect" else self.sio.not_handled

    def _record_error(self, error: HandlerError) -> None:
        self.errors.append(error)
        if self.report_errors and not report_in_cell(f"chatlab server {self.name!r}: {error}"):
            logger.error("chatlab server %r: %s\n%s", self.name, error, error.traceback)
        self._error_changes.notify()

    async def wait_for_errors(self, count: int = 1, *, timeout: float = 5.0) -> list[HandlerError]:
        """Wait until the handlers have raised ``count`` errors in all."""
        await self._error_changes.wait_until(
            lambda: len(self.errors) >= count, timeout=timeout,
            what=f"server {self.name!r} recorded {count} handler error(s)")
        return list(self.errors)

    def _keep_logs(self) -> None:
        # The socketio/engineio loggers are shared by every server in the
        # process; give this server private ones that keep lines in memory.
        quiet = logging.Logger(f"chatlab.server.{self.name}")
        handler = _RecordHandler(self.log)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        quiet.addHandler(handler)
        quiet.propagate = False
        # Warnings and errors only: engineio logs every packet at INFO, and
        # formatting those records took a fifth of a busy server's time.
        quiet.setLevel(logging.WARNING)
        self._saved["logger"] = self.sio.logger
        self._saved["eio_logger"] = self.sio.eio.logger
        self.sio.logger = quiet
        self.sio.eio.logger = quiet

    def raise_errors(self) -> None:
        """Raise the first handler error recorded, if there is one."""
        if self.errors:
            first = self.errors[0]
            raise RuntimeError(str(first)) from first.exception

    async def stop(self) -> None:
        """Disconnect every client, close the listener and stop background
        tasks. Safe to call again, and from several tasks at once."""
        async with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            if _running.get(self.name) is self:
                del _running[self.name]
            try:
                await self._drop_clients()
                await self.sio.shutdown()
                await self._end_tasks(self._tasks)
            finally:
                await self._runner.cleanup()
                # python-socketio never stops a pub/sub manager (such as
                # AsyncRedisManager): its listener and Redis client would
                # outlive the server.
                await _compat.stop_pubsub_manager(self.sio.manager)
                self._restore()

    async def _drop_clients(self) -> None:
        # Like stopping a Node.js Socket.IO server: every connection ends and
        # the server's disconnect handlers run (reason "server disconnect"),
        # but no goodbye packet is sent, so clients see their connection drop
        # (python-socketio's client says "transport error") and reconnect if
        # they are set to, rather than taking it as being sent away for good.
        await _compat.abort_connections(self.sio.eio)
        # Ending each request's task (a long poll, or a websocket session)
        # closes its transport, and no task of theirs outlives stop().
        await self._end_tasks(self._requests)

    @staticmethod
    async def _end_tasks(tasks: set[asyncio.Task[Any]]) -> None:
        current = asyncio.current_task()
        pending = {task for task in tasks if task is not current and not task.done()}
        # Cancelled again until they end: engineio's websocket loop catches
        # every exception around handling a packet, a cancellation included,
        # and then waits for the next packet as if nothing had happened.
        for _ in range(CANCEL_ATTEMPTS):
            if not pending:
                return
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=CANCEL_GRACE)
        if pending:
            logger.warning("%d task(s) would not stop: %s", len(pending), pending)

    def _restore(self) -> None:
        if self._tasks_tracked:
            # engineio's shutdown() is one-way: it stops the task that pings
            # clients and never starts it again. Reset it, so that the same
            # AsyncServer served again (a re-run cell) still drops dead clients.
            _compat.restart_service_task(self.sio.eio)
            del self.sio.eio.start_background_task  # back to the class's own
            self._tasks_tracked = False
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if "logger" in self._saved:
            self.sio.logger = self._saved["logger"]
            self.sio.eio.logger = self._saved["eio_logger"]
        self._saved.clear()

    async def __aenter__(self) -> "RunningServer":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RunningServer {self.name!r} {state}>"


class _Serving:
    """What :func:`serve` returns: await it, or use it with ``async with``."""

    def __init__(self, start: Callable[[], Any]) -> None:
        self._start = start
        self._server: RunningServer | None = None

    def __await__(self) -> Generator[Any, None, RunningServer]:
        return self._start().__await__()

    async def __aenter__(self) -> RunningServer:
        self._server = await self._start()
        return self._server

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        await self._server.stop()


def serve(
    sio: socketio.AsyncServer,
    *,
    name: str = "default",
    host: str = "127.0.0.1",
    port: int = 0,
    app: web.Application | None = None,
    quiet: bool = True,
    report_errors: bool = True,
    shutdown_timeout: float = 1.0,
    listener: Listener | None = None,
) -> _Serving:
    """Start ``sio`` on the running event loop and return its handle.

    :param sio: the ``socketio.AsyncServer`` to serve; its handlers may be
        added before or after it starts.
    :param name: a server started again under the same name replaces the old
        one (which is stopped first), so a notebook cell can be re-run.
    :param host: the address to listen on; 127.0.0.1 keeps it on this machine.
    :param port: 0 (the default) picks a free port; a fixed port that another
        program holds raises :class:`PortInUseError`.
    :param app: an aiohttp application to attach to (to serve pages beside
        Socket.IO); a new empty one by default.
    :param quiet: keep engineio/socketio log lines in ``server.log`` instead
        of printing them.
    :param report_errors: print each exception a handler raises, as one line
        under the notebook cell that was running (outside IPython, to the
        ``chatlab`` logger, with its traceback). Either way it is kept in
        ``server.errors``; pass False when the caller reports them itself.
    :param shutdown_timeout: seconds ``stop()`` grants open HTTP connections.
    :param listener: how to take connections (a :class:`Listener`); the
        chat server's limits them. By default, as aiohttp does.

    Use ``server = await serve(sio)`` or ``async with serve(sio) as server:``.
    """

    if not isinstance(sio, socketio.AsyncServer):
        raise TypeError(
            f"chatlab.serve needs a socketio.AsyncServer, not {type(sio).__name__}: "
            f"create it with socketio.AsyncServer(async_mode='aiohttp')")
    if sio.async_mode != "aiohttp":
        raise ValueError(
            f"this AsyncServer uses async_mode={sio.async_mode!r}; chatlab runs it on "
            f"aiohttp, so create it with socketio.AsyncServer(async_mode='aiohttp')")

    async def start() -> RunningServer:
        loop = asyncio.get_running_loop()
        old = _running.pop(name, None)
        if old is not None and old._loop is loop:
            await old.stop()
        for other in _running.values():
            if other.sio is sio and other._loop is loop:
                raise RuntimeError(
                    f"this AsyncServer is already served as {other.name!r}; "
                    f"stop that one first or start it under the same name"
                )
        server = RunningServer(
            sio,
            app if app is not None else web.Application(),
            name=name,
            host=host,
            quiet=quiet,
            report_errors=report_errors,
            shutdown_timeout=shutdown_timeout,
            listener=listener,
        )
        sio.attach(server.app)
        await server._start(port)
        _running[name] = server
        return server

    return _Serving(start)


def running_servers() -> dict[str, RunningServer]:
    """The servers started by :func:`serve` and not yet stopped, by name."""
    return dict(_running)


async def stop_all() -> None:
    """Stop every server that :func:`serve` started on this event loop."""
    loop = asyncio.get_running_loop()
    for server in list(_running.values()):
        if server._loop is loop:
            await server.stop()
