"""A learner's path through the lessons with chat windows, in JupyterLab in
Chromium: open the lesson fresh, Run All (whose last cell stops the chat),
then follow every "Your turn" prompt. Each prompt has a cell right after it
that opens new windows, starting the chat again if it has stopped; the
learner runs it, types into the first window and presses Enter, and the
text appears in the other new windows. No cell shows an error on the way.

Lesson 06's prompt goes on: the learner's client goes offline in a new
cell, the learner types while it is away, and what was typed arrives once
it is back.

The notebooks are copied to a temporary directory first: nothing here
changes the repository's notebooks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

import browser as shared
from browser import ARTIFACTS, CHROMIUM_ARGS, screenshot
from lab import JupyterLab, LabNotebook, lab_on_a_copy

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LESSONS = [
    "00-start-here.ipynb", "03-rooms.ipynb", "06-delivery-guarantees.ipynb", "10-scaling-out.ipynb"]
YOUR_TURN = re.compile(r"\*\*Your turn\b")

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(240)]


@pytest.fixture(autouse=True)
def no_tasks_left() -> None:
    """Overrides conftest's check: the chat runs in the Lab's kernels here,
    and the browser's tasks live as long as this module's event loop."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    shared.require_chromium()
    with lab_on_a_copy(NOTEBOOKS, tmp_path_factory.mktemp("lessons-in-lab"),
                       ARTIFACTS / "jupyterlab-lessons.log") as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium(lab: JupyterLab) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=shared.require_chromium(), headless=True, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


# -- driving the notebook as a learner -----------------------------------------------

# Done: cell i ran again (its execution count is not `before`), is not
# running, and the kernel is idle.
_RAN_AGAIN = """([path, i, before]) => {
  const panel = chatlabPanel(path);
  const model = panel.content.widgets[i].model;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === "idle" && model.executionCount !== null
    && model.executionCount !== before && model.executionState !== "running";
}"""

_ERRORS = """(path) => chatlabPanel(path).content.widgets.flatMap((cell, i) =>
  cell.model.type !== "code" ? [] : cell.model.outputs.toJSON()
    .filter((output) => output.output_type === "error")
    .map((output) => `cell ${i}: ${output.ename}: ${output.evalue}`))"""

_INSERT_BELOW = """async ([path, i, source]) => {
  const app = window.jupyterapp;
  const panel = chatlabPanel(path);
  app.shell.activateById(panel.id);
  panel.content.activeCellIndex = i;
  await app.commands.execute("notebook:insert-cell-below");
  panel.content.activeCell.model.sharedModel.setSource(source);
  return panel.content.activeCellIndex;
}"""


async def run_cell(notebook: LabNotebook, index: int, *, timeout: float = 60.0) -> None:
    """Run cell ``index`` (selected, as Shift+Enter runs it) and wait until
    it has run again."""
    page = notebook.page
    before = await page.evaluate(
        "([path, i]) => chatlabPanel(path).content.widgets[i].model.executionCount",
        [notebook.path, index])
    await notebook.command("notebook:run-cell", active_cell=index)
    await page.wait_for_function(
        _RAN_AGAIN, arg=[notebook.path, index, before], timeout=timeout * 1000)


async def run_new_cell(notebook: LabNotebook, below: int, source: str) -> int:
    """Insert a code cell below cell ``below``, type ``source`` in it and
    run it, as the prompt says; returns its index."""
    index = await notebook.page.evaluate(_INSERT_BELOW, [notebook.path, below, source])
    await run_cell(notebook, index)
    await assert_no_errors(notebook)
    return index


async def assert_no_errors(notebook: LabNotebook) -> None:
    errors = await notebook.page.evaluate(_ERRORS, notebook.path)
    assert errors == [], f"{notebook.path}: cells with an error: {errors}"


async def cell_locator(notebook: LabNotebook, index: int, mark: str) -> Locator:
    """Cell ``index``'s node, marked so that it can be found whatever the
    other cells' order, and scrolled to (cells out of view may not be
    rendered)."""
    await notebook.page.evaluate(
        """([path, i, mark]) => {
            const panel = chatlabPanel(path);
            panel.content.widgets[i].node.setAttribute("data-chatlab-test", mark);
            panel.content.scrollToItem(i, "center");
        }""", [notebook.path, index, mark])
    cell = notebook.page.locator(f'[data-chatlab-test="{mark}"]')
    await cell.scroll_into_view_if_needed()
    return cell


def window_name(window: Locator) -> Locator:
    return window.locator(".chatlab-name")


def message_in(window: Locator, text: str) -> Locator:
    """The messages whose text is ``text`` in a window's list."""
    return window.locator(".chatlab-msg").filter(has=window.page.locator(
        ".chatlab-text", has_text=re.compile(f"^{re.escape(text)}$")))


async def type_and_enter(window: Locator, text: str) -> Locator:
    """Type ``text`` into a window's box and press Enter, as a learner does."""
    entry = window.locator(".chatlab-input")
    await expect(entry).to_be_enabled()
    await entry.click()
    await entry.press_sequentially(text, delay=5)
    await entry.press("Enter")
    return entry


