"""The chat page (the model tutorial's protocol) in a real browser, through
nginx in front of three ``chatlab serve --redis`` nodes: it chats with a
user on another node, and when its own node is killed it reconnects through
nginx to a surviving one, gets its name back once the dead node's claim has
expired, catches up on what it missed and sends what waited."""

from __future__ import annotations

import signal
import time
from typing import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

import browser as shared
from browser import CHROMIUM_ARGS, delivered_offsets, join, message, offline, send
from chatlab import ChatClient
from nginx_support import NODE_HEADER, Nginx, Node, start_nginx, start_node
from redis_support import RedisServer
from test_nginx import HANDSHAKE, NODE_FLAGS, SOURCES, session

pytestmark = pytest.mark.e2e

PAGE_SOURCE = "127.0.0.1"  # where Chromium's requests come from


@pytest.fixture
def cluster(tmp_path) -> Iterator[tuple[list[Node], Nginx]]:
    redis = RedisServer()
    redis.start()
    nodes: list[Node] = []
    proxy = None
    try:
        nodes = [start_node(*NODE_FLAGS, "--redis", redis.url) for _ in range(3)]
        proxy = start_nginx([node.address for node in nodes], tmp_path / "nginx")
        yield nodes, proxy
    finally:
        if proxy is not None:
            proxy.stop()
        for node in nodes:
            node.stop(signal.SIGKILL)
        redis.stop()


@pytest.fixture
async def page(cluster) -> AsyncIterator[Page]:
    _, proxy = cluster
    executable = shared.require_chromium()
    async with async_playwright() as playwright:
        chromium: Browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        context = await chromium.new_context()
        refused = await offline(context)
        errors: list[str] = []
        opened = await context.new_page()
        opened.on("pageerror", lambda error: errors.append(str(error)))
        await opened.goto(proxy.url)
        yield opened
        await chromium.close()
    assert refused == [] and errors == []


async def node_of(proxy: Nginx, source: str) -> str:
    """The node nginx sends ``source``'s requests to."""
    async with session(source) as http:
        async with http.get(proxy.url + HANDSHAKE) as response:
            assert response.status == 200
            return response.headers[NODE_HEADER]


async def test_the_page_chats_through_nginx_and_survives_its_node_s_death(cluster, page):
    nodes, proxy = cluster
    page_node = await node_of(proxy, PAGE_SOURCE)
    for source in SOURCES:
        if await node_of(proxy, source) != page_node:
            break
    else:
        pytest.fail("every address hashed to the page's node")
    http = session(source)
    bob = ChatClient(proxy.url, http_session=http)
    try:
        await join(page, "ann")
        await bob.connect()
        await bob.add_user("bob")
        await bob.wait_for_users(names=["ann", "bob"])
        await send(page, "hello from the page")
        await bob.wait_for_message(user="ann", text="hello from the page")
        await bob.send("hello from another node")
        await expect(message(page, "hello from another node")).to_be_visible()

        victim = next(node for node in nodes if node.address == page_node)
        victim.stop(signal.SIGKILL)
        killed = time.monotonic()
        await expect(page.locator("#state")).to_have_text("disconnected, reconnecting…")
        await bob.send("while ann's node is down")
        await send(page, "typed while moving")  # waits in the page's outbox
        # Back through nginx on another node; the name is free once the dead
        # node's claim has expired (docs/scaling.md: ttl + beat = 8 s).
        await expect(page.locator("#state")).to_have_text("connected as ann", timeout=20_000)
        assert time.monotonic() - killed < 8.0 + 2.0 + 3.0
        assert await node_of(proxy, PAGE_SOURCE) != page_node
        await expect(message(page, "while ann's node is down")).to_be_visible()
        await bob.wait_for_message(user="ann", text="typed while moving", timeout=10)
        # Each public message once, in offset order, with nothing missing.
        assert await delivered_offsets(page) == [1, 2, 3, 4]
        await bob.wait_for_users(names=["bob", "ann"], timeout=15)
    finally:
        await bob.disconnect()
        await http.close()
