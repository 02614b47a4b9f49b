"""Run your own app as a real process, started and stopped from a notebook.

:func:`start_app` runs a Python program (a file, or ``-m uvicorn ...``) with
the kernel's own Python, waits for the line that says it is ready, and
returns an :class:`AppProcess`. Its output is kept (``output``) rather than
printed, and shown when it fails. ``stop()`` asks it to end (SIGTERM, as
Ctrl+C or a service manager would) and kills it (SIGKILL) if it does not
in time. An app never outlives the kernel: on Linux the kernel's end
terminates it, and everywhere ``chatlab.shutdown()`` and the kernel's exit
stop it.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import os
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["AppFailed", "AppProcess", "free_port", "running_apps", "start_app", "stop_all_apps"]

# The last lines of output an app's failure shows.
SHOWN_LINES = 15

# Every app started and not yet stopped, by name.
_running: dict[str, "AppProcess"] = {}


class AppFailed(RuntimeError):
    """The app ended, or was not ready in time; the message holds its output."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now, for an app to listen on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _end_with_parent() -> None:
    # Runs in the child before it starts: Linux sends it SIGTERM when the
    # kernel that started it ends, even if the kernel is killed.
    with contextlib.suppress(Exception):
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class AppProcess:
    """An app started by :func:`start_app`.

    ``output`` holds its lines (standard output and error together), oldest
    first; ``ready_line`` is the line that said it was ready; ``returncode``
    is None while it runs; ``killed`` says that ``stop()`` had to kill it.
    """

    def __init__(self, name: str, args: Sequence[str], process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.args = list(args)
        self.process = process
        self.output: collections.deque[str] = collections.deque(maxlen=2000)
        self.ready_line: str | None = None
        self.killed = False
        self._lines = asyncio.Condition()
        self._reader = asyncio.ensure_future(self._read())

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        while True:
            try:
                raw = await stdout.readuntil(b"\n")
            except asyncio.IncompleteReadError as end:
                raw = end.partial  # the last line, with no newline (or nothing)
            except asyncio.LimitOverrunError as long:
                raw = await stdout.read(max(long.consumed, 1))  # a very long line, in pieces
            if not raw:
                break
            async with self._lines:
                self.output.append(raw.decode(errors="replace").rstrip("\r\n"))
                self._lines.notify_all()
        await self.process.wait()
        async with self._lines:
            self._lines.notify_all()

    async def wait_for_line(self, pattern: str, *, timeout: float = 10.0) -> str:
        """Wait until the app prints a line matching the regular expression
        ``pattern`` (searched anywhere in the line) and return that line."""
        regex = re.compile(pattern)
        seen = 0

        def found() -> str | None:
            nonlocal seen
            lines = list(self.output)
            for line in lines[seen:]:
                if regex.search(line):
                    return line
            seen = len(lines)
            return None

        async def wait() -> str:
            async with self._lines:
                while True:
                    line = found()
                    if line is not None:
                        return line
                    if self._reader.done():
                        raise AppFailed(self._failure(
                            f"ended (exit code {self.returncode}) before printing a line "
                            f"matching {pattern!r}"))
                    await self._lines.wait()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            raise AppFailed(self._failure(
                f"printed no line matching {pattern!r} within {timeout:g} s")) from None

    def _failure(self, what: str) -> str:
        lines = list(self.output)[-SHOWN_LINES:]
        shown = "\n".join("    " + line for line in lines) if lines else "    (nothing)"
        return f"the app {self.name!r} ({' '.join(self.args)}) {what}. Its last output:\n{shown}"

    async def stop(self, *, timeout: float = 5.0) -> int:
        """Ask the app to end (SIGTERM), kill it (SIGKILL) if it has not
        within ``timeout`` seconds, and return its exit code. Safe to call
        again."""
        if _running.get(self.name) is self:
            del _running[self.name]
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except asyncio.TimeoutError:
                self.killed = True
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        # The pipe is at its end once the process (and any child holding it)
        # is gone; a grandchild that kept it open is not waited for.
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), 1.0)
        except asyncio.TimeoutError:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        returncode = self.process.returncode
        assert returncode is not None
        return returncode

    def _kill_now(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)

    def __repr__(self) -> str:
        state = "running" if self.running else f"ended ({self.returncode})"
        return f"<AppProcess {self.name!r} {state}>"


async def start_app(
    args: Sequence[str | Path],
    *,
    ready: str,
    name: str = "app",
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> AppProcess:
    """Run ``python <args>`` with the kernel's Python and wait until it is ready.

    :param args: what follows ``python`` on the command line, e.g.
        ``["chat_app.py"]`` or ``["-m", "uvicorn", "chat_app:app"]``.
    :param ready: a regular expression; the app is ready once it prints a
        line (on standard output or error) that matches it.
    :param name: an app started again under the same name replaces the old
        one, which is stopped first (so a cell can be re-run).
    :param cwd: the folder to run it in.
    :param env: variables added to the kernel's environment for it.
    :param timeout: seconds to wait for the ready line; then the app is
        stopped and :class:`AppFailed` raised with its last output, as it is
        when the app ends before it is ready.
    """
    old = _running.pop(name, None)
    if old is not None:
        await old.stop()
    args = [str(arg) for arg in args]
    # Unbuffered, so that a ready line printed with print() arrives at once.
    environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args,
        cwd=cwd, env=environment, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        preexec_fn=_end_with_parent if sys.platform.startswith("linux") else None,
    )
    app = AppProcess(name, args, process)
    _running[name] = app
    try:
        app.ready_line = await app.wait_for_line(ready, timeout=timeout)
    except BaseException:
        await app.stop()
        raise
    return app


def running_apps() -> dict[str, AppProcess]:
    """The apps started by :func:`start_app` and not yet stopped, by name."""
    return dict(_running)


async def stop_all_apps() -> None:
    """Stop every app that :func:`start_app` started."""
    for app in list(_running.values()):
        await app.stop()


@atexit.register
def _kill_left_over() -> None:
    # The kernel is exiting with no loop left to stop them politely.
    for app in list(_running.values()):
        app._kill_now()
