"""The chat lesson end to end, in a real browser on a real JupyterLab set up
like a JupyterHub (Binder included): under ``/user/tester/``, with
``JUPYTERHUB_SERVICE_PREFIX`` set, so that the browser reaches the chat
server in the kernel only through jupyter-server-proxy.

- The notebook runs in the Lab, and its chat widgets chat: typing in one
  widget's box and clicking Send (or pressing Enter) shows the message in the
  others.
- The page link the notebook prints opens the chat page through the proxy,
  under a host name that is not localhost, and the page joins the same chat.
- The chat server behind the proxy still refuses foreign origins.
- Text typed just before Send (or Enter) is sent whole on a slow link, as
  to a hub far away; and the windows share one row beside the file browser.
- The notebook's last cell (``await chatlab.shutdown()``) stops it all; it
  runs after the checks, as the rest of the notebook runs before them.

The notebooks are copied to a temporary directory first: nothing here
changes the repository's notebooks.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import AsyncIterator, Callable, Iterator

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser, BrowserContext, Locator, Page, WebSocketRoute, expect)

import browser as shared
from browser import ARTIFACTS, join, message, route_cdn, screenshot, send
from lab import BASE_URL, LAB_HOST, JupyterLab, LabNotebook, chromium_for_lab, lab_on_a_copy

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LESSON = "05-build-the-chat.ipynb"
WEB_USER = "web-visitor"
PROXY_LINK = re.compile(re.escape(BASE_URL) + r"proxy/(\d+)/")

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(150)]


@pytest.fixture(autouse=True)
def no_tasks_left() -> None:
    """Overrides conftest's check: the chat runs in the Lab's kernel here, and
    the browser's tasks live as long as this module's event loop."""


# -- the Lab, the browser and the notebook ----------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    shared.require_chromium()
    shared.client_js()  # the page needs the pinned client (or the test is skipped)
    assert (NOTEBOOKS / LESSON).exists(), f"notebooks/{LESSON} is missing"
    with lab_on_a_copy(NOTEBOOKS, tmp_path_factory.mktemp("jupyterlab"),
                       ARTIFACTS / "jupyterlab.log") as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium(lab: JupyterLab) -> AsyncIterator[Browser]:
    async with chromium_for_lab() as launched:
        yield launched


class Lesson:
    """The chat notebook, open in the Lab and run up to its last cell."""

    def __init__(self, notebook: LabNotebook, code_cells: list[int], last: int | None) -> None:
        self.notebook = notebook
        self.page = notebook.page
        self.code_cells = code_cells
        self.last = last  # the final `await chatlab.shutdown()` cell, not yet run

    async def run_last_cell(self) -> None:
        if self.last is not None:
            last, self.last = self.last, None
            await self.notebook.run([last], command="notebook:run-cell", active_cell=last)

    async def page_port(self) -> int:
        """The chat server's port, from the page link the notebook showed."""
        ports = []
        for index in self.code_cells:
            for output in await self.notebook.outputs(index):
                ports += PROXY_LINK.findall(str(output))
        assert ports, f"no page link ({BASE_URL}proxy/<port>/) in the notebook's outputs"
        assert len(set(ports)) == 1, f"page links to several servers: {sorted(set(ports))}"
        return int(ports[0])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lesson(lab: JupyterLab, chromium: Browser) -> AsyncIterator[Lesson]:
    """The lesson open in the Lab (under lab.test), with its outputs cleared
    and every cell but the final shutdown run."""
    context = await chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    notebook = LabNotebook(page, LESSON)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        await notebook.open(lab, host=LAB_HOST)
        cells = await notebook.cells()
        code = [i for i, cell in enumerate(cells) if cell["type"] == "code"]
        assert code, f"{LESSON} has no code cells"
        last = code[-1] if "chatlab.shutdown()" in cells[code[-1]]["source"] else None
        await notebook.clear_outputs()
        if last is None:
            await notebook.run(code, command="notebook:run-all-cells")
        else:  # everything above the shutdown cell
            await notebook.run(code[:-1], command="notebook:run-all-above", active_cell=last)
        result = Lesson(notebook, code, last)
        for index in code[:-1] if last is not None else code:
            for output in await notebook.outputs(index):
                assert output.get("name") != "stderr", (
                    f"stderr from cell {index} of {LESSON}: {output.get('text')}")
        yield result
        await result.run_last_cell()  # if a test failed before it ran
    finally:
        await context.close()
    assert errors == [], f"uncaught JavaScript errors in the Lab: {errors}"


