"""How names and messages are drawn, measured in a real browser (headless
Chromium driven by Playwright): on the chat page, served by the real chat
server on 127.0.0.1, and in the chat window widget's HTML and stylesheet.

A name or message must not reorder the text around it (bidirectional text),
spill over its neighbours (accents stacked a hundred high, "zalgo" text),
or make the page unusable (a thousand lines).
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import pytest
import socketio
from aiohttp import web
from playwright.async_api import Browser, Locator, Page, expect

import chatlab
from chatlab import ChatClient, RunningServer
from chatlab.chat_server import CLIENT_FILE, CLIENT_PATH, WEB_DIR
from chatlab.widgets import ChatWidget, _style

from browser import join, message, offline
# The page fixtures: a browser, and pages in it with no internet.
from test_page_browser import OpenPage, browser, client_js, open_page  # noqa: F401

pytestmark = pytest.mark.e2e

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: draws what follows it reversed
HEBREW = "\u05e9\u05dc\u05d5\u05dd \u05dc\u05db\u05d5\u05dc\u05dd"  # "hello everyone"
HEBREW_NAME = "\u05d3\u05e0\u05d9"


def zalgo(text: str, marks: int) -> str:
    """``text`` with ``marks`` combining marks stacked on each letter, half
    above it and half below."""
    above = [chr(code) for code in range(0x0300, 0x0315)]
    below = [chr(code) for code in range(0x0316, 0x0334)]
    stacked = []
    for index, letter in enumerate(text):
        stack = [(above if n % 2 else below)[(index + n) % 21] for n in range(marks)]
        stacked.append(letter + "".join(stack))
    return "".join(stacked)


ZALGO_MESSAGE = zalgo("he comes " * 8, 24)   # 72 letters, 1,800 characters
ZALGO_NAME = zalgo("zed", 9) + "z"          # 31 characters
TALL_MESSAGE = "top" + "\n" * 1000 + "bottom"


async def rect(locator: Locator) -> dict[str, float]:
    return await locator.evaluate(
        "(node) => { const r = node.getBoundingClientRect();"
        " return {x: r.x, y: r.y, width: r.width, height: r.height}; }")


async def drawn_only_inside(page: Page, target: Locator, regions: list[dict[str, float]]) -> bool:
    """Whether ``target`` draws nothing in ``regions`` (viewport rectangles
    beside it): each looks the same with ``target`` hidden as shown."""
    shots = {}
    for visibility in ("visible", "hidden"):
        await target.evaluate("(node, v) => { node.style.visibility = v; }", visibility)
        shots[visibility] = [await page.screenshot(clip=region) for region in regions]
    await target.evaluate("(node) => { node.style.visibility = ''; }")
    return shots["visible"] == shots["hidden"]


def strip(above: float, below: float, left: float, width: float) -> dict[str, float]:
    return {"x": left, "y": above, "width": width, "height": below - above}


async def around(target: Locator, container: Locator, margin: float) -> list[dict[str, float]]:
    """The strips of ``container``'s width just above and just below ``target``."""
    box, outer = await rect(target), await rect(container)
    top, bottom = box["y"], box["y"] + box["height"]
    return [strip(max(outer["y"], top - margin), top, outer["x"], outer["width"]),
            strip(bottom, bottom + margin, outer["x"], outer["width"])]


async def page_showing(chat_server: RunningServer, open_page: OpenPage, text: str, *,
                       height: int) -> tuple[ChatClient, Page]:
    """A page joined as bob that shows ``text`` sent by ann (a Python
    client, returned for disconnecting), and a message after it."""
    ann = ChatClient(chat_server.url)
    await ann.connect()
    await ann.add_user("ann")
    page = await open_page(chat_server.url + "/", height=height)
    await join(page, "bob")
    await ann.send(text)
    await ann.send("after")
    await expect(message(page, "after")).to_be_visible()
    return ann, page


# -- the chat page ------------------------------------------------------------------


