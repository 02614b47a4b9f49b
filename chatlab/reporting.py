"""Handler errors, reported under the notebook cell that was running.

A handler runs in a background task: whatever it prints, or a log line
about it, lands under the cell that started the server, or nowhere once
that cell has finished. In IPython chatlab instead prints each new handler
error as one line on stderr at the end of the cell during which it happened
(or, for one that happens between cells, the next cell run). The traceback
stays in ``server.errors``.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["report_in_cell"]

_pending: list[str] = []
_hooked: set[int] = set()  # the IPython shells whose post_run_cell we joined


def _shell() -> Any:
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get() if get else None


def report_in_cell(line: str) -> bool:
    """Print ``line`` on stderr at the end of the running cell; return False
    (doing nothing) outside IPython."""
    shell = _shell()
    if shell is None:
        return False
    if id(shell) not in _hooked:
        shell.events.register("post_run_cell", _flush)
        _hooked.add(id(shell))
    _pending.append(line)
    return True


def _flush(result: Any = None) -> None:
    while _pending:
        print(_pending.pop(0), file=sys.stderr)
