"""Showing chatlab's own code in a lesson, read from the module that runs.

A lesson that explains how the chat works quotes its real handlers with
:func:`show_source`, so what a learner reads is what runs: a change to the
chat changes the lesson's output, and the lesson's stored output check
fails until the lesson is brought up to date.
"""

from __future__ import annotations

import inspect
import textwrap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from IPython.display import Markdown

__all__ = ["show_source"]


def show_source(*objects: Any) -> "Markdown":
    """The source of each function, method or class, as one Python code
    block that JupyterLab highlights."""
    from IPython.display import Markdown  # (IPython comes with ipywidgets)

    if not objects:
        raise TypeError("show_source() needs at least one function, method or class")
    parts = [textwrap.dedent(inspect.getsource(obj)).rstrip() for obj in objects]
    return Markdown("```python\n" + "\n\n".join(parts) + "\n```")
