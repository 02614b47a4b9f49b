"""Checks for the lessons' exercises, one module per lesson.

A check takes what the learner wrote (a handler, a server), runs it for real
on 127.0.0.1 and tells plainly whether it is right: it prints a line starting
with ``✓ passed:`` when it is, raises :class:`ExerciseFailed` with what went
wrong when it is not, and prints a line starting with ``– not tried yet:``
when the exercise has not been attempted yet (its stub still raises
``NotImplementedError``), so that running a whole lesson top to bottom never
stops at an untouched exercise.

Each verdict starts with a word, and its mark (✓, – or ✗) is one that every
common font has: no emoji font is needed to read it.

In IPython and Jupyter, a failed check fails its cell like any error, but
shows one short block instead of a traceback through the checker's own code
(see :meth:`ExerciseFailed._render_traceback_`).
"""

from __future__ import annotations

import textwrap

__all__ = ["ExerciseFailed", "NotAttempted", "passed", "not_attempted"]

PASSED = "✓ passed"
NOT_TRIED = "– not tried yet"
FAILED = "✗ not passed yet"

# Said when a failure brings no hint of its own.
DEFAULT_HINT = ("go through the exercise's steps above once more, change your answer, "
                "and run its cell and this one again (a solution is in the collapsed "
                "cell below)")

WIDTH = 88


class ExerciseFailed(AssertionError):
    """The learner's answer is wrong.

    ``happened`` says what the check saw, ``hint`` what to change; the check
    run fills in ``exercise`` (its name) and ``expected`` (what a right answer
    does) when the failure does not say. ``str()`` is ``happened`` and the
    hint, as one sentence."""

    def __init__(self, happened: str, *, hint: str | None = None,
                 expected: str | None = None, exercise: str | None = None) -> None:
        self.happened = happened
        self.hint = hint
        self.expected = expected
        self.exercise = exercise
        super().__init__(happened if hint is None else f"{happened}: {hint}")

    def block(self) -> str:
        """The failure as the learner sees it: expected, happened, hint."""
        lines = [FAILED + (f": {self.exercise}" if self.exercise else "")]
        for label, text in (("expected", self.expected), ("happened", self.happened),
                            ("hint", self.hint or DEFAULT_HINT)):
            if text:
                lines += textwrap.wrap(
                    text, WIDTH, initial_indent=f"  {label + ':':<10}",
                    subsequent_indent=" " * 12, break_long_words=False,
                    break_on_hyphens=False)
        return "\n".join(lines)

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines in place of the traceback; the cell
        # still fails (Run All stops, nbval sees an error).
        return self.block().splitlines()


class NotAttempted(Exception):
    """The exercise's stub is untouched."""


def passed(what: str) -> None:
    print(f"{PASSED}: {what}")


def not_attempted(what: str) -> None:
    print(f"{NOT_TRIED}: {what}. Write your answer above, then run this cell again.")
