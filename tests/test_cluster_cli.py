"""``chatlab serve --redis URL``: two standalone nodes share one chat."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

import chatlab
from chatlab import ChatClient

from redis_support import RedisServer, redis_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def node_urls(redis_server: RedisServer) -> Iterator[list[str]]:  # noqa: F811
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes, urls = [], []
    try:
        for _ in range(2):
            process = subprocess.Popen(
                [sys.executable, "-m", "chatlab", "serve", "--port", "0",
                 "--redis", redis_server.url],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            processes.append(process)
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert "chat server on" in line, process.stderr.read()  # type: ignore[union-attr]
            urls.append(line.split(" on ", 1)[1].split("/ ", 1)[0])
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)


async def test_two_serve_redis_nodes_share_one_chat(node_urls):
    ann, bob = ChatClient(node_urls[0]), ChatClient(node_urls[1])
    for client, name in ((ann, "ann"), (bob, "bob")):
        await client.connect()
        await client.add_user(name)
    await ann.wait_for_users(names=["ann", "bob"])
    assert await bob.send("hello") == 1
    await ann.wait_for_message(text="hello")
    await chatlab.client.disconnect_all()


def test_serve_refuses_db_and_redis_together(redis_server):  # noqa: F811
    done = subprocess.run(
        [sys.executable, "-m", "chatlab", "serve", "--port", "0", "--db", "x.db",
         "--redis", redis_server.url],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "not both" in done.stderr