async def your_turn_prompts(notebook: LabNotebook) -> list[tuple[int, int, bool]]:
    """Each "Your turn" prompt's windows: ``(prompt, cell, run)``, where
    ``cell`` is the code cell right after the prompt, to run (``run``);
    or else (no such cell) the last cell above with chat windows, which the
    prompt can then only mean."""
    cells = await notebook.cells()
    result = []
    for i, cell in enumerate(cells):
        found = YOUR_TURN.search(cell["source"]) if cell["type"] == "markdown" else None
        if found is None:
            continue
        # The prompt ends its cell (no new section after it) and a code cell follows.
        last = not re.search(r"^#", cell["source"][found.start():], re.MULTILINE)
        if last and i + 1 < len(cells) and cells[i + 1]["type"] == "code":
            assert "run the cell below" in cell["source"].lower(), (
                f"{notebook.path}: the \"Your turn\" prompt in cell {i} does not say to run "
                f"the cell below it:\n{cell['source']}")
            result.append((i, i + 1, True))
        else:
            above = [j for j in range(i) if cells[j]["type"] == "code"
                     and "ChatWidget(" in cells[j]["source"]]
            assert above, f"{notebook.path}: no chat windows for the prompt in cell {i}"
            result.append((i, above[-1], False))
    assert result, f"{notebook.path} has no \"Your turn\" prompt"
    return result


@pytest_asyncio.fixture(loop_scope="module")
async def page(chromium: Browser) -> AsyncIterator[Page]:
    context = await chromium.new_context(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        # The lesson's kernel goes with its page.
        await page.evaluate("""() => {
            const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            return panel && panel.sessionContext ? panel.sessionContext.shutdown() : null;
        }""")
        await context.close()
    assert errors == [], f"uncaught JavaScript errors in the Lab: {errors}"


# -- the test ----------------------------------------------------------------------------


@pytest.mark.parametrize("lesson", LESSONS, ids=[name[:2] for name in LESSONS])
async def test_your_turn_after_run_all_opens_live_windows(
    lab: JupyterLab, page: Page, lesson: str
) -> None:
    notebook = LabNotebook(page, lesson)
    await notebook.open(lab)
    cells = await notebook.cells()
    code = [i for i, cell in enumerate(cells) if cell["type"] == "code"]
    assert "chatlab.shutdown()" in cells[code[-1]]["source"], "the last cell does not stop the chat"
    prompts = await your_turn_prompts(notebook)

    # Run All, from a lesson with no outputs yet: the last cell stops the chat.
    await notebook.clear_outputs()
    await notebook.run(code, command="notebook:run-all-cells", timeout=120)
    await assert_no_errors(notebook)

    for number, (prompt, index, run) in enumerate(prompts):
        if run:
            await run_cell(notebook, index)
        await assert_no_errors(notebook)
        outputs = await notebook.outputs(index)
        assert not [o for o in outputs if o.get("name") == "stderr"], outputs
        cell = await cell_locator(notebook, index, f"turn-{number}")
        windows = cell.locator(".chatlab-chat")
        await expect(windows.nth(1)).to_be_visible()
        count = await windows.count()
        for i in range(count):
            state = windows.nth(i).locator(".chatlab-state")
            notice = windows.nth(i).locator(".chatlab-notice")
            try:
                await expect(state).to_have_text("connected")
                await expect(windows.nth(i).locator(".chatlab-input")).to_be_enabled()
            except AssertionError as error:
                raise AssertionError(
                    f"{lesson}: a window for the \"Your turn\" prompt in cell {prompt} is "
                    f"{await state.text_content()!r}: {await notice.all_text_contents()}"
                ) from error
        mine, others = windows.nth(0), [windows.nth(i) for i in range(1, count)]
        name = (await window_name(mine).text_content() or "").strip()

        text = f"Hello from the learner, {lesson[:2]} prompt {number + 1}"
        entry = await type_and_enter(mine, text)
        await expect(entry).to_have_value("")  # the server has it
        await expect(message_in(mine, text)).to_have_count(1)
        for other in others:
            await expect(message_in(other, text)).to_have_count(1)
            await expect(message_in(other, text).locator(".chatlab-meta")).to_have_text(name)
        await expect(mine.locator(".chatlab-status")).to_have_text("")
        await screenshot(page, f"lesson-{lesson[:2]}-your-turn-{number + 1}", full_page=False)

        if lesson.startswith("06"):
            await offline_and_back(notebook, index, mine, others)
    await assert_no_errors(notebook)


async def offline_and_back(notebook: LabNotebook, index: int, mine: Locator,
                           others: list[Locator]) -> None:
    """Lesson 06's prompt goes on: the learner's client goes offline, the
    learner types in both windows, and the client comes back."""
    cells = await notebook.cells()
    prompt = "".join(cell["source"] for cell in cells[:index] if cell["type"] == "markdown"
                     and YOUR_TURN.search(cell["source"]))
    offline = re.search(r"`(await (\w+)\.go_offline\(\))`", prompt)
    online = re.search(r"`(await (\w+)\.go_online\(\))`", prompt)
    assert offline and online, f"lesson 06's prompt no longer says how to go offline:\n{prompt}"
    below = await run_new_cell(notebook, index, offline.group(1))
    await expect(mine.locator(".chatlab-state")).to_have_text("disconnected")
    away = "Typed while offline"
    await type_and_enter(mine, away)
    meanwhile = "Typed while you were away"
    entry = await type_and_enter(others[0], meanwhile)
    await expect(entry).to_have_value("")
    await run_new_cell(notebook, below, online.group(1))
    await expect(mine.locator(".chatlab-state")).to_have_text("connected")
    for window in (mine, *others):
        await expect(message_in(window, away)).to_have_count(1, timeout=20_000)
        await expect(message_in(window, meanwhile)).to_have_count(1)
    await expect(mine.locator(".chatlab-input")).to_have_value("")
