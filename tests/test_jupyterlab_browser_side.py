"""Lesson 07 end to end, in a real browser on a real JupyterLab set up like
a JupyterHub (see tests/lab.py): the lesson runs in the Lab, and the link it
prints to the learner's own page opens that page through
jupyter-server-proxy, under a host name that is not localhost. The page
(its Socket.IO path worked out from its own address) joins the lesson's
chat, its message reaches Sam's window in the notebook, the exercise's check
passes when run again, and the last cell stops it all.

The notebooks are copied to a temporary directory first: nothing here
changes the repository's notebooks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

import browser as shared
from browser import ARTIFACTS, screenshot
from lab import BASE_URL, LAB_HOST, JupyterLab, LabNotebook, chromium_for_lab, lab_on_a_copy

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LESSON = "07-the-browser-side.ipynb"
PAGE_LINK = re.compile(re.escape(BASE_URL) + r"proxy/(\d+)/mine/")

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(150)]


@pytest.fixture(autouse=True)
def no_tasks_left() -> None:
    """Overrides conftest's check: the chat runs in the Lab's kernel here."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    shared.require_chromium()
    shared.client_js()  # the page needs the pinned client (or the test is skipped)
    with lab_on_a_copy(NOTEBOOKS, tmp_path_factory.mktemp("jupyterlab-07"),
                       ARTIFACTS / "jupyterlab-07.log") as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium(lab: JupyterLab) -> AsyncIterator[Browser]:
    async with chromium_for_lab() as launched:
        yield launched


def sam_window(page: Page):
    return page.locator(".chatlab-chat").filter(
        has=page.locator(".chatlab-name", has_text=re.compile("^Sam$"))).first


async def test_the_learners_page_chats_with_the_lesson_through_the_proxy(
        lab: JupyterLab, chromium: Browser) -> None:
    context = await chromium.new_context(viewport={"width": 1400, "height": 1000})
    lab_page = await context.new_page()
    notebook = LabNotebook(lab_page, LESSON)
    errors: list[str] = []
    lab_page.on("pageerror", lambda error: errors.append(str(error)))
    visitor = None
    try:
        await notebook.open(lab, host=LAB_HOST)
        cells = await notebook.cells()
        code = [i for i, cell in enumerate(cells) if cell["type"] == "code"]
        last = code[-1]
        assert "chatlab.shutdown()" in cells[last]["source"]
        [check] = [i for i in code if "await check_my_page(" in cells[i]["source"]]
        await notebook.clear_outputs()
        await notebook.run(code[:-1], command="notebook:run-all-above", active_cell=last)
        for index in code[:-1]:
            for output in await notebook.outputs(index):
                assert output.get("name") != "stderr", f"stderr from cell {index}: {output}"
        assert "not tried yet" in str(await notebook.outputs(check))

        # The link, shown in the notebook, goes through the hub's proxy.
        ports = {port for index in code for output in await notebook.outputs(index)
                 for port in PAGE_LINK.findall(str(output))}
        assert len(ports) == 1, f"page links: {ports}"
        port = ports.pop()
        link = lab_page.locator(f'.jp-OutputArea a[href="{BASE_URL}proxy/{port}/mine/"]')
        await expect(link).to_have_count(1)

        # Another browser (its own cookies) opens it, logged in as a hub's user is.
        visitor = await chromium.new_context(viewport={"width": 900, "height": 640})
        await shared.route_cdn(visitor)  # (the page loads nothing from it)
        page = await visitor.new_page()
        page_errors: list[str] = []
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        websockets: list[str] = []
        page.on("websocket", lambda ws: websockets.append(ws.url))
        await page.goto(lab.url(f"proxy/{port}/mine/?token={lab.token}", host=LAB_HOST))
        await page.locator("#name").fill("Ann")
        await page.get_by_role("button", name="Join").click()
        await expect(page.locator("#status")).to_have_text("joined as Ann")
        await page.locator("#text").fill("from my own page")
        await page.get_by_role("button", name="Send").click()
        await expect(page.locator("#text")).to_have_value("")

        # Sam's window in the notebook shows it; the page shows the users
        # and its own message apart (the hidden solution ran last).
        sam = sam_window(lab_page)
        await expect(sam.locator(".chatlab-msg").filter(has_text="from my own page")).to_have_count(1)
        await expect(page.locator("#users li")).to_have_text(["Sam", "Ann"])
        await expect(page.locator("#messages li.mine")).to_have_text(["Ann: from my own page"])
        socket_io = lab.url(f"proxy/{port}/socket.io/", host=LAB_HOST).replace("http", "ws", 1)
        assert any(url.startswith(socket_io) for url in websockets), websockets

        # The check, run again, sees a real browser on the learner's page.
        await notebook.run([check], command="notebook:run-cell", active_cell=check)
        assert "✓ passed: Ann's browser joined from your page" in str(await notebook.outputs(check))
        await screenshot(page, "jupyterlab-07-own-page")
        assert page_errors == [], page_errors

        await notebook.run([last], command="notebook:run-cell", active_cell=last)
        said = "".join(o.get("text", "") for o in await notebook.outputs(last))
        assert said == "Servers still running: []\nApps still running: []\n"
        await expect(page.locator("#status")).to_contain_text("disconnected")
    finally:
        if visitor is not None:
            await visitor.close()
        await context.close()
    assert errors == [], f"uncaught JavaScript errors in the Lab: {errors}"
