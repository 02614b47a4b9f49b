"""The official Socket.IO Admin UI in a real browser (headless Chromium driven
by Playwright), served by a lesson's server on 127.0.0.1 and watching it: it
loads with no internet, signs in with the printed credentials, lists the
server's clients and rooms, and refuses a wrong password."""

from __future__ import annotations

import re
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import pytest
import socketio
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Locator, Page, async_playwright, expect

import chatlab
from chatlab import ChatClient, ChatServer, RecordingClient, RunningServer
from chatlab.admin_ui import UI_DIR, AdminLink, admin_ui

import browser as shared
from browser import CHROMIUM_ARGS, offline
from lab import BASE_URL, LAB_HOST, JupyterLab, chromium_for_lab

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"
# The UI's stylesheet asks public CDNs for its fonts and icons; offline,
# these (and nothing else) are refused, and it works with plain text.
UI_FONTS = re.compile(r"^https://(fonts\.googleapis\.com/|cdn\.jsdelivr\.net/npm/@mdi/font@)")

# The UI's app bar, once signed in.
CONNECTED = re.compile(r"Status:\s*connected", re.I)


def require_ui() -> None:
    if not (UI_DIR / "index.html").is_file():
        shared.missing("the Socket.IO Admin UI is not installed: run `make install` "
                       "(npm ci --prefix chatlab/web/vendor)")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    require_ui()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=shared.require_chromium(), headless=True, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def watched() -> AsyncIterator[tuple[RunningServer, AdminLink]]:
    """A learner's server, watched in the Admin UI; each client joins 'lobby'."""
    sio = socketio.AsyncServer(async_mode="aiohttp")

    @sio.event
    async def connect(sid: str, environ: dict, auth: object = None) -> None:
        await sio.enter_room(sid, "lobby")

    app = web.Application()
    admin = admin_ui(sio, app, password=PASSWORD)
    server = await chatlab.serve(sio, app=app, name="admin-ui-browser")
    try:
        yield server, admin.link(server, environ={})
    finally:
        await chatlab.shutdown()


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[Callable[[str], Awaitable[Page]]]:
    """A page in a fresh context with no internet; it may ask only for the
    UI's fonts outside 127.0.0.1, and must raise no JavaScript error."""
    contexts: list[BrowserContext] = []
    refused: list[list[str]] = []
    errors: list[str] = []

    async def make(url: str) -> Page:
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        contexts.append(context)
        refused.append(await offline(context))
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(url)
        return page

    yield make
    for context in contexts:
        await context.close()
    left = [url for urls in refused for url in urls if not UI_FONTS.match(url)]
    assert left == [], f"the Admin UI tried to reach the internet: {left}"
    assert errors == [], f"uncaught JavaScript errors: {errors}"


def view_table(page: Page, column: str) -> Locator:
    """The rows of the table of a view (sockets, rooms) with this column;
    the view left may still show while it fades out."""
    table = page.locator("main table").filter(has=page.get_by_role("columnheader", name=column))
    return table.locator("tbody")


async def sign_in(page: Page, username: str, password: str) -> None:
    dialog = page.locator(".v-dialog--active")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("Username").fill(username)
    await dialog.get_by_label("Password").fill(password)
    await dialog.get_by_role("button", name="Connect").click()


async def test_the_ui_signs_in_and_lists_the_servers_clients(
    watched: tuple[RunningServer, AdminLink], open_page: Callable[[str], Awaitable[Page]]
) -> None:
    server, link = watched
    clients = [RecordingClient(f"learner-{n}") for n in range(3)]
    for client in clients:
        await client.connect(server.url)

    page = await open_page(link.url)
    # Filled in for this very server: the learner types only the credentials.
    dialog = page.locator(".v-dialog--active")
    await expect(dialog.get_by_label("Server URL")).to_have_value(server.url)
    await sign_in(page, link.username, link.password)
    await expect(dialog).to_be_hidden()
    await expect(page.locator("header")).to_contain_text(CONNECTED)

    await page.evaluate("window.location.hash = '#/sockets/'")
    table = view_table(page, "IP address")
    for client in clients:
        sid = client.get_sid()
        assert sid is not None
        await expect(table).to_contain_text(sid)
    await expect(table.locator("tr")).to_have_count(len(clients))

    # A client that leaves goes from the list.
    await clients[0].disconnect()
    await expect(table.locator("tr")).to_have_count(len(clients) - 1)

    await page.evaluate("window.location.hash = '#/rooms/'")
    await expect(view_table(page, "Type")).to_contain_text("lobby")


