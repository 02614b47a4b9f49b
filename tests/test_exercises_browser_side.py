"""Lesson 07's check, driven by a real browser: headless Chromium (through
Playwright) opens the learner's page from the lesson's chat, joins and
sends, and a Python chat window receives. The right answer passes and shows
the users list and its own messages apart; wrong ones fail, or show what the
check cannot see; with no browser the check says "not tried yet"."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

import chatlab
from chatlab import ChatClient, ChatServer
from chatlab.exercises import ExerciseFailed
from chatlab.exercises.browser_side import check_my_page, is_browser

import browser as shared
from browser import CHROMIUM_ARGS

pytestmark = pytest.mark.e2e

SOLUTION = Path(__file__).parent.parent / "notebooks" / "solutions" / "07-the-browser-side"
LESSON = SOLUTION.parent.parent / "07-the-browser-side.ipynb"
EVIL = '<img src=x onerror="window.__pwned=1">'


def stub_show_js() -> str:
    """The exercise's untouched show.js, as the lesson writes it."""
    import nbformat
    cells = nbformat.read(LESSON, as_version=4).cells
    [stub] = [c.source for c in cells if c.source.startswith("%%writefile")
              and "TODO" in c.source]
    return stub.split("\n", 1)[1] + "\n"


def page_folder(tmp_path: Path, *, show: str | None = None, app_js: str | None = None) -> Path:
    folder = tmp_path / "page"
    folder.mkdir()
    for name in ("index.html", "app.js", "show.js"):
        shutil.copy(SOLUTION / name, folder / name)
    if show is not None:
        (folder / "show.js").write_text(show)
    if app_js is not None:
        (folder / "app.js").write_text(app_js)
    return folder


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    shared.client_js()  # skips (or fails) when the client is not installed
    executable = shared.require_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


class Lesson:
    """The lesson's chat with the learner's folder, and Sam's window."""

    def __init__(self, folder: Path) -> None:
        self.chat = ChatServer(pages=folder)

    async def start(self) -> "Lesson":
        self.server = await self.chat.serve(name="test-lesson07")
        self.sam = ChatClient(self.server.url)
        await self.sam.connect()
        await self.sam.add_user("Sam")
        return self


@pytest.fixture
async def lesson_for(browser: Browser):
    """``await lesson_for(folder)``: the lesson's chat serving ``folder``,
    Sam joined, and ``lesson.open(path)`` to open a page in Chromium."""
    contexts = []
    errors: list[str] = []

    async def make(folder: Path) -> Lesson:
        lesson = await Lesson(folder).start()

        async def open_page(path: str = "/mine/") -> Page:
            context = await browser.new_context()
            contexts.append(context)
            await shared.offline(context)
            page = await context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(lesson.server.url + path)
            return page

        lesson.open = open_page  # type: ignore[attr-defined]
        return lesson

    yield make
    for context in contexts:
        await context.close()
    await chatlab.shutdown()
    assert errors == []


async def join_and_send(page: Page, name: str, text: str) -> None:
    await page.locator("#name").fill(name)
    await page.get_by_role("button", name="Join").click()
    await expect(page.locator("#status")).to_have_text(f"joined as {name}")
    await page.locator("#text").fill(text)
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("#text")).to_have_value("")


async def test_the_right_answer_passes_and_shows_users_and_own_messages_apart(
        lesson_for, tmp_path, capsys):
    lesson = await lesson_for(page_folder(tmp_path))
    page = await lesson.open()
    await join_and_send(page, "Ann", "Hello from my page")
    await check_my_page(lesson.chat, lesson.sam, timeout=5)
    assert capsys.readouterr().out == (
        "✓ passed: Ann's browser joined from your page, and Sam's window received its message\n")
    # What the check cannot see, read in the page itself.
    await expect(page.locator("#users li")).to_have_text(["Sam", "Ann"])
    mine = page.locator("#messages li.mine")
    await expect(mine).to_have_text(["Ann: Hello from my page"])
    await lesson.sam.send("Hi Ann")
    await expect(page.locator("#messages li").last).to_have_text("Sam: Hi Ann")
    await expect(page.locator("#messages li.mine")).to_have_count(1)
    # Markup from another user is shown as its characters, and never runs.
    await lesson.sam.send(EVIL)
    await expect(page.locator("#messages li").last).to_have_text(f"Sam: {EVIL}")
    assert await page.locator("#messages img").count() == 0
    assert await page.evaluate("window.__pwned") is None
    await page.close()