async def test_a_zalgo_message_stays_inside_its_bubble(
    chat_server: RunningServer, open_page: OpenPage
) -> None:
    ann, page = await page_showing(chat_server, open_page, ZALGO_MESSAGE, height=900)

    bubble = page.locator("#messages li.message").filter(has_text="ann").first
    text = bubble.locator(".text")
    await text.scroll_into_view_if_needed()
    sizes = await bubble.evaluate(
        "(node) => [node.scrollWidth, node.clientWidth, node.getBoundingClientRect().height,"
        " window.innerHeight]")
    scroll_width, client_width, height, window_height = sizes
    assert scroll_width <= client_width, "nothing sticks out sideways"
    assert height <= 0.6 * window_height
    # The marks over the first line and under the last are cut at the edge
    # of the text: none is drawn over the sender's name or the next message.
    assert await drawn_only_inside(page, text, await around(text, page.locator("#messages"), 40))
    await ann.disconnect()


async def test_a_message_of_a_thousand_lines_is_capped_and_scrolls_on_its_own(
    chat_server: RunningServer, open_page: OpenPage
) -> None:
    ann, page = await page_showing(chat_server, open_page, TALL_MESSAGE, height=640)

    text = page.locator("#messages li.message .text").first
    bubble, shown, whole, window_height = await text.evaluate(
        "(node) => [node.closest('li').getBoundingClientRect().height, node.clientHeight,"
        " node.scrollHeight, window.innerHeight]")
    assert bubble <= 0.6 * window_height, "the message takes at most about half the window"
    assert whole > 10_000 > shown, "all of it is there, in a scroll of its own"
    # Nothing is lost: its own scroll reaches the last line.
    await text.evaluate("(node) => { node.scrollTop = node.scrollHeight; }")
    await expect(text).to_contain_text("bottom")
    # The page stays usable: the text box is on screen, the window does not scroll.
    await expect(page.locator("#message-input")).to_be_in_viewport()
    assert await page.evaluate(
        "document.scrollingElement.scrollHeight <= window.innerHeight")
    await ann.disconnect()


async def test_a_zalgo_name_stays_on_its_line(
    chat_server: RunningServer, open_page: OpenPage
) -> None:
    zed = ChatClient(chat_server.url)
    await zed.connect()
    await zed.add_user(ZALGO_NAME)
    page = await open_page(chat_server.url + "/", height=900)
    await join(page, "bob")
    await zed.send("hi")
    await expect(message(page, "hi")).to_be_visible()

    row = page.locator("#users li").first  # zed joined first
    assert await drawn_only_inside(page, row, await around(row, page.locator("aside.users"), 24))
    sender = message(page, "hi").locator(".sender")
    bubble = message(page, "hi")
    assert await drawn_only_inside(page, sender, await around(sender, bubble, 24))
    await zed.disconnect()


async def test_names_and_messages_take_their_own_direction(
    chat_server: RunningServer, open_page: OpenPage
) -> None:
    dani = ChatClient(chat_server.url)
    await dani.connect()
    await dani.add_user(HEBREW_NAME)
    page = await open_page(chat_server.url + "/")
    await join(page, "bob")
    await dani.send(HEBREW)
    await dani.send("hello", to="bob")
    await expect(message(page, "hello")).to_be_visible()

    # The element that holds exactly a user's text: its direction is its own.
    isolation = """(node, text) => {
        let holder = node;
        for (const child of node.querySelectorAll("*")) {
            if (child.textContent === text) holder = child;
        }
        const style = getComputedStyle(holder);
        return [holder.textContent === text, style.unicodeBidi, style.direction];
    }"""
    hebrew = message(page, HEBREW).locator(".text")
    assert await hebrew.evaluate(isolation, HEBREW) == [True, "plaintext", "rtl"]
    english = message(page, "hello").locator(".text")
    assert await english.evaluate(isolation, "hello") == [True, "plaintext", "ltr"]
    for place, name, direction in (
        (message(page, HEBREW).locator(".meta"), HEBREW_NAME, "rtl"),  # the sender
        (message(page, "hello").locator(".tag"), "bob", "ltr"),          # "to bob"
        (page.locator("#users li").first, HEBREW_NAME, "rtl"),
        (page.locator("#users li").last, "bob", "ltr"),                  # before "(you)"
        (page.locator("#state"), "bob", "ltr"),                          # "connected as bob"
    ):
        assert await place.evaluate(isolation, name) == [True, "isolate", direction], name
    await dani.disconnect()


