"""The chat page in a real browser (headless Chromium driven by Playwright),
against the real chat server on 127.0.0.1, with no internet: every request
to another host is refused.

The chat server serves the page the Socket.IO client installed at set-up;
only when that copy is missing does the page load it from the CDN, checked
by its integrity hash. Those tests answer the CDN with the installed file.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
import aiohttp
from aiohttp import web
from playwright.async_api import (
    Browser, BrowserContext, Locator, Page, Route, async_playwright, expect)

import chatlab
import chatlab.chat_server
from chatlab import ChatClient, ChatServer, RunningServer
from chatlab.chat_server import CLIENT_PATH, WEB_DIR

import browser as shared
from browser import (
    CDN_PREFIX,
    CHROMIUM_ARGS,
    JS_DIR,
    join,
    message,
    delivered_offsets,
    message_texts,
    offline,
    pending,
    route_cdn,
    screenshot,
    send,
)

pytestmark = pytest.mark.e2e


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
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


OpenPage = Callable[..., Awaitable[Page]]

# Tests ask for their chat server before open_page, so that their pages are
# closed before the server stops (fixtures are torn down in reverse order).


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[OpenPage]:
    """``await open_page(url)``: a page in a fresh browser context (its own
    cookies and storage: a separate user) with no internet. A request that
    leaves 127.0.0.1 fails the test, unless the test expects the CDN:
    ``cdn="serve"`` answers it with the installed client, ``cdn="abort"``
    refuses it. Uncaught JavaScript errors fail the test."""
    contexts: list[BrowserContext] = []
    page_errors: list[str] = []

    async def make(url: str, *, cdn: str | None = None, width: int = 900,
                   height: int = 640) -> Page:
        context = await browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        refused = await offline(context)
        if cdn is None:
            page_refused.append(refused)
        else:
            await route_cdn(context, cdn=cdn)
        page = await context.new_page()
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        await page.goto(url)
        return page

    page_refused: list[list[str]] = []
    yield make
    for context in contexts:
        await context.close()
    left = [url for refused in page_refused for url in refused]
    assert left == [], f"the page tried to reach the internet: {left}"
    assert page_errors == [], f"uncaught JavaScript errors: {page_errors}"


@pytest.fixture
def client_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The chat server of this test has no installed Socket.IO client."""
    monkeypatch.setattr(chatlab.chat_server, "CLIENT_FILE", tmp_path / "not-installed.js")


def resources(page: Page) -> Awaitable[list[str]]:
    """The URL of every file the page has loaded, in order."""
    return page.evaluate("performance.getEntriesByType('resource').map((entry) => entry.name)")


async def style(locator: Locator, prop: str) -> str:
    return await locator.evaluate(f"(node) => getComputedStyle(node).{prop}")


# -- the Socket.IO client: pinned, from this server, the CDN as a fallback -------

CDN_FILE = "dist/socket.io.min.js"


def page_scripts() -> dict[str, dict[str, str]]:
    """index.html's script tags, by src: each one's attributes."""
    page = (WEB_DIR / "index.html").read_text()
    found = {}
    for tag in re.findall(r"<script\b[^>]*>", page, re.S):
        attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', tag))
        found[attributes["src"]] = attributes
    return found


