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

from chatlab.cluster.local_redis import BINARY_VARIABLE
from conftest import NEEDS_REDIS_SERVER
from redis_support import require_redis_server

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
    if path.name in NEEDS_REDIS_SERVER:
        require_redis_server()
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


def test_without_redis_server_lesson_10_says_how_to_get_it_and_skips_the_rest(monkeypatch):
    # As if redis-server were not installed (the kernel inherits the variable).
    monkeypatch.setenv(BINARY_VARIABLE, "/nonexistent/redis-server")
    [path] = [p for p in NOTEBOOKS if p.name.startswith("10-")]
    notebook = nbformat.read(path, as_version=4)
    # Any error output would make execute() raise: no traceback anywhere.
    NotebookClient(notebook, timeout=60, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    first = next(i for i, cell in enumerate(code) if "start_for_lesson(" in cell.source)
    assert not any(stderr(cell) for cell in code)
    assert all(not cell.outputs for cell in code[:first])
    said = stdout(code[first])
    assert "redis-server is not installed here" in said
    assert "apt-get install redis-server" in said
    assert "conda install -c conda-forge redis-server" in said
    for cell in code[first + 1:-1]:
        assert stdout(cell).startswith("skipped: this cell needs redis-server"), cell.source
    assert stdout(code[-1]) == "Servers still running: []\n"


def stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(output.text for output in cell.get("outputs", [])
                   if output.get("name") == "stdout")


def stderr(cell: nbformat.NotebookNode) -> list[str]:
    return [output.text for output in cell.get("outputs", []) if output.get("name") == "stderr"]
