"""The throwaway redis-server of the lessons and tests: a free port of
127.0.0.1, nothing saved, stopped by stop(), by a re-run, at exit and when
its process is killed; and a clear message, never a traceback, where
redis-server is not installed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis

from chatlab.cluster import LocalRedis, RedisServerNotFound
from chatlab.cluster import local_redis
from redis_support import require_redis_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parent.parent


@pytest.fixture(autouse=True)
def installed() -> None:
    require_redis_server()


def gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether process ``pid`` has ended (a zombie counts as ended), within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)  # another process's end: nothing to wait on but /proc
    return False


def test_it_runs_on_a_free_port_of_loopback_saves_nothing_and_stops():
    server = LocalRedis(name="test-local-a").start()
    try:
        assert server.running and server.url == f"redis://127.0.0.1:{server.port}/0"
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.ping()
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert local_redis.running_redis()["test-local-a"] is server
        client.close()
        pid = server.process.pid
    finally:
        server.stop()
    assert not server.running and gone(pid)
    assert "test-local-a" not in local_redis.running_redis()
    server.stop()  # again: nothing happens
    assert repr(server) == "<LocalRedis 'test-local-a' stopped>"


def test_starting_one_of_the_same_name_stops_the_old_one():
    first = LocalRedis(name="test-local-b").start()
    pid = first.process.pid
    second = LocalRedis(name="test-local-b").start()
    try:
        assert gone(pid) and not first.running
        assert second.running and local_redis.running_redis()["test-local-b"] is second
    finally:
        second.stop()


def test_restart_is_a_new_empty_redis_on_the_same_port():
    with LocalRedis(name="test-local-c") as server:
        client = redis.Redis.from_url(server.url)
        client.set("kept", "no")
        port = server.port
        server.restart()
        assert server.port == port and client.get("kept") is None
        client.close()
    assert not server.running


def test_stop_all_stops_every_one():
    servers = [LocalRedis(name=f"test-local-d{n}").start() for n in range(2)]
    local_redis.stop_all()
    assert not any(server.running for server in servers)


def test_without_redis_server_it_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv(local_redis.BINARY_VARIABLE, "/nonexistent/redis-server")
    assert local_redis.find_redis_server() is None
    with pytest.raises(RedisServerNotFound) as missing:
        LocalRedis().start()
    said = str(missing.value)
    assert "apt-get install redis-server" in said
    assert "conda install -c conda-forge redis-server" in said
    assert missing.value._render_traceback_() == [f"RedisServerNotFound: {said}"]
    with pytest.raises(RuntimeError, match="start"):
        LocalRedis().url


def test_start_for_lesson_prints_how_to_get_it_and_returns_none(monkeypatch, capsys):
    monkeypatch.setenv(local_redis.BINARY_VARIABLE, "/nonexistent/redis-server")
    assert local_redis.start_for_lesson("test-lesson") is None
    out = capsys.readouterr().out
    assert "conda install -c conda-forge redis-server" in out and "skipped" in out


def run_python(code: str) -> subprocess.Popen[str]:
    """A Python process that starts a LocalRedis, prints its pid, and waits."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE)


STARTER = """\
    import sys
    from chatlab.cluster.local_redis import LocalRedis
    redis = LocalRedis(name="child").start()
    print(redis.process.pid, flush=True)
    sys.stdin.readline()  # until told to go on
"""


def test_a_process_that_exits_without_stopping_it_leaves_no_redis_server():
    child = run_python(STARTER)
    pid = int(child.stdout.readline())
    assert not gone(pid, timeout=0)
    child.communicate("\n", timeout=20)  # the script ends: atexit stops it
    assert gone(pid)


def test_a_killed_process_leaves_no_redis_server():
    # As a kernel killed by its manager (no atexit runs).
    child = run_python(STARTER)
    pid = int(child.stdout.readline())
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    child.stdout.close()
    child.stdin.close()
    assert gone(pid)
