"""Starting an event's handler at once, in the task that read the event.

python-socketio starts a task for every event a client sends, and the
handler runs only on the event loop's next turn. Most of the chat's
handlers never wait for anything (a message in memory is stored, sent and
acknowledged without a pause), so the task bought nothing but its own
cost and a turn of the loop before every reply. With :func:`install`, the
handler starts where the event was read and runs until it first has to
wait; only then does the rest of it become a task, the server's as
before (tracked, and stopped with the server). A handler that never waits
has no task at all. This is what Python 3.12's eager tasks do; it is
written out here so that it works from 3.10 on.

Order is unchanged: each event's handler starts before the next event of
its connection is read, as it did with tasks started in turn.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable, Coroutine, Generator

import socketio

from .. import _compat

__all__ = ["install", "start_eagerly"]


class _Finished:
    """What python-socketio is given for the task of a handler that has
    already finished: it only adds a done callback (called at once)."""

    __slots__ = ()

    def add_done_callback(self, callback: Callable[[Any], Any], **_: Any) -> None:
        callback(self)

    def done(self) -> bool:
        return True

    def cancelled(self) -> bool:
        return False

    def cancel(self, *_: Any) -> bool:
        return False

    def result(self) -> None:
        return None

    def exception(self) -> None:
        return None


FINISHED = _Finished()


class _Yield:
    """Awaiting it hands ``value`` (what a coroutine yielded: the future it
    waits on, or None for a bare turn) to the task running the awaiter."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.value)


async def _carry_on(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    """Go on running ``coroutine``, which was started outside any task and
    is waiting on ``waiting_on``: what the task sends or throws in (the
    result, a cancellation) goes to it."""
    send, throw = coroutine.send, coroutine.throw
    while True:
        try:
            sent = await _Yield(waiting_on)
        except BaseException as exc:  # noqa: BLE001 - every one is the coroutine's to handle
            try:
                waiting_on = throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                waiting_on = send(sent)
            except StopIteration as done:
                return done.value


async def _failed(error: BaseException) -> None:
    raise error


def start_eagerly(coroutine: Coroutine[Any, Any, Any], start_task: Callable[..., Any],
                  carry_on: Callable[..., Any] = _carry_on,
                  failed: Callable[..., Any] = _failed) -> Any:
    """Run ``coroutine`` until it first waits, then in a task made with
    ``start_task(carry_on, coroutine, what_it_waits_on)``; :data:`FINISHED`
    if it never waited."""
    try:
        waiting_on = coroutine.send(None)
    except StopIteration:
        return FINISHED
    except asyncio.CancelledError:
        return FINISHED  # as a cancelled task: nothing to report
    except Exception as error:  # noqa: BLE001 - reported as its task's would be
        return start_task(failed, error)
    return start_task(carry_on, coroutine, waiting_on)


def install(sio: socketio.AsyncServer) -> bool:
    """Start ``sio``'s event handlers eagerly from now on; False (a task
    for each, as python-socketio does) where it has no seam for it."""
    handling = getattr(sio, "_handle_event_internal", None)
    # The tasks are named as python-socketio's were: a background error's
    # report gives the name of what its task ran.
    carry_on, failed = ((functools.update_wrapper(functools.partial(f), handling)
                         for f in (_carry_on, _failed)) if handling is not None
                        else (_carry_on, _failed))

    def start(coroutine: Coroutine[Any, Any, Any], start_task: Callable[..., Any]) -> Any:
        return start_eagerly(coroutine, start_task, carry_on, failed)

    return _compat.start_event_handlers_with(sio, start)