# -- the widgets --------------------------------------------------------------------


def connected_widgets(page: Page) -> Locator:
    """The chat widgets whose client is connected and has joined."""
    return page.locator(".chatlab-chat").filter(
        has=page.locator(".chatlab-state-connected")).filter(
        has=page.locator(".chatlab-name:not(:has(i))"))


def widget(page: Page, name: str) -> Locator:
    """The (first) chat widget of the user ``name``."""
    return page.locator(".chatlab-chat").filter(
        has=page.locator(".chatlab-name", has_text=re.compile(f"^{re.escape(name)}$"))).first


def users_entry(box: Locator, name: str) -> Locator:
    """``name``'s entry in a widget's users list ("(you)" after one's own)."""
    return box.locator(".chatlab-users li").filter(
        has_text=re.compile(f"^{re.escape(name)}( \\(you\\))?$"))


def widget_message(box: Locator, text: str) -> Locator:
    return box.locator(".chatlab-msg").filter(
        has=box.page.locator(".chatlab-text", has_text=re.compile(f"^{re.escape(text)}$")))


async def widget_names(page: Page) -> list[str]:
    """The names of the connected widgets' users, each once, in page order
    (once at least two are shown)."""
    await expect(connected_widgets(page).nth(1)).to_be_visible()
    # Text content, not inner text: JupyterLab skips rendering cells out of
    # view (content-visibility), and their inner text is empty.
    names = await connected_widgets(page).locator(".chatlab-name").all_text_contents()
    return list(dict.fromkeys(name.strip() for name in names))


async def send_from_widget(box: Locator, text: str, *, press_enter: bool) -> None:
    """Type ``text`` into a chat widget and send it with Send or Enter."""
    entry = box.locator("input[type=text]")
    # The entry sends the text with the click or Enter (see the slow-link
    # test for typing key by key).
    await entry.fill(text)
    if press_enter:
        await entry.press("Enter")
    else:
        await box.get_by_role("button", name="Send").click()
    # The box is emptied once the server has accepted the message; if not,
    # the status line says why.
    try:
        await expect(entry).to_have_value("")
    except AssertionError as error:
        status = " ".join(await box.locator(".chatlab-status").all_text_contents())
        await screenshot(box.page, "jupyterlab-send-failed", full_page=False)
        raise AssertionError(f"the widget did not send {text!r}; its status line: {status!r}"
                             ) from error


# -- the tests -----------------------------------------------------------------------


async def test_the_widgets_chat_in_jupyterlab(lesson: Lesson) -> None:
    page = lesson.page
    names = await widget_names(page)
    assert len(names) >= 2, f"fewer than two connected chat widgets: {names}"
    # Every widget lists every user shown in a widget.
    for name in names:
        for other in names:
            await expect(users_entry(widget(page, name), other)).to_have_count(1)
    first, second = widget(page, names[0]), widget(page, names[1])

    await send_from_widget(first, "typed in the lab", press_enter=False)
    received = widget_message(second, "typed in the lab")
    await expect(received.locator(".chatlab-meta")).to_have_text(names[0])
    await expect(widget_message(first, "typed in the lab")).to_have_class(
        re.compile(r"\bchatlab-mine\b"))

    await send_from_widget(second, "sent with enter", press_enter=True)
    await expect(widget_message(first, "sent with enter").locator(".chatlab-meta")).to_have_text(
        names[1])
    await expect(widget_message(second, "sent with enter")).to_have_class(
        re.compile(r"\bchatlab-mine\b"))
    await expect(first.locator(".chatlab-status")).to_have_text("")
    await first.scroll_into_view_if_needed()
    await screenshot(page, "jupyterlab-widgets", full_page=False)


