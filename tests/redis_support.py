"""A real Redis for the cluster tests: its own redis-server on a free port
of 127.0.0.1, with nothing saved to disk, stopped at the end.

Without redis-server the cluster tests are skipped, unless the environment
variable CHATLAB_REQUIRE_REDIS is set: then they fail."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from typing import Iterator

import pytest

REDIS_SERVER = shutil.which("redis-server") or next(
    (path for path in ("/usr/bin/redis-server",) if os.access(path, os.X_OK)), None)


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


class RedisServer:
    """One redis-server process; ``url`` is where to reach it."""

    def __init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        if REDIS_SERVER is None:
            if os.environ.get("CHATLAB_REQUIRE_REDIS"):
                pytest.fail("redis-server is not installed, and CHATLAB_REQUIRE_REDIS is set")
            pytest.skip("redis-server is not installed")
        for _ in range(3):  # another process may take the free port first
            self.port = self.port or _free_port()
            self.process = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if _answers(self.port):
                    return
                time.sleep(0.02)
            self.stop()
            self.port = 0
        raise RuntimeError("redis-server did not start")

    def restart(self, timeout: float = 10.0) -> None:
        """Stop it and start a new, empty one on the same port (as a Redis
        without persistence comes back after a crash or a restart)."""
        port = self.port
        self.stop()
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if _answers(port):
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start again on port {port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()
