"""Each lesson runs alone on a fresh kernel and leaves nothing behind.

(nbval, run by `make test` on notebooks/, checks the stored outputs; this
checks independence: a kernel that ran no other lesson, and what is left in
it afterwards.)
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.e2e


NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))

BEFORE = """\
import asyncio as _asyncio
_tasks_before = set(_asyncio.all_tasks())"""

AFTER = """\
import chatlab as _chatlab
# ipykernel runs each cell in tasks of its own (this cell's among them)
_left = {t for t in _asyncio.all_tasks() - _tasks_before
         if "/ipykernel/" not in getattr(getattr(t.get_coro(), "cr_code", None), "co_filename", "")}
print("servers left:", sorted(_chatlab.running_servers()))
print("tasks left:", [t.get_coro().__qualname__ for t in _left])"""


def test_there_are_lessons():
    names = [path.stem for path in NOTEBOOKS]
    assert names[:7] == [
        "00-start-here", "01-connect-and-emit", "02-broadcast",
        "03-rooms", "04-disconnect", "05-build-the-chat", "06-delivery-guarantees"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_a_lesson_runs_alone_on_a_fresh_kernel_and_cleans_up(path: Path):
    stored = nbformat.read(path, as_version=4)
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(BEFORE))
    notebook.cells.append(nbformat.v4.new_code_cell(AFTER))
    NotebookClient(notebook, timeout=60, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    # stderr only where the lesson means it (a handler error shown on purpose)
    for number, (ran, kept) in enumerate(zip(notebook.cells[1:-1], stored.cells)):
        assert stderr(ran) == stderr(kept), f"{path.name}, cell {number}: {stderr(ran)}"
    # (the two lines may come as one output or two)
    printed = "".join(o.text for o in notebook.cells[-1].outputs if o.get("name") == "stdout")
    assert printed == "servers left: []\ntasks left: []\n"


def stderr(cell: nbformat.NotebookNode) -> list[str]:
    return [output.text for output in cell.get("outputs", []) if output.get("name") == "stderr"]
