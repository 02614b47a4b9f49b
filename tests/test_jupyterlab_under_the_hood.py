"""Lesson 09 end to end, in a real browser on a real JupyterLab set up like
a JupyterHub (see tests/lab.py): Run All gives no error and nothing on
stderr, the wire log widget shows the connection's rows, the Admin UI's
link goes through the hub's proxy, and the last cell stops it all.

The notebooks are copied to a temporary directory first: nothing here
changes the repository's notebooks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

import browser as shared
from browser import ARTIFACTS, screenshot
from lab import BASE_URL, LAB_HOST, JupyterLab, LabNotebook, chromium_for_lab, lab_on_a_copy

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LESSON = "09-under-the-hood.ipynb"
ADMIN_LINK = re.compile(re.escape(BASE_URL) + r"proxy/\d+/admin-ui/")

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(150)]


@pytest.fixture(autouse=True)
def no_tasks_left() -> None:
    """Overrides conftest's check: the lesson runs in the Lab's kernel here."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    shared.require_chromium()
    with lab_on_a_copy(NOTEBOOKS, tmp_path_factory.mktemp("jupyterlab-09"),
                       ARTIFACTS / "jupyterlab-09.log") as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium(lab: JupyterLab) -> AsyncIterator[Browser]:
    async with chromium_for_lab() as launched:
        yield launched


async def test_run_all_shows_the_wire_log_and_stops_cleanly(
        lab: JupyterLab, chromium: Browser) -> None:
    context = await chromium.new_context(viewport={"width": 1400, "height": 1000})
    lab_page = await context.new_page()
    notebook = LabNotebook(lab_page, LESSON)
    errors: list[str] = []
    lab_page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        await notebook.open(lab, host=LAB_HOST)
        cells = await notebook.cells()
        code = [i for i, cell in enumerate(cells) if cell["type"] == "code"]
        last = code[-1]
        assert "chatlab.shutdown()" in cells[last]["source"]
        await notebook.clear_outputs()
        await notebook.run(code[:-1], command="notebook:run-all-above", active_cell=last)
        for index in code[:-1]:
            for output in await notebook.outputs(index):
                assert output.get("output_type") != "error", f"error in cell {index}: {output}"
                assert output.get("name") != "stderr", f"stderr from cell {index}: {output}"
        said = " ".join([str(await notebook.outputs(index)) for index in code])
        assert "✓ passed:" in said and "not tried yet" in said
        assert ADMIN_LINK.search(said), "the Admin UI's link does not go through the proxy"

        # The wire log widget, live in the Lab, shows the connection's rows.
        rows = lab_page.locator(".jp-OutputArea pre").filter(has_text="upgrade")
        await expect(rows.first).to_be_visible()
        await expect(rows.first).to_contain_text("websocket")
        await screenshot(lab_page, "jupyterlab-09-wire-log")

        await notebook.run([last], command="notebook:run-cell", active_cell=last)
        final = "".join(o.get("text", "") for o in await notebook.outputs(last))
        assert final == "Servers still running: []\n"
        assert errors == [], errors
    finally:
        await context.close()
