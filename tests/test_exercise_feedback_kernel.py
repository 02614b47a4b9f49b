"""A failed check in a real Jupyter kernel: the cell fails, running the
notebook stops there, and the error shows one short block, not a traceback
through the checker's code."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from test_exercise_feedback import WRONG_ANSWER

pytestmark = pytest.mark.e2e


def test_a_failed_check_stops_the_notebook_with_one_block():
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(WRONG_ANSWER),
        nbformat.v4.new_code_cell("print('the next cell ran')"),
    ])
    client = NotebookClient(notebook, timeout=60, kernel_name="python3")
    with pytest.raises(CellExecutionError):
        client.execute()

    [error] = [o for o in notebook.cells[0].outputs if o.output_type == "error"]
    assert error.ename == "ExerciseFailed"
    shown = "\n".join(error.traceback)
    assert error.traceback[0] == "✗ not passed yet: the message rules"
    assert "Traceback" not in shown and "harness.py" not in shown
    assert "happened: Ann sent a message that is a number" in shown
    assert "refuse a message that is not a string" in shown
    assert not notebook.cells[1].outputs  # Run All stopped at the failure