async def test_the_untouched_stub_chats_but_shows_no_users_nor_its_own_apart(
        lesson_for, tmp_path, capsys):
    lesson = await lesson_for(page_folder(tmp_path, show=stub_show_js()))
    page = await lesson.open()
    await join_and_send(page, "Ann", "hello")
    # The server sees a right answer: the check says so, and no more.
    await check_my_page(lesson.chat, lesson.sam, timeout=5)
    assert capsys.readouterr().out.startswith("✓ passed")
    await expect(page.locator("#messages li")).to_have_text(["Ann: hello"])
    await expect(page.locator("#users li")).to_have_count(0)
    await expect(page.locator("#messages li.mine")).to_have_count(0)
    await page.close()


async def test_a_page_that_sends_another_event_fails(lesson_for, tmp_path):
    # The official tutorial's event name, which this chat does not know.
    app_js = (SOLUTION / "app.js").read_text().replace(
        '.emit("message", text', '.emit("chat message", text')
    lesson = await lesson_for(page_folder(tmp_path, app_js=app_js))
    page = await lesson.open()
    await page.locator("#name").fill("Ann")
    await page.get_by_role("button", name="Join").click()
    await expect(page.locator("#status")).to_have_text("joined as Ann")
    await page.locator("#text").fill("hello")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("#status")).to_contain_text("refused: unknown event 'chat message'")
    with pytest.raises(ExerciseFailed) as failed:
        await check_my_page(lesson.chat, lesson.sam, timeout=0.5)
    block = failed.value.block()
    assert "your page joined as Ann, but no message from it reached Sam's window" in block
    assert "console" in block
    await page.close()


async def test_the_kits_own_page_is_not_yours(lesson_for, tmp_path):
    lesson = await lesson_for(page_folder(tmp_path))
    page = await lesson.open("/")
    await page.locator("#name").fill("Ann")
    await page.get_by_role("button", name="Join").click()
    await expect(page.locator("#state")).to_have_text("connected as Ann")
    await lesson.sam.wait_for_users(names=["Sam", "Ann"])
    with pytest.raises(ExerciseFailed, match="came from the kit's own page"):
        await check_my_page(lesson.chat, lesson.sam, timeout=0.5)
    await page.close()


async def test_with_no_browser_it_is_not_tried_yet(lesson_for, tmp_path, capsys):
    lesson = await lesson_for(page_folder(tmp_path))
    python_user = ChatClient(lesson.server.url)  # joined, but not from a browser
    await python_user.connect()
    await python_user.add_user("Py")
    await python_user.send("not a browser")
    await check_my_page(lesson.chat, lesson.sam)
    assert capsys.readouterr().out.startswith(
        "– not tried yet: open your page from its link above, join, and send a message")


async def test_it_takes_a_window_or_a_client(lesson_for, tmp_path):
    lesson = await lesson_for(page_folder(tmp_path))
    with pytest.raises(TypeError, match="ChatWidget or a ChatClient"):
        await check_my_page(lesson.chat, "Sam")


def test_a_browser_is_told_by_its_user_agent():
    assert is_browser({"HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/130"})
    assert not is_browser({"HTTP_USER_AGENT": "Python/3.11 aiohttp/3.10"})
    assert not is_browser({})


def test_the_lesson_writes_the_solution_files_as_stored():
    import nbformat
    cells = nbformat.read(LESSON, as_version=4).cells
    written = {}
    for cell in cells:
        if cell.source.startswith("%%writefile"):
            first, body = cell.source.split("\n", 1)
            written.setdefault(Path(first.split()[1]).name, []).append(body + "\n")
    for name in ("index.html", "app.js", "asgi_app.py", "aiohttp_app.py"):
        assert written[name] == [(SOLUTION / name).read_text()]
    assert written["show.js"][-1] == (SOLUTION / "show.js").read_text()  # the hidden solution