async def test_a_wrong_password_is_refused(
    watched: tuple[RunningServer, AdminLink], open_page: Callable[[str], Awaitable[Page]]
) -> None:
    _, link = watched
    page = await open_page(link.url)
    # Before signing in, the UI's own retry (with no password) is turned away.
    dialog = page.locator(".v-dialog--active")
    await expect(dialog).to_contain_text("sign in with the username and password")
    await sign_in(page, link.username, "not the password")
    await expect(dialog).to_contain_text("Invalid credentials")
    await expect(page.locator("header")).not_to_contain_text(CONNECTED)


async def test_the_chat_server_is_watched_too(
    browser: Browser, open_page: Callable[[str], Awaitable[Page]]
) -> None:
    chat = ChatServer(admin_ui=True)
    assert chat.admin_ui is not None
    server = await chat.serve(name="admin-ui-chat")
    try:
        users = [ChatClient(server.url) for _ in range(2)]
        for name, client in zip(("ann", "bob"), users):
            await client.connect()
            await client.add_user(name)
        await users[0].join("lobby")
        link = chat.admin_ui.link(server, environ={})

        page = await open_page(link.url)
        await sign_in(page, link.username, link.password)
        await expect(page.locator("header")).to_contain_text(CONNECTED)
        await page.evaluate("window.location.hash = '#/sockets/'")
        table = view_table(page, "IP address")
        await expect(table.locator("tr")).to_have_count(len(users))
        for client in users:
            await expect(table).to_contain_text(client.sio.get_sid())
        # The chat still works while it is watched.
        await users[1].send("hello")
        await users[0].wait_for_message(user="bob")
    finally:
        await chatlab.shutdown()


async def test_it_works_through_a_hubs_proxy(tmp_path: Path) -> None:
    """As on a JupyterHub: the browser reaches the server only through
    jupyter-server-proxy, under the hub's prefix, by the hub's name."""
    require_ui()
    (tmp_path / "root").mkdir()
    (tmp_path / "home").mkdir()
    with JupyterLab(tmp_path / "root", tmp_path / "home") as lab:
        sio = socketio.AsyncServer(async_mode="aiohttp")
        app = web.Application()
        admin = admin_ui(sio, app, password=PASSWORD)
        server = await chatlab.serve(sio, app=app, name="admin-ui-proxied")
        try:
            link = admin.link(server, environ={"JUPYTERHUB_SERVICE_PREFIX": BASE_URL})
            assert str(link) == f"{BASE_URL}proxy/{server.port}/admin-ui/"
            client = RecordingClient("learner")
            await client.connect(server.url)
            async with chromium_for_lab() as launched:
                page = await launched.new_page()
                websockets: list[str] = []
                page.on("websocket", lambda ws: websockets.append(ws.url))
                # Logged in to the Lab with its token, as a hub's user is.
                await page.goto(f"{lab.origin(LAB_HOST)}{link.url}?token={lab.token}")
                await sign_in(page, link.username, link.password)
                await expect(page.locator("header")).to_contain_text(CONNECTED)
                await page.evaluate("window.location.hash = '#/sockets/'")
                await expect(view_table(page, "IP address")).to_contain_text(
                    client.get_sid() or "?")
                proxied = lab.url(f"proxy/{server.port}/socket.io/", host=LAB_HOST)
                assert any(url.startswith(proxied.replace("http", "ws", 1))
                           for url in websockets), websockets
        finally:
            await chatlab.shutdown()
