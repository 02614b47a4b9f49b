"""What the lessons' text must say: the tutorial it is modelled on named,
nothing written for the kit's developers, what is used is taught, and a
"Resources and references" section in every lesson before its clean-up."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.unit

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]-*.ipynb"))
TITLE = ("Understanding Socket.IO: Building a simple real-time chat app with Node.js "
         "and Socket.IO")


def markdown(path: Path) -> list[str]:
    notebook = nbformat.read(path, as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]


def text(path: Path) -> str:
    # Lines joined, so that a phrase broken across lines is found.
    return re.sub(r"\s+", " ", "\n".join(markdown(path)))


def lesson(number: str) -> Path:
    [path] = [p for p in NOTEBOOKS if p.name.startswith(number)]
    return path


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_lesson_ends_with_resources_then_its_clean_up(path):
    notebook = nbformat.read(path, as_version=4)
    last = notebook.cells[-1]
    assert last.cell_type == "code" and "chatlab.shutdown()" in last.source
    headings = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "markdown"
                and "## Resources and references" in cell.source]
    assert len(headings) == 1
    resources = notebook.cells[headings[0]].source
    assert "## What's next" in "".join(c.source for c in notebook.cells[:headings[0] + 1])
    assert all(cell.cell_type == "markdown" for cell in notebook.cells[headings[0]:-1])
    assert "https://python-socketio.readthedocs.io/en/latest/" in resources
    assert "https://socket.io/docs/v4/" in resources


@pytest.mark.parametrize("number", ["04", "05"])
def test_the_model_tutorial_is_named_where_it_first_appears(number):
    said = text(lesson(number))
    first = said.find("model tutorial")
    named = said.find(TITLE)
    assert named != -1 and said.count(TITLE) <= 2
    assert first == -1 or named < first
    assert "2023" in said and "not the official Socket.IO tutorial" in said


def test_the_official_tutorial_is_kept_apart_from_the_model_one():
    said = text(lesson("06"))
    assert "https://socket.io/docs/v4/tutorial/introduction" in said
    assert "not the chat tutorial that lessons 04 and 05 compare with" in said


def test_no_text_for_the_kits_developers():
    assert "5.18" not in text(lesson("04"))
    assert "this version of python-socketio" not in text(lesson("04"))
    assert "bench" not in text(lesson("06"))


def test_several_arguments_are_taught_before_they_are_used():
    notebook = nbformat.read(lesson("06"), as_version=4)
    sources = [cell.source for cell in notebook.cells]
    taught = next(i for i, s in enumerate(sources) if "Several arguments in one event" in s)
    used = next(i for i, s in enumerate(sources)
                if s.startswith("async def send_with_retries"))
    assert taught < used
    assert "`socket.emit(\"message\", text, id)`" in sources[taught]
    assert "tuple" in sources[taught]


def test_bad_namespace_error_is_explained_where_it_appears():
    notebook = nbformat.read(lesson("06"), as_version=4)
    cells = notebook.cells
    first = next(i for i, c in enumerate(cells)
                 if c.cell_type == "code" and "BadNamespaceError" in c.source)
    before = re.sub(r"\s+", " ", cells[first - 1].source)
    assert "namespace" in before.replace("BadNamespaceError", "")
    assert "not connected" in before


def test_socket_data_is_mapped_to_the_session():
    said = text(lesson("01"))
    assert "socket.data" in said
    table = next(s for s in markdown(lesson("01")) if "| Node.js Socket.IO |" in s)
    row = next(line for line in table.splitlines() if "socket.data" in line)
    assert "save_session" in row


def test_scaling_out_teaches_what_the_adapters_do_and_do_not():
    said = text(lesson("10"))
    for taught in ("CPU", "memory", "connections", "restarts without downtime",
                   "sticky sessions", "hash $remote_addr consistent;", "AsyncRedisManager",
                   "@socket.io/redis-adapter", "@socket.io/redis-streams-adapter",
                   "connection state recovery", "SIGKILL", "8 seconds"):
        assert taught.lower() in said.lower(), taught
    sources = [cell.source for cell in nbformat.read(lesson("10"), as_version=4).cells]
    sticky = next(s for s in sources if "## Sticky sessions" in s)
    assert "sequenceDiagram" in sticky and "polling" in sticky


def test_namespaces_lesson_says_what_python_socketio_lacks_and_builds_on_06():
    said = text(lesson("08"))
    for taught in ("python-socketio has neither, and no chain with `next()`",
                   "python-socketio has no volatile flag", "Lesson 06 sent several arguments",
                   "`ConnectionRefusedError(message, data)`", "`@sio.on(\"*\")`",
                   "io.timeout(2000).emitWithAck", "attachments"):
        assert taught.lower() in said.lower(), taught
    cells = nbformat.read(lesson("08"), as_version=4).cells
    first = next(i for i, c in enumerate(cells)
                 if c.cell_type == "code" and "BadNamespaceError" in c.source)
    assert "BadNamespaceError" in cells[first - 1].source
    assert "not joined" in cells[first - 1].source or "never joined" in cells[first].source