class Visitor:
    """The chat page in another browser, and the WebSockets it opened."""

    def __init__(self, page: Page, port: int) -> None:
        self.page = page
        self.port = port  # the chat server's
        self.websockets: list[str] = []
        self.websocket_opened = asyncio.Event()

    def on_websocket(self, url: str) -> None:
        self.websockets.append(url)
        self.websocket_opened.set()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def visitor(lab: JupyterLab, chromium: Browser, lesson: Lesson) -> AsyncIterator[Visitor]:
    """The chat page, opened from the notebook's link in a second browser
    context (another user's browser: its own cookies), under lab.test."""
    port = await lesson.page_port()
    # Shown as a link, it resolves against the Lab's own address.
    link = lesson.page.locator(f'.jp-OutputArea a[href="{BASE_URL}proxy/{port}/"]')
    await expect(link).to_have_count(1)
    assert await link.evaluate("(a) => a.href") == lab.url(f"proxy/{port}/", host=LAB_HOST)
    context: BrowserContext = await chromium.new_context(viewport={"width": 900, "height": 640})
    await route_cdn(context)
    page = await context.new_page()
    result = Visitor(page, port)
    errors: list[str] = []
    page.on("websocket", lambda ws: result.on_websocket(ws.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Logged in with the token on the first request, as a hub's user is
    # by the hub: the proxy lets only an authenticated user through.
    await page.goto(lab.url(f"proxy/{port}/?token={lab.token}", host=LAB_HOST))
    try:
        yield result
    finally:
        await context.close()
    assert errors == [], f"uncaught JavaScript errors on the page: {errors}"


async def test_the_page_link_joins_the_same_chat_through_the_proxy(
    lab: JupyterLab, lesson: Lesson, visitor: Visitor
) -> None:
    lab_page, page = lesson.page, visitor.page
    names = await widget_names(lab_page)
    await join(page, WEB_USER)

    # The page's user appears in every widget, and the page lists the same
    # users as the widgets (every client of the chat, widget or not).
    for name in names:
        await expect(users_entry(widget(lab_page, name), WEB_USER)).to_have_count(1)
    users = [re.sub(r" \(you\)$", "", user) for user in
             await widget(lab_page, names[0]).locator(".chatlab-users li").all_text_contents()]
    assert set(names) | {WEB_USER} <= set(users), users
    await expect(page.locator("#users li")).to_have_text(
        [re.compile(f"^{re.escape(user)}( \\(you\\))?$") for user in users])

    # Widget → page.
    await send_from_widget(widget(lab_page, names[0]), "from the widget", press_enter=False)
    await expect(message(page, "from the widget").locator(".sender")).to_have_text(names[0])
    # Page → widgets.
    await send(page, "from the page")
    for name in names:
        entry = widget_message(widget(lab_page, name), "from the page")
        await expect(entry.locator(".chatlab-meta")).to_have_text(WEB_USER)

    # Socket.IO took the page's path: under the proxy, upgraded to a WebSocket.
    await asyncio.wait_for(visitor.websocket_opened.wait(), timeout=10)
    socket_io = lab.url(f"proxy/{visitor.port}/socket.io/", host=LAB_HOST).replace("http", "ws", 1)
    assert [url for url in visitor.websockets if url.startswith(socket_io)], visitor.websockets
    await screenshot(page, "jupyterlab-proxied-page")
    await widget(lab_page, names[0]).scroll_into_view_if_needed()
    await screenshot(lab_page, "jupyterlab-widgets-with-page", full_page=False)


async def test_the_proxied_chat_still_refuses_foreign_origins(
    lab: JupyterLab, lesson: Lesson
) -> None:
    port = await lesson.page_port()
    url = lab.url(f"proxy/{port}/socket.io/?EIO=4&transport=polling")
    lab_origin = lab.origin(LAB_HOST)
    headers = {"Host": f"{LAB_HOST}:{lab.port}", "Authorization": f"token {lab.token}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(url, headers={**headers, "Origin": "http://evil.test"}) as refused:
            assert refused.status == 400, await refused.text()
            assert "Access-Control-Allow-Origin" not in refused.headers
        async with session.get(url, headers={**headers, "Origin": lab_origin}) as allowed:
            assert allowed.status == 200, await allowed.text()
            assert allowed.headers.get("Access-Control-Allow-Origin") == lab_origin
            assert (await allowed.text()).startswith("0{")  # an Engine.IO open packet
        # Nobody gets through the proxy without logging in to the Lab.
        anonymous = {"Host": headers["Host"], "Origin": lab_origin}
        async with session.get(url, headers=anonymous, allow_redirects=False) as stranger:
            assert stranger.status in (302, 403), stranger.status


# The typist's link to the Lab: this much latency each way, on its tab only.
LATENCY_MS = 400


class SlowWebSockets:
    """Routes a browser context's kernel connections through a delay: each
    message, either way, is passed on LATENCY_MS after it was sent, in
    order. Chromium's own network conditions (set too) slow down HTTP and a
    WebSocket's handshake but not its messages, which are what matter here."""

    def __init__(self, latency: float) -> None:
        self.latency = latency

    async def route(self, route: WebSocketRoute) -> None:
        loop = asyncio.get_running_loop()
        server = route.connect_to_server()

        def later(send: Callable[[str | bytes], None]) -> Callable[[str | bytes], None]:
            # call_at keeps the order of calls due at the same time
            return lambda data: loop.call_at(loop.time() + self.latency, send, data)

        route.on_message(later(server.send))
        server.on_message(later(route.send))

TYPIST = """\
import chatlab
from chatlab.widgets import ChatWidget
_typist = chatlab.ChatClient(next(iter(chatlab.running_servers().values())).url)
await _typist.connect()
await _typist.add_user("typist")
ChatWidget(_typist)"""

# The time a kernel request takes from the page: a round trip on its link.
_ROUND_TRIP = """
    const kernel = panel.sessionContext.session.kernel;
    const start = performance.now();
    await kernel.requestKernelInfo();
    return performance.now() - start;
}"""
KERNEL_ROUND_TRIP = "async () => { const panel = window.jupyterapp.shell.currentWidget;" + _ROUND_TRIP
KERNEL_ROUND_TRIP_OF = "async (path) => { const panel = chatlabPanel(path);" + _ROUND_TRIP


@pytest.mark.timeout(300)
async def test_send_right_after_typing_sends_the_whole_text_on_a_slow_link(
    lab: JupyterLab, chromium: Browser, lesson: Lesson
) -> None:
    """On a hub the kernel can be far away. In a second Lab tab, with a
    console on the lesson's kernel, under a network at least 300 ms slow
    each way, the typist types fast and sends at once, 20 times with Enter
    and 20 times with Send: each text arrives exactly as typed. (Typing
    reaches the kernel as value updates that ipywidgets holds back while
    one is on its way; the chat window's entry sends the text with the
    click or Enter instead.)"""
    names = await widget_names(lesson.page)
    kernel_id = await lesson.page.evaluate(
        "(path) => chatlabPanel(path).sessionContext.session.kernel.id", lesson.notebook.path)
    context = await chromium.new_context(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    try:
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        await context.route_web_socket(re.compile(r"/api/kernels/[^/?]+/channels"),
                                       SlowWebSockets(LATENCY_MS / 1000).route)
        cdp = await context.new_cdp_session(page)
        await cdp.send("Network.enable")
        await cdp.send("Network.emulateNetworkConditions", {
            "offline": False, "latency": LATENCY_MS,
            "downloadThroughput": -1, "uploadThroughput": -1})
        await page.goto(lab.url(f"lab?reset&token={lab.token}", host=LAB_HOST))
        await page.wait_for_function(
            "() => !!window.jupyterapp && window.jupyterapp.commands.hasCommand('console:create')",
            timeout=30_000)
        await page.evaluate(
            """(id) => window.jupyterapp.commands.execute(
                "console:create", {kernelPreference: {id}}).then(() => true)""", kernel_id)
        await page.wait_for_function("""() => {
            const panel = window.jupyterapp.shell.currentWidget;
            const kernel = panel && panel.console && panel.sessionContext.session
                && panel.sessionContext.session.kernel;
            return !!(kernel && kernel.connectionStatus === "connected" && kernel.status === "idle");
        }""", timeout=30_000)
        slow = await page.evaluate(KERNEL_ROUND_TRIP)
        fast = await lesson.page.evaluate(KERNEL_ROUND_TRIP_OF, lesson.notebook.path)
        assert slow >= 2 * LATENCY_MS > fast, (
            f"the kernel's link is not slow: {slow:.0f} ms (the lesson's tab: {fast:.0f} ms)")
        await page.evaluate(
            "(code) => window.jupyterapp.shell.currentWidget.console.inject(code).then(() => true)",
            TYPIST)
        typist = page.locator(".chatlab-chat")
        box = typist.locator("input[type=text]")
        await expect(box).to_be_enabled(timeout=30_000)

        sent: list[str] = []
        for i in range(40):
            press_enter = i % 2 == 0
            text = f"message {i + 1} typed fast, sent with {'Enter' if press_enter else 'Send'}!"
            await box.press_sequentially(text, delay=5)
            if press_enter:
                await box.press("Enter")
            else:
                await typist.get_by_role("button", name="Send").click()
            sent.append(text)
            # The box empties once the server has the message.
            await expect(box).to_have_value("", timeout=20_000)

        received = widget(lesson.page, names[0]).locator(".chatlab-msg").filter(
            has=lesson.page.locator(".chatlab-meta", has_text=re.compile("^typist$")))
        await expect(received).to_have_count(len(sent))
        assert await received.locator(".chatlab-text").all_text_contents() == sent
        await expect(typist.locator(".chatlab-status")).to_have_text("")
    finally:
        await context.close()
    assert errors == [], f"uncaught JavaScript errors in the typist's Lab: {errors}"


async def test_four_windows_fit_one_row_beside_the_file_browser(lesson: Lesson) -> None:
    """At 1,400 px with the file browser open, the lesson's windows share
    one row, and a notebook's output has room for four of them."""
    page = lesson.page
    names = await widget_names(page)
    await page.evaluate("""() => {
        window.jupyterapp.shell.activateById("filebrowser");
        window.jupyterapp.shell.expandLeft();
    }""")
    await expect(page.locator("#filebrowser")).to_be_visible()
    first = widget(page, names[0])
    await first.scroll_into_view_if_needed()
    row = first.locator("xpath=..")
    windows = row.locator(":scope > .chatlab-chat")
    boxes = [await windows.nth(i).bounding_box() for i in range(await windows.count())]
    assert len(boxes) >= 2 and all(boxes), boxes
    assert len({round(b["y"]) for b in boxes}) == 1, f"the windows wrap: {boxes}"
    output = await row.bounding_box()
    assert output is not None
    smallest = min(b["width"] for b in boxes)
    assert smallest >= 200, boxes
    assert 4 * (200 + 8) <= output["width"], f"no room for four windows: {output}"
    await screenshot(page, "jupyterlab-windows-in-a-row", full_page=False)


async def test_the_last_cell_stops_the_chat(lesson: Lesson, visitor: Visitor) -> None:
    page = lesson.page
    names = await widget_names(page)
    assert lesson.last is not None, "the notebook's last cell does not call chatlab.shutdown()"
    last = lesson.last
    await lesson.run_last_cell()
    for output in await lesson.notebook.outputs(last):
        assert output.get("name") != "stderr", output.get("text")
    await expect(connected_widgets(page)).to_have_count(0)
    for name in names:
        await expect(widget(page, name).locator(".chatlab-state")).to_have_text("disconnected")
    await expect(visitor.page.locator("#state")).to_have_attribute(
        "data-state", re.compile("^(disconnected|connecting)$"))
    await expect(visitor.page.locator("#users li")).to_have_count(0)
