"""A throwaway Redis for a lesson or a test.

:class:`LocalRedis` runs its own ``redis-server`` on a free port of
127.0.0.1, saves nothing to disk, answers ``PING`` before ``start()``
returns, and is stopped by ``stop()``, by :func:`stop_all`, when the
Python process exits, and (on Linux) when the process that started it dies
without a chance to stop it, as a kernel does when it is killed.

The binary is looked up in the environment variable ``CHATLAB_REDIS_SERVER``
when it is set (a path; one that does not exist makes redis-server count as
not installed), then on ``PATH``, in this Python's own ``bin`` folder (a
conda environment that has conda-forge's ``redis-server``), and in the usual
system folders. Where there is none, :class:`RedisServerNotFound` says how
to get it.

In a notebook, :func:`start_for_lesson` does the same, but where
redis-server is missing it prints how to get it and has the lesson's later
cells say they were skipped instead of failing one after the other.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

__all__ = [
    "LocalRedis",
    "RedisServerNotFound",
    "find_redis_server",
    "running_redis",
    "start_for_lesson",
    "stop_all",
]

BINARY_VARIABLE = "CHATLAB_REDIS_SERVER"

HOW_TO_GET = (
    "install it, then restart the kernel: `sudo apt-get install redis-server` "
    "(Debian, Ubuntu), `brew install redis` (macOS), or into this conda "
    "environment `conda install -c conda-forge redis-server` (Binder has it "
    "already, from environment.yml)")

# Besides PATH: this Python's environment (a conda env whose bin/ is not on
# the kernel's PATH) and the system's usual places.
_FOLDERS = (Path(sys.prefix) / "bin", Path("/usr/bin"), Path("/usr/local/bin"),
            Path("/opt/homebrew/bin"))

# Every LocalRedis started in this process and not yet stopped, by name.
_running: dict[str, "LocalRedis"] = {}


class RedisServerNotFound(FileNotFoundError):
    """No ``redis-server`` to run here; the message says how to get one."""

    def __init__(self, looked: str) -> None:
        super().__init__(f"redis-server is not installed here ({looked}): {HOW_TO_GET}")

    def _render_traceback_(self) -> list[str]:
        # In IPython: this one line, not a traceback through chatlab's code.
        return [f"RedisServerNotFound: {self}"]


def find_redis_server() -> str | None:
    """The ``redis-server`` to run, or None when there is none."""
    chosen = os.environ.get(BINARY_VARIABLE)
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    found = shutil.which("redis-server")
    if found:
        return found
    for folder in _FOLDERS:
        path = folder / "redis-server"
        if os.access(path, os.X_OK):
            return str(path)
    return None


def _looked() -> str:
    chosen = os.environ.get(BINARY_VARIABLE)
    if chosen:
        return f"{BINARY_VARIABLE}={chosen} is not a program"
    return "not on PATH, nor in " + ", ".join(str(folder) for folder in _FOLDERS)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a function for ``preexec_fn`` that has the kernel send the
    child SIGTERM when the thread that started it ends: a killed kernel
    leaves no redis-server behind. Only from the main thread, whose end is
    the process's (a worker thread may end long before the process)."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    set_parent_death_signal = 1  # PR_SET_PDEATHSIG

    def preexec() -> None:
        prctl(set_parent_death_signal, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class LocalRedis:
    """One throwaway ``redis-server``: 127.0.0.1, a free port, no persistence.

    :param name: kept by this name while it runs: starting another of the
        same name (a re-run cell) stops this one first.
    :param binary: the ``redis-server`` to run; by default the one
        :func:`find_redis_server` finds.

    ``url`` (``redis://127.0.0.1:PORT/0``) is where to reach it once
    :meth:`start` has returned. :meth:`stop` may be called any number of
    times; it can also be used as ``with LocalRedis() as redis:``.
    """

    def __init__(self, *, name: str = "redis", binary: str | None = None) -> None:
        self.name = name
        self.binary = binary
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("this redis-server has not been started: call start() first")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> "LocalRedis":
        """Start redis-server on a free port and return once it answers.
        Raises :class:`RedisServerNotFound` when there is none to run."""
        binary = self.binary or find_redis_server()
        if binary is None:
            raise RedisServerNotFound(_looked())
        self.binary = binary
        old = _running.get(self.name)
        if old is not None and old is not self:
            old.stop()
        self.stop()
        for _ in range(3):  # another program may take the free port first
            self.port = _free_port()
            if self._launch(timeout):
                _running[self.name] = self
                return self
        self.port = 0
        raise RuntimeError(f"redis-server ({binary}) did not start on 127.0.0.1")

    def restart(self, timeout: float = 10.0) -> None:
        """Stop it and start a new, empty one on the same port, as a Redis
        without persistence comes back after a crash."""
        if not self.port or self.binary is None:
            raise RuntimeError("restart() follows start()")
        self._end()
        if not self._launch(timeout):
            raise RuntimeError(f"redis-server did not start again on port {self.port}")
        _running[self.name] = self

    def _launch(self, timeout: float) -> bool:
        assert self.binary is not None
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--protected-mode", "yes",
             "--daemonize", "no", "--logfile", ""],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent(), close_fds=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if _answers(self.port):
                return True
            time.sleep(0.02)  # a new process: nothing to wait on but its port
        self._end()
        return False

    def stop(self) -> None:
        """Stop redis-server (all it held is gone). Safe to call again."""
        if _running.get(self.name) is self:
            del _running[self.name]
        self._end()

    def _end(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> "LocalRedis":
        return self if self.running else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<LocalRedis {self.name!r} {'running' if self.running else 'stopped'}>"


def running_redis() -> dict[str, LocalRedis]:
    """Every LocalRedis started and not yet stopped, by name."""
    return dict(_running)


def stop_all() -> None:
    """Stop every LocalRedis of this process (also run when it exits)."""
    for redis in list(_running.values()):
        redis.stop()


atexit.register(stop_all)


# -- in a notebook --------------------------------------------------------------

MISSING_IN_A_LESSON = """\
redis-server is not installed here, and the rest of this lesson needs it.
Install it, then restart the kernel and run the lesson again:
  - Debian, Ubuntu:  sudo apt-get install redis-server
  - macOS:           brew install redis
  - conda (this environment, as on Binder):  conda install -c conda-forge redis-server
Until then, the cells below say they were skipped."""

SKIPPED = ("skipped: this cell needs redis-server, which is not installed here "
           "(see above how to get it)")

# The input transformer that skips cells, while one is installed.
_skipping: list[Any] = []


def _skip_cell(lines: list[str]) -> list[str]:
    # The lesson's clean-up still runs: it stops what the earlier cells started.
    if any("chatlab.shutdown()" in line for line in lines):
        return lines
    return [f"print({SKIPPED!r})\n"]


def _shell() -> Any:
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get() if get else None


def _stop_skipping() -> None:
    shell = _shell()
    while _skipping:
        transformer = _skipping.pop()
        if shell is not None and transformer in shell.input_transformers_post:
            shell.input_transformers_post.remove(transformer)


def start_for_lesson(name: str) -> LocalRedis | None:
    """Start a throwaway redis-server for a lesson and return it (a re-run
    cell starts a new, empty one).

    Where redis-server is not installed, print how to get it and return
    None; then, in IPython, every later cell prints that it was skipped
    instead of running (all but the lesson's clean-up, the cell that calls
    ``chatlab.shutdown()``), until a call here succeeds.
    """
    try:
        redis = LocalRedis(name=name).start()
    except RedisServerNotFound:
        print(MISSING_IN_A_LESSON)
        shell = _shell()
        if shell is not None and not _skipping:
            shell.input_transformers_post.append(_skip_cell)
            _skipping.append(_skip_cell)
        return None
    _stop_skipping()
    return redis
