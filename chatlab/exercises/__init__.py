"""Checks for the lessons' exercises, one module per lesson.

A check takes what the learner wrote (a handler, a server), runs it for real
on 127.0.0.1 and tells plainly whether it is right: it prints a line starting
with ✅ when it is, raises :class:`ExerciseFailed` with what went wrong when it
is not, and prints a line starting with ⏭ when the exercise has not been
attempted yet (its stub still raises ``NotImplementedError``), so that
running a whole lesson top to bottom never stops at an untouched exercise.
"""

from __future__ import annotations

__all__ = ["ExerciseFailed", "NotAttempted", "passed", "not_attempted"]


class ExerciseFailed(AssertionError):
    """The learner's answer is wrong; the message says how."""


class NotAttempted(Exception):
    """The exercise's stub is untouched."""


def passed(what: str) -> None:
    print(f"✅ Correct: {what}")


def not_attempted(what: str) -> None:
    print(f"⏭ Not attempted yet: {what}. Write your answer above, then run this cell again.")