def test_the_page_loads_the_installed_client_and_pins_the_cdn_copy_with_its_hash(
    client_js: bytes, client_version: str
) -> None:
    scripts = page_scripts()
    # First the copy this server serves (a path relative to the page, so
    # that it works under a proxy's prefix), then the loader that falls back
    # to the CDN and runs chat.js.
    assert list(scripts) == [CLIENT_PATH.lstrip("/"), "static/load.js"]
    assert all("defer" in re.search(rf'<script\b[^>]*src="{re.escape(src)}"[^>]*>',
                                      (WEB_DIR / "index.html").read_text()).group(0)
               for src in scripts)
    loader = scripts["static/load.js"]
    assert loader["data-cdn-src"] == (
        f"{CDN_PREFIX}npm/socket.io-client@{client_version}/{CDN_FILE}")
    digest = base64.b64encode(hashlib.sha384(client_js).digest()).decode()
    assert loader["data-cdn-integrity"] == f"sha384-{digest}"
    assert loader["data-chat"] == "static/chat.js"

    # One pinned version: chatlab/web/vendor's package.json and its lock
    # file, and tests/js's (the Node.js client of the protocol tests).
    vendor = WEB_DIR / "vendor"
    pins = json.loads((vendor / "package.json").read_text())["dependencies"]
    assert pins["socket.io-client"] == client_version
    lock = json.loads((vendor / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/socket.io-client"]["version"] == client_version
    test_pins = json.loads((JS_DIR / "package.json").read_text())["dependencies"]
    assert test_pins["socket.io-client"] == client_version
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", version) for version in test_pins.values())


def test_the_page_has_a_strict_script_policy_and_no_inline_script() -> None:
    page = (WEB_DIR / "index.html").read_text()
    policy = re.search(r'http-equiv="Content-Security-Policy"\s+content="([^"]+)"', page)
    assert policy is not None
    directives = dict(part.strip().split(" ", 1) for part in policy[1].split(";"))
    assert directives["script-src"] == "'self' https://cdn.jsdelivr.net"
    assert directives["object-src"] == "'none'" and directives["base-uri"] == "'none'"
    assert re.findall(r"<script\b[^>]*>", page) == re.findall(r"<script\b[^>]*\bsrc=[^>]*>", page)
    assert not re.search(r"\son\w+=", page)  # no inline event handlers


async def test_the_page_chats_with_no_internet_at_all(
    chat_server: RunningServer, open_page: OpenPage
) -> None:
    # open_page refuses every request that leaves 127.0.0.1 and fails the
    # test if the page made one.
    ann = await open_page(chat_server.url + "/")
    bob = await open_page(chat_server.url + "/")
    await join(ann, "ann")
    await join(bob, "bob")
    await send(ann, "no internet here")
    await send(bob, "none needed", press_enter=False)
    for page in (ann, bob):
        await expect(message_texts(page)).to_have_text(["no internet here", "none needed"])
    loaded = await resources(ann)
    assert chat_server.url + CLIENT_PATH in loaded
    assert not [url for url in loaded if not url.startswith(chat_server.url)], loaded
    assert await ann.locator(f'script[src^="{CDN_PREFIX}"]').count() == 0
    await screenshot(ann, "chat-offline")


async def test_the_server_serves_the_installed_client_and_404_without_it(
    chat_server: RunningServer, client_js: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = chatlab.chat_server.CLIENT_FILE
    # Looked up on each request: installed or not, no restart needed.
    monkeypatch.setattr(chatlab.chat_server, "CLIENT_FILE", installed.with_name("gone.js"))
    async with aiohttp.ClientSession() as session:
        async with session.get(chat_server.url + CLIENT_PATH) as response:
            assert response.status == 404
        monkeypatch.setattr(chatlab.chat_server, "CLIENT_FILE", installed)
        async with session.get(chat_server.url + CLIENT_PATH) as response:
            assert response.status == 200
            assert "javascript" in response.content_type
            assert await response.read() == client_js


async def test_without_the_installed_client_the_page_loads_the_pinned_one_from_the_cdn(
    client_missing: None, chat_server: RunningServer, open_page: OpenPage, client_version: str
) -> None:
    cdn_url = f"{CDN_PREFIX}npm/socket.io-client@{client_version}/{CDN_FILE}"
    page = await open_page(chat_server.url + "/", cdn="serve")
    await join(page, "ann")
    await send(page, "through the fallback")
    await expect(message(page, "through the fallback")).to_have_class(re.compile(r"\bmine\b"))

    loaded = await resources(page)
    assert loaded.count(cdn_url) == 1, loaded
    assert chat_server.url + CLIENT_PATH in loaded  # tried first, answered 404
    assert loaded.index(cdn_url) < loaded.index(chat_server.url + "/static/chat.js")
    # The script the loader added carries the pin: the browser checked the
    # file against it (route_cdn answers with the installed file).
    script = page.locator(f'script[src="{cdn_url}"]')
    await expect(script).to_have_count(1)
    digest = base64.b64encode(hashlib.sha384(shared.client_js()).digest()).decode()
    assert await script.evaluate("(node) => node.integrity") == f"sha384-{digest}"
    assert await script.evaluate("(node) => node.crossOrigin") == "anonymous"


async def test_a_cdn_file_that_is_not_the_pinned_one_is_refused(
    client_missing: None, chat_server: RunningServer, browser: Browser, client_version: str
) -> None:
    context = await browser.new_context()
    try:
        await offline(context)
        altered = shared.client_js() + b"\nwindow.__altered = 1;\n"

        async def answer(route: Route) -> None:
            await route.fulfill(status=200, body=altered, content_type="application/javascript",
                                headers={"Access-Control-Allow-Origin": "*"})

        await context.route(f"{CDN_PREFIX}**", answer)
        page = await context.new_page()
        await page.goto(chat_server.url + "/")
        await expect(page.locator("#state")).to_have_attribute("data-state", "failed")
        assert await page.evaluate("typeof window.__altered") == "undefined"
        assert await page.evaluate("typeof window.io") == "undefined"
    finally:
        await context.close()


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
    await expect(page.locator("#users li")).to_have_count(0)
    # The box stays usable: what is typed now waits for the server (see
    # test_a_message_typed_while_the_server_is_down_is_sent_once_it_is_back).
    await expect(page.locator("#message-input")).to_be_enabled()

    # The same chat on the same port, as after a restart: the page joins
    # again under its name, without asking.
    await chat.serve(name="restarted-chat", port=port)
    await expect(page.locator("#state")).to_have_text("connected as ann")
    await expect(page.locator("#users li")).to_have_text(["ann (you)"])
    assert chat.names() == ["ann"]
    await send(page, "back again")
    await expect(message(page, "back again")).to_have_class(re.compile(r"\bmine\b"))


# -- delivery: history, catching up, sending until acknowledged -------------------

DOWN = re.compile("^(disconnected|connecting)$")
PENDING = re.compile(r"\bpending\b")
MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,64}")  # the server's rule for a message id

_chat_names = itertools.count()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Path]:
    """A SQLite file for the chats a test starts with serve_chat(); they are
    all stopped at the end. Ask for it before open_page, so that the pages
    close first."""
    yield tmp_path / "chat.db"
    await chatlab.shutdown()


async def serve_chat(db: Path, *, port: int = 0, **options: Any) -> tuple[ChatServer, RunningServer]:
    """A new chat server on ``db``: started again on the same file and port,
    it is the same chat after a restart, history and offsets included."""
    chat = ChatServer(db=db, **options)
    return chat, await chat.serve(name=f"stored-chat-{next(_chat_names)}", port=port)


async def python_user(url: str, name: str, *, auth: Any = None) -> ChatClient:
    client = ChatClient(url)
    await client.connect(auth=auth)
    await client.add_user(name)
    return client


async def back_online(client: ChatClient) -> None:
    """Wait until a ChatClient has reconnected by itself, rejoined and caught up."""
    await client.wait_until(lambda: client.name is not None and client.caught_up,
                            timeout=15, what="the client rejoined and caught up")


def hold_messages(chat: ChatServer, handle: Callable[..., Awaitable[Any]]) -> list[tuple[Any, ...]]:
    """Put ``handle(send_on, sid, *args)`` in front of the server's
    ``message`` handler (``send_on`` is that handler); return the list of
    the arguments of every ``message`` event, in order of arrival."""
    send_on = chat.namespace.on_message
    arrived: list[tuple[Any, ...]] = []

    async def handler(sid: str, *args: Any) -> Any:
        arrived.append(args)
        return await handle(send_on, sid, *args)

    # The namespace finds its handler by name, on the instance first.
    chat.namespace.on_message = handler  # type: ignore[method-assign]
    return arrived


async def test_a_page_that_comes_late_sees_the_recent_history_once(
    db: Path, open_page: OpenPage
) -> None:
    chat, running = await serve_chat(db, history=3)
    py = await python_user(running.url, "py")
    for number in range(1, 6):
        await py.send(f"earlier {number}")

    # Before joining, the page shows the three most recent messages, oldest
    # first, without the time they arrived (which is not when they were sent).
    page = await open_page(running.url + "/")
    recent = ["earlier 3", "earlier 4", "earlier 5"]
    await expect(message_texts(page)).to_have_text(recent)
    assert await delivered_offsets(page) == [3, 4, 5]
    await expect(page.locator("#messages li.message .time")).to_have_count(0)
    await expect(message(page, "earlier 5").locator(".sender")).to_have_text("py")

    # Joining and chatting on adds to them; nothing shows twice.
    await join(page, "late")
    await py.send("now")
    await send(page, "hello")
    await expect(message_texts(page)).to_have_text([*recent, "now", "hello"])
    assert await delivered_offsets(page) == [3, 4, 5, 6, 7]
    await expect(message(page, "now").locator(".time")).to_have_count(1)
    await expect(message(page, "hello")).to_have_class(re.compile(r"\bmine\b"))
    await screenshot(page, "chat-history")

    # Another page for the same chat (a reload, a new tab) starts afresh.
    again = await open_page(running.url + "/")
    await expect(message_texts(again)).to_have_text(["earlier 5", "now", "hello"])
    await expect(message(again, "hello")).not_to_have_class(re.compile(r"\bmine\b"))
    await py.disconnect()


async def test_a_page_cut_off_while_others_chat_gets_every_message_once_in_order(
    db: Path, open_page: OpenPage
) -> None:
    chat, running = await serve_chat(db)
    port = running.port
    page = await open_page(running.url + "/")
    await join(page, "web")
    py = await python_user(running.url, "py")
    sent: list[str] = []

    async def py_says(*numbers: int) -> None:
        for number in numbers:
            sent.append(f"m{number}")
            await py.send(f"m{number}", timeout=15)

    await py_says(1, 2, 3)
    await expect(message_texts(page)).to_have_text(sent)

    # The page's network goes down and, while it is away, the server
    # restarts (a new ChatServer on the same database file and port) and py
    # chats on: the page can only get these from the history.
    await page.context.set_offline(True)
    await running.stop()
    await expect(page.locator("#state")).to_have_attribute("data-state", DOWN)
    chat, running = await serve_chat(db, port=port)
    await back_online(py)
    await py_says(4, 5, 6, 7)
    assert chat.names() == ["py"]  # the page is still away

    # Back online, the page reconnects by itself and catches up; py keeps
    # sending, before and after the page is back.
    await page.context.set_offline(False)
    await py_says(8, 9, 10)
    await expect(page.locator("#state")).to_have_text("connected as web")
    await py_says(11, 12)
    await send(page, "caught up")
    sent.append("caught up")

    await expect(message_texts(page)).to_have_text(sent)
    assert await delivered_offsets(page) == list(range(1, len(sent) + 1))
    assert await chat.store.count() == len(sent)
    await expect(pending(page)).to_have_count(0)
    await py.disconnect()


async def test_a_message_typed_while_the_server_is_down_is_sent_once_it_is_back(
    db: Path, open_page: OpenPage
) -> None:
    chat, running = await serve_chat(db)
    port = running.port
    ann = await open_page(running.url + "/")
    bob = await open_page(running.url + "/")
    await join(ann, "ann")
    await join(bob, "bob")
    py = await python_user(running.url, "py")

    await running.stop()
    await expect(ann.locator("#state")).to_have_attribute("data-state", DOWN)
    await send(ann, "typed while down")
    await send(ann, "and another")
    # Shown at once, greyed, as not yet sent.
    waiting = pending(ann)
    await expect(waiting.locator(".text")).to_have_text(["typed while down", "and another"])
    await expect(waiting.locator(".status")).to_have_text(["sending…", "sending…"])
    assert await style(waiting.first, "opacity") != "1"
    await screenshot(ann, "chat-sending")

    chat, running = await serve_chat(db, port=port)
    await expect(ann.locator("#state")).to_have_text("connected as ann")
    await expect(pending(ann)).to_have_count(0)
    await expect(ann.locator("#messages .status")).to_have_count(0)
    await expect(message(ann, "typed while down")).to_have_class(re.compile(r"\bmine\b"))
    assert await style(message(ann, "typed while down"), "opacity") == "1"

    # Once for everyone. py's message, stored after them, arriving
    # everywhere means that anything sent twice would be here by now.
    await back_online(py)
    await py.send("the last")
    expected = ["typed while down", "and another", "the last"]
    for page in (ann, bob):
        await expect(message_texts(page)).to_have_text(expected)
        assert await delivered_offsets(page) == [1, 2, 3]
    await py.wait_for_message(text="the last")
    assert [m.text for m in py.messages] == expected
    assert await chat.store.count() == 3
    await py.disconnect()


async def test_an_unacknowledged_message_is_sent_again_under_the_same_id(
    chat: ChatServer, chat_server: RunningServer, open_page: OpenPage
) -> None:
    # The server sits on the first message it gets (no acknowledgement
    # comes) until the page has sent it again and that one got through.
    first_done = asyncio.Event()

    async def hold_the_first(send_on: Callable[..., Awaitable[Any]], sid: str, *args: Any) -> Any:
        if len(arrived) == 1:
            await first_done.wait()
        return await send_on(sid, *args)

    arrived = hold_messages(chat, hold_the_first)
    page = await open_page(chat_server.url + "/")
    await join(page, "ann")
    await send(page, "slow")
    await expect(pending(page)).to_have_count(1)
    # The page gives up waiting after a few seconds and sends it again.
    await expect(pending(page)).to_have_count(0, timeout=15_000)
    first_done.set()

    await send(page, "next")
    await expect(message_texts(page)).to_have_text(["slow", "next"])
    assert await chat.store.count() == 2
    (text, first_id), (_, second_id), (_, next_id) = arrived
    assert text == "slow" and first_id == second_id != next_id
    assert MESSAGE_ID.fullmatch(first_id) and MESSAGE_ID.fullmatch(next_id)


async def test_a_message_stored_but_not_acknowledged_is_shown_and_stored_once(
    db: Path, open_page: OpenPage
) -> None:
    # The server stores the first message and then goes down before it can
    # send it to anyone or acknowledge it, as in a crash.
    chat, running = await serve_chat(db)
    port = running.port

    async def store_then_hang(send_on: Callable[..., Awaitable[Any]], sid: str, *args: Any) -> Any:
        if len(arrived) > 1:
            return await send_on(sid, *args)
        await chat.store.add(chat.users[sid], sid, *args)
        stored.set()
        await asyncio.Event().wait()  # until the server stops

    stored = asyncio.Event()
    arrived = hold_messages(chat, store_then_hang)
    page = await open_page(running.url + "/")
    await join(page, "ann")
    await send(page, "stored once")
    await stored.wait()
    await expect(pending(page)).to_have_count(1)
    await running.stop()

    # Back, the server replays it from its history (the page's own, from
    # its old connection), and the page sends it again under the same id,
    # which the server acknowledges without storing it again.
    chat, running = await serve_chat(db, port=port)
    arrived_again = hold_messages(chat, lambda send_on, sid, *args: send_on(sid, *args))
    await expect(page.locator("#state")).to_have_text("connected as ann")
    await expect(pending(page)).to_have_count(0)
    await send(page, "after")
    await expect(message_texts(page)).to_have_text(["stored once", "after"])
    await expect(message(page, "stored once")).to_have_class(re.compile(r"\bmine\b"))
    assert await delivered_offsets(page) == [1, 2]
    assert await chat.store.count() == 2
    assert arrived_again[0] == arrived[0]  # the same text, the same id


async def test_the_page_keeps_its_token_and_its_place_across_reconnections(
    db: Path, open_page: OpenPage
) -> None:
    chat, running = await serve_chat(db, token="sesame")
    port = running.port
    page = await open_page(running.url + "/")
    await page.locator("#token").fill("sesame")
    await page.get_by_role("button", name="Connect").click()
    await join(page, "ann")
    py = await python_user(running.url, "py", auth={"token": "sesame"})
    await py.send("before")
    await expect(message_texts(page)).to_have_text(["before"])

    await page.context.set_offline(True)
    await running.stop()
    await expect(page.locator("#state")).to_have_attribute("data-state", DOWN)
    chat, running = await serve_chat(db, port=port, token="sesame")
    await back_online(py)
    await py.send("while away")
    assert chat.names() == ["py"]  # the page is still away
    await page.context.set_offline(False)

    # In again without asking for the token, and only the message missed.
    await expect(page.locator("#state")).to_have_text("connected as ann")
    await expect(page.locator("#token-form")).to_be_hidden()
    await expect(message_texts(page)).to_have_text(["before", "while away"])
    assert await delivered_offsets(page) == [1, 2]
    await py.disconnect()


# -- failures shown on the page ----------------------------------------------------


async def test_a_client_that_cannot_load_is_shown_clearly(
    client_missing: None, chat_server: RunningServer, open_page: OpenPage
) -> None:
    # Neither the installed copy (missing) nor the CDN (unreachable).
    page = await open_page(chat_server.url + "/", cdn="abort")
    notice = page.locator("#notice")
    await expect(notice).to_be_visible()
    await expect(notice).to_contain_text("this server has no copy of it")
    await expect(notice).to_contain_text("the CDN (cdn.jsdelivr.net) could not be reached")
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


# -- the model tutorial's kind of page ----------------------------------------------

# A page written the way the model tutorial writes its own (in our words): it
# knows adduser, message and users, and nothing of history, offsets or ids.
TUTORIAL_STYLE_PAGE = """<!doctype html>
<meta charset="utf-8">
<ul id="messages"></ul>
<ul id="users"></ul>
<input id="text"><button id="send">Send</button>
<script src="https://cdn.jsdelivr.net/npm/socket.io-client@VERSION/dist/socket.io.min.js"></script>
<script>
  const socket = io("CHAT_URL");
  socket.on("connect", () => socket.emit("adduser", "oldpage"));
  socket.on("users", (names) => {
    const list = document.getElementById("users");
    list.replaceChildren(...names.map((name) => {
      const item = document.createElement("li");
      item.textContent = name;
      return item;
    }));
  });
  socket.on("message", (data) => {
    const item = document.createElement("li");
    item.textContent = data.user + ": " + data.message;
    document.getElementById("messages").append(item);
  });
  document.getElementById("send").onclick = () => {
    socket.emit("message", document.getElementById("text").value);
  };
</script>
"""


async def test_a_page_that_knows_nothing_of_delivery_still_chats(
    chat_server: RunningServer, browser: Browser, client_version: str
) -> None:
    ann = ChatClient(chat_server.url)
    context = await browser.new_context()
    await offline(context)
    # The page comes from a server of its own (another origin on this
    # machine), as the tutorial's page would.
    html = TUTORIAL_STYLE_PAGE.replace("VERSION", client_version).replace(
        "CHAT_URL", chat_server.url)
    async def tutorial_page(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", tutorial_page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        await ann.connect()
        await ann.add_user("ann")
        await ann.send("sent before the page came")
        await route_cdn(context)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(f"http://127.0.0.1:{runner.addresses[0][1]}/")
        messages = page.locator("#messages li")
        # The recent history arrives as ordinary messages: it shows them.
        await expect(messages).to_have_text(["ann: sent before the page came"])
        await ann.wait_for_users(names=["ann", "oldpage"])
        await expect(page.locator("#users li")).to_have_text(["ann", "oldpage"])
        await page.locator("#text").fill("hello from the old page")
        await page.locator("#send").click()
        got = await ann.wait_for_message(user="oldpage")
        assert got.text == "hello from the old page" and got.offset == 2
        await ann.send("hi, old page")
        await expect(messages).to_have_text([
            "ann: sent before the page came",
            "oldpage: hello from the old page",
            "ann: hi, old page",
        ])
        assert errors == []
    finally:
        await context.close()
        await ann.disconnect()
        await runner.cleanup()
