"""The chat page against a chat with a token: it asks for the token in a
form, connects with it, and says so when the token is wrong. Headless
Chromium against the real server on 127.0.0.1, with no internet (see
tests/browser.py)."""

from __future__ import annotations

from typing import AsyncIterator

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

import chatlab
from chatlab import ChatClient, ChatServer, RunningServer

from browser import CHROMIUM_ARGS, join, message, offline, require_chromium, screenshot, send

pytestmark = pytest.mark.e2e


TOKEN = "open sesame"


@pytest.fixture
async def locked_chat() -> AsyncIterator[RunningServer]:
    chat = ChatServer(token=TOKEN)
    running = await chat.serve(name="token-chat")
    yield running
    await chatlab.shutdown()


@pytest.fixture
async def context(locked_chat: RunningServer) -> AsyncIterator[BrowserContext]:
    # Asks for the server first, so the page closes before the server stops.
    executable = require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        context = await browser.new_context()
        refused = await offline(context)  # the page needs no internet
        yield context
        await context.close()
        await browser.close()
        assert refused == [], f"the page tried to reach the internet: {refused}"


async def open_page(context: BrowserContext, url: str) -> Page:
    page = await context.new_page()
    await page.goto(url + "/")
    return page


async def test_the_page_asks_for_the_token_and_joins_with_it(context, locked_chat) -> None:
    page = await open_page(context, locked_chat.url)
    await expect(page.locator("#state")).to_have_text("this chat needs a token")
    await expect(page.locator("#token-form")).to_be_visible()
    await expect(page.locator("#join-form")).to_be_hidden()

    await page.locator("#token").fill("a guess")
    await page.get_by_role("button", name="Connect").click()
    await expect(page.locator("#state")).to_have_text("wrong token")
    await expect(page.locator("#notice-text")).to_contain_text("refused the token")
    await screenshot(page, "page-token-wrong")

    await page.locator("#token").fill(TOKEN)
    await page.get_by_role("button", name="Connect").click()
    await expect(page.locator("#token-form")).to_be_hidden()
    await join(page, "ann")

    # A Python client with the token shares the chat with the page.
    bob = ChatClient(locked_chat.url)
    await bob.connect(auth={"token": TOKEN})
    try:
        await bob.add_user("bob")
        await send(page, "hello bob")
        assert (await bob.wait_for_message(user="ann")).text == "hello bob"
        await bob.send("hello ann")
        await expect(message(page, "hello ann")).to_be_visible()
    finally:
        await bob.disconnect()


async def test_after_too_many_wrong_tokens_the_page_says_how_long_to_wait(
        context, locked_chat) -> None:
    page = await open_page(context, locked_chat.url)
    await expect(page.locator("#state")).to_have_text("this chat needs a token")
    # A few wrong tokens are free; then the server locks this address out
    # for a while, and says for how long.
    for attempt in range(1, 7):
        await page.locator("#token").fill(f"guess {attempt}")
        await page.get_by_role("button", name="Connect").click()
        await expect(page.locator("#token-form")).to_be_visible()
        await expect(page.locator("#state")).to_have_text("wrong token")
        if attempt < 6:
            await expect(page.locator("#notice-text")).to_contain_text("refused the token")
            await page.locator("#notice-text").evaluate("node => node.textContent = ''")
    await expect(page.locator("#notice-text")).to_have_text(
        "too many wrong tokens; try again in 1 s.")


async def test_without_a_token_server_the_page_never_asks(context) -> None:
    chat = ChatServer()
    running = await chat.serve(name="open-chat")
    page = await open_page(context, running.url)
    await join(page, "ann")
    await expect(page.locator("#token-form")).to_be_hidden()
    await page.close()