@pytest.fixture
async def unchecked_chat() -> AsyncIterator[str]:
    """The chat page, served with a python-socketio server of the kind a
    learner writes: it passes names on and checks none, so a name with a
    bidirectional override reaches the page."""
    sio = socketio.AsyncServer(async_mode="aiohttp")
    names: dict[str, str] = {}

    @sio.event
    async def adduser(sid: str, name: Any) -> dict[str, Any]:
        names[sid] = name
        await sio.emit("users", list(names.values()))
        await sio.emit("private", {"id": sid, "name": name, "msg": "welcome"}, to=sid)
        return {"ok": True}

    @sio.event
    async def disconnect(sid: str, reason: Any = None) -> None:
        names.pop(sid, None)

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_DIR / "index.html")

    async def client(request: web.Request) -> web.FileResponse:
        return web.FileResponse(CLIENT_FILE)

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get(CLIENT_PATH, client)
    app.router.add_static("/static/", WEB_DIR)
    server = await chatlab.serve(sio, name="test-unchecked-chat", app=app)
    try:
        yield server.url + "/"
    finally:
        await server.stop()


async def test_an_override_in_a_name_does_not_reorder_the_text_after_it(
    unchecked_chat: str, open_page: OpenPage
) -> None:
    page = await open_page(unchecked_chat)
    await join(page, RLO + "evil")
    mine = page.locator("#users li.me")
    await expect(mine).to_have_text(RLO + "evil (you)")
    # Where "(you)" is drawn: after the name, not reversed in front of it.
    name, you = await mine.evaluate("""(item) => {
        const you = item.querySelector(".you");
        const name = document.createRange();
        name.setStart(item, 0);
        name.setEndBefore(you);
        const box = (r) => [r.left, r.right];
        return [box(name.getBoundingClientRect()), box(you.getBoundingClientRect())];
    }""")
    assert you[0] >= name[1] - 0.5, f"'(you)' at {you} is drawn before the name at {name}"


# -- the chat window widget ------------------------------------------------------------


def widget_page(box: ChatWidget) -> str:
    """The HTML a notebook shows for ``box``, laid out as ipywidgets lays
    out its parts (each HTML widget's value inside its content element)."""
    def html(widget: Any, style: str = "", extra: str = "") -> str:
        return (f'<div class="widget-html {extra}" style="{style}">'
                f'<div class="widget-html-content">{widget.value}</div></div>')

    messages, users = box._messages.layout, box._users.layout
    scroller = (f"flex: 1 1 auto; min-width: 0; height: {messages.height}; overflow: auto;"
                " display: flex; flex-direction: column-reverse")
    side = f"width: {users.width}; height: {users.height}; overflow: auto"
    return (
        '<!doctype html><meta charset="utf-8"><body style="margin: 0">'
        f'<div class="chatlab-chat" style="width: 420px">{_style().value}'
        f'{html(box._header)}<div style="display: flex">'
        f'{html(box._messages, scroller)}{html(box._users, side, "chatlab-users")}'
        '</div></div></body>')


async def test_the_chat_window_clamps_zalgo_and_tall_messages(
    chat_server: RunningServer, browser: Browser  # noqa: F811
) -> None:
    ann, bob = ChatClient(chat_server.url), ChatClient(chat_server.url)
    for client, name in ((ann, "ann"), (bob, "bob")):
        await client.connect()
        await client.add_user(name)
    box = ChatWidget(bob)
    await ann.send(ZALGO_MESSAGE)
    await ann.send(TALL_MESSAGE)
    await ann.send("after")
    await bob.wait_for_message(text="after")

    context = await browser.new_context(viewport={"width": 600, "height": 700})
    await offline(context)
    page = await context.new_page()
    try:
        await page.set_content(widget_page(box))
        bubbles = page.locator(".chatlab-msg")
        await expect(bubbles).to_have_count(3)
        zalgo_text = bubbles.nth(0).locator(".chatlab-text")
        tall_text = bubbles.nth(1).locator(".chatlab-text")
        for bubble in (bubbles.nth(0), bubbles.nth(1)):
            width, inner, height = await bubble.evaluate(
                "(node) => [node.scrollWidth, node.clientWidth,"
                " node.getBoundingClientRect().height]")
            assert width <= inner and height <= 260, "inside the window's message area"
        shown, whole = await tall_text.evaluate("(node) => [node.clientHeight, node.scrollHeight]")
        assert whole > 10_000 > shown, "the tall one scrolls on its own"
        await zalgo_text.scroll_into_view_if_needed()
        assert await drawn_only_inside(
            page, zalgo_text, await around(zalgo_text, page.locator(".chatlab-list"), 30))
    finally:
        await context.close()
        box.close()
        await ann.disconnect()
        await bob.disconnect()
