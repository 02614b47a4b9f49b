"""A real Redis for the cluster tests: its own redis-server on a free port
of 127.0.0.1, with nothing saved to disk, stopped at the end, started the
way the lessons start theirs (:class:`chatlab.cluster.local_redis.LocalRedis`).

Without redis-server the cluster tests are skipped, unless the environment
variable CHATLAB_REQUIRE_REDIS is set: then they fail."""

from __future__ import annotations

import itertools
import os
from typing import Iterator

import pytest

from chatlab.cluster.local_redis import LocalRedis, find_redis_server

_names = itertools.count()


def require_redis_server() -> None:
    """Skip the test when redis-server is missing (fail it instead when
    CHATLAB_REQUIRE_REDIS is set)."""
    if find_redis_server() is None:
        if os.environ.get("CHATLAB_REQUIRE_REDIS"):
            pytest.fail("redis-server is not installed, and CHATLAB_REQUIRE_REDIS is set")
        pytest.skip("redis-server is not installed")


class RedisServer(LocalRedis):
    """One redis-server process; ``url`` is where to reach it."""

    def __init__(self) -> None:
        super().__init__(name=f"test-redis-{next(_names)}")

    def start(self, timeout: float = 10.0) -> "RedisServer":
        require_redis_server()
        super().start(timeout)
        return self


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()
