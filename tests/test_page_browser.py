"""The chat page in a real browser (headless Chromium driven by Playwright),
against the real chat server on 127.0.0.1.

The page loads the Socket.IO client from the CDN. Here that request is
answered with the file from the npm package pinned in tests/js, so the
page's integrity hash must match that package for any of this to work.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Locator, Page, async_playwright, expect

import chatlab
from chatlab import ChatClient, ChatServer, RunningServer
from chatlab.chat import WEB_DIR

import browser as shared
from browser import CDN_PREFIX, CHROMIUM_ARGS, JS_DIR, join, message, route_cdn, screenshot, send

EVIL_MESSAGE = '<img src=x onerror="window.__pwned=1">'
# The chat's names are at most 32 characters, so the script tag is short.
EVIL_NAME = "<script>__pwned=2</script>"


# -- fixtures -----------------------------------------------------------------


@pytest.fixture
def client_js() -> bytes:
    """The Socket.IO browser client from the pinned npm package."""
    return shared.client_js()


@pytest.fixture
def client_version() -> str:
    return shared.client_version()


@pytest.fixture
async def browser(client_js: bytes) -> AsyncIterator[Browser]:
    executable = shared.require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


OpenPage = Callable[..., Awaitable[Page]]

# Tests ask for their chat server before open_page, so that their pages are
# closed before the server stops (fixtures are torn down in reverse order).


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[OpenPage]:
    """``await open_page(url)``: a page in a fresh browser context (its own
    cookies and storage: a separate user), with the CDN answered from the
    npm package, or refused with ``cdn="abort"``. Uncaught JavaScript
    errors fail the test."""
    contexts: list[BrowserContext] = []
    page_errors: list[str] = []

    async def make(url: str, *, cdn: str = "serve", width: int = 900, height: int = 640) -> Page:
        context = await browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        await route_cdn(context, cdn=cdn)
        page = await context.new_page()
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        await page.goto(url)
        return page

    yield make
    for context in contexts:
        await context.close()
    assert page_errors == [], f"uncaught JavaScript errors: {page_errors}"


async def style(locator: Locator, prop: str) -> str:
    return await locator.evaluate(f"(node) => getComputedStyle(node).{prop}")


# -- the pin -------------------------------------------------------------------


def test_the_page_pins_the_npm_package_with_its_integrity_hash(
    client_js: bytes, client_version: str
) -> None:
    page = (WEB_DIR / "index.html").read_text()
    tag = re.search(r"<script[^>]*socket\.io\.min\.js[^>]*>", page, re.S)
    assert tag is not None, "index.html does not load socket.io.min.js"
    src = re.search(r'src="([^"]+)"', tag.group(0))
    integrity = re.search(r'integrity="([^"]+)"', tag.group(0))
    assert src and integrity
    assert src.group(1) == (
        f"{CDN_PREFIX}npm/socket.io-client@{client_version}/dist/socket.io.min.js")
    digest = base64.b64encode(hashlib.sha384(client_js).digest()).decode()
    assert integrity.group(1) == f"sha384-{digest}"
    assert 'crossorigin="anonymous"' in tag.group(0)

    # package.json pins exact versions (no ranges), that one for the client.
    pins = json.loads((JS_DIR / "package.json").read_text())["dependencies"]
    assert pins["socket.io-client"] == client_version
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", version) for version in pins.values()), pins


# -- chatting in the browser ------------------------------------------------------


async def test_two_browsers_chat_both_ways(chat_server: RunningServer, open_page: OpenPage) -> None:
    ann = await open_page(chat_server.url + "/")
    bob = await open_page(chat_server.url + "/")
    await join(ann, "ann")
    await join(bob, "bob")

    await send(ann, "hello bob", press_enter=True)
    await send(bob, "hi ann", press_enter=False)
    for page in (ann, bob):
        await expect(page.locator("#messages li.message")).to_have_count(2)

    # Each side sees its own message marked as its own, with the sender's name.
    for page, own, own_name, other, other_name in (
        (ann, "hello bob", "ann", "hi ann", "bob"),
        (bob, "hi ann", "bob", "hello bob", "ann"),
    ):
        mine, theirs = message(page, own), message(page, other)
        await expect(mine).to_have_class(re.compile(r"\bmine\b"))
        await expect(theirs).not_to_have_class(re.compile(r"\bmine\b"))
        await expect(mine.locator(".sender")).to_have_text(own_name)
        await expect(theirs.locator(".sender")).to_have_text(other_name)
        # Styled apart: another colour and the other side of the list.
        assert await style(mine, "backgroundColor") != await style(theirs, "backgroundColor")
        assert await style(mine, "alignSelf") == "flex-end"
        assert await style(theirs, "alignSelf") == "flex-start"

    await expect(ann.locator("#state")).to_have_attribute("data-state", "connected")
    await screenshot(ann, "chat-two-users")


async def test_active_users_grow_and_shrink(chat_server: RunningServer, open_page: OpenPage) -> None:
    ann = await open_page(chat_server.url + "/")
    await join(ann, "ann")
    users = ann.locator("#users li")
    await expect(users).to_have_text(["ann (you)"])
    await expect(ann.locator("#user-count")).to_have_text("1")

    bob = await open_page(chat_server.url + "/")
    await join(bob, "bob")
    await expect(users).to_have_text(["ann (you)", "bob"])
    await expect(ann.locator("#user-count")).to_have_text("2")
    await expect(bob.locator("#users li")).to_have_text(["ann", "bob (you)"])

    await bob.context.close()
    await expect(users).to_have_text(["ann (you)"])
    await expect(ann.locator("#user-count")).to_have_text("1")


async def test_user_text_is_shown_as_text_never_as_markup(
    chat_server: RunningServer, open_page: OpenPage
) -> None:
    evil = await open_page(chat_server.url + "/")
    ann = await open_page(chat_server.url + "/")
    await join(evil, EVIL_NAME)
    await join(ann, "ann")
    await send(evil, EVIL_MESSAGE)

    for page in (evil, ann):
        item = message(page, EVIL_MESSAGE)
        await expect(item).to_have_count(1)
        await expect(item.locator(".sender")).to_have_text(EVIL_NAME)
        await expect(page.locator("#users li").first).to_contain_text(EVIL_NAME)
        # Had any of it been parsed as HTML, these elements would exist.
        assert await page.locator("#messages img, #messages script").count() == 0
        assert await page.locator("#users img, #users script, #state script").count() == 0
        assert await page.evaluate("typeof window.__pwned") == "undefined"
    # The welcome note repeats the name: as text too.
    await expect(evil.locator("#messages li.note")).to_contain_text(EVIL_NAME)
    await screenshot(ann, "chat-markup-as-text")


async def test_a_python_client_and_a_browser_see_each_other(
    chat_server: RunningServer, open_page: OpenPage
) -> None:
    python = ChatClient(chat_server.url)
    await python.connect()
    await python.add_user("py")

    page = await open_page(chat_server.url + "/")
    await join(page, "web")
    await expect(page.locator("#users li")).to_have_text(["py", "web (you)"])
    await python.wait_for_users(names=["py", "web"])

    await python.send("from python")
    await expect(message(page, "from python").locator(".sender")).to_have_text("py")
    await expect(message(page, "from python")).not_to_have_class(re.compile(r"\bmine\b"))

    await send(page, "from the browser")
    received = await python.wait_for_message(user="web")
    assert received.text == "from the browser"
    assert not received.mine


async def test_the_page_rejoins_when_the_server_comes_back(
    chat: ChatServer, chat_server: RunningServer, open_page: OpenPage
) -> None:
    page = await open_page(chat_server.url + "/")
    await join(page, "ann")
    port = chat_server.port

    await chat_server.stop()
    await expect(page.locator("#state")).to_have_attribute(
        "data-state", re.compile("^(disconnected|connecting)$"))
    await expect(page.locator("#message-input")).to_be_disabled()
    await expect(page.locator("#users li")).to_have_count(0)

    # The same chat on the same port, as after a restart: the page joins
    # again under its name, without asking.
    await chat.serve(name="restarted-chat", port=port)
    await expect(page.locator("#state")).to_have_text("connected as ann")
    await expect(page.locator("#users li")).to_have_text(["ann (you)"])
    assert chat.names() == ["ann"]
    await send(page, "back again")
    await expect(message(page, "back again")).to_have_class(re.compile(r"\bmine\b"))


# -- failures shown on the page ----------------------------------------------------


async def test_a_client_that_cannot_load_is_shown_clearly(
    chat_server: RunningServer, open_page: OpenPage
) -> None:
    page = await open_page(chat_server.url + "/", cdn="abort")
    notice = page.locator("#notice")
    await expect(notice).to_be_visible()
    await expect(notice).to_contain_text("Could not load the Socket.IO client from the CDN")
    await expect(notice).to_contain_text("check your internet connection")
    await expect(page.locator("#state")).to_have_attribute("data-state", "failed")
    await expect(page.locator("#name")).to_be_disabled()
    await screenshot(page, "cdn-unreachable")


async def test_a_server_error_is_shown_on_the_page(
    chat: ChatServer, chat_server: RunningServer, open_page: OpenPage
) -> None:
    page = await open_page(chat_server.url + "/")
    await join(page, "ann")
    await expect(page.locator("#notice")).to_be_hidden()

    too_long = "x" * (chat.limits.message + 1)
    await send(page, too_long)
    notice = page.locator("#notice")
    await expect(notice).to_be_visible()
    await expect(notice).to_contain_text('The server refused "message"')
    await expect(notice).to_contain_text(f"{len(too_long)} characters long")
    await screenshot(page, "server-error")

    # Nothing was sent, and the chat goes on.
    await page.get_by_role("button", name="Dismiss").click()
    await expect(notice).to_be_hidden()
    await send(page, "a shorter one")
    await expect(page.locator("#messages li.message .text")).to_have_text(["a shorter one"])


async def test_a_taken_name_is_refused_and_another_can_be_chosen(
    chat_server: RunningServer, open_page: OpenPage
) -> None:
    first = await open_page(chat_server.url + "/")
    await join(first, "ann")

    second = await open_page(chat_server.url + "/")
    await second.locator("#name").fill("ANN")
    await second.get_by_role("button", name="Join").click()
    await expect(second.locator("#notice")).to_contain_text('The server refused "adduser"')
    await expect(second.locator("#notice")).to_contain_text("is taken")
    await expect(second.locator("#join-form")).to_be_visible()
    await expect(second.locator("#message-form")).to_be_hidden()

    await join(second, "ann2")
    await expect(second.locator("#notice")).to_be_hidden()
    await expect(first.locator("#users li")).to_have_text(["ann (you)", "ann2"])


async def test_a_narrow_screen_does_not_scroll_sideways(
    chat_server: RunningServer, open_page: OpenPage
) -> None:
    page = await open_page(chat_server.url + "/", width=360, height=640)
    await join(page, "a-long-name-of-32-characters-xyz")
    await send(page, "y" * 300)  # one long word
    await expect(page.locator("#messages li.message")).to_have_count(1)
    # Nothing sticks out of the window, or out of the scrolling message list.
    sticking_out = await page.evaluate("""() => {
        const list = document.getElementById("messages");
        const out = [...document.querySelectorAll("body *")]
            .filter((node) => node.getBoundingClientRect().right > window.innerWidth + 0.5)
            .map((node) => node.id || node.className || node.tagName);
        if (list.scrollWidth > list.clientWidth) out.push("messages (scrolls sideways)");
        return out;
    }""")
    assert sticking_out == []
    await screenshot(page, "chat-narrow")


# -- behind a proxy ------------------------------------------------------------------

PREFIX = "/user/me/proxy/5000"


@pytest.fixture
async def prefixed_chat() -> AsyncIterator[tuple[str, list[str]]]:
    """The chat page under PREFIX, as a proxy such as jupyter-server-proxy
    shows it, with Socket.IO under PREFIX too; and the path of every request
    the server received."""
    paths: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler):  # type: ignore[no-untyped-def]
        paths.append(request.path)
        return await handler(request)

    chat = ChatServer()
    app = web.Application(middlewares=[record])
    app.add_subapp(PREFIX, chat.make_app())
    chat.sio.attach(app, socketio_path=f"{PREFIX}/socket.io")
    # serve() also attaches it at /socket.io, which the page must not use.
    server = await chatlab.serve(chat.sio, name="test-prefixed-chat", app=app)
    try:
        yield f"{server.url}{PREFIX}/", paths
    finally:
        await server.stop()


async def test_the_page_works_under_a_path_prefix(
    prefixed_chat: tuple[str, list[str]], open_page: OpenPage
) -> None:
    url, paths = prefixed_chat
    ann = await open_page(url)
    bob = await open_page(url)
    await join(ann, "ann")
    await join(bob, "bob")
    await send(bob, "through the prefix")
    await expect(message(ann, "through the prefix").locator(".sender")).to_have_text("bob")

    assert f"{PREFIX}/static/chat.js" in paths
    assert any(path.startswith(f"{PREFIX}/socket.io/") for path in paths)
    assert not any(path.startswith("/socket.io") for path in paths), paths
