"""Awaiting a condition on state that socket handlers change: no sleeps.

Whatever owns the state calls :meth:`Changes.notify` after each change;
subscribers (the widgets) are called, waiters re-check their predicate, and
give up with a clear :class:`WaitTimeout` when their time runs out.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, TypeVar

__all__ = ["Changes", "WaitTimeout"]

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """A wait ran out of time before its condition came true."""


class Changes:
    """Tells subscribers and waiters that some state changed."""

    def __init__(self) -> None:
        self._waiters: list[tuple[Callable[[], object], asyncio.Future[object]]] = []
        self._callbacks: list[Callable[..., Any]] = []

    def subscribe(self, callback: Callable[..., Any]) -> None:
        """Call ``callback`` with notify()'s arguments after each change."""
        self._callbacks.append(callback)

    def unsubscribe(self, callback: Callable[..., Any]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def notify(self, *args: Any) -> None:
        """Call the subscribers with ``args``, then re-check every waiter's
        condition (call after each change)."""
        for callback in list(self._callbacks):
            callback(*args)
        for predicate, future in list(self._waiters):
            if future.done():
                continue
            try:
                value = predicate()
            except Exception as exc:  # a broken predicate fails its waiter only
                future.set_exception(exc)
                continue
            if value:
                future.set_result(value)

    async def wait_until(
        self, predicate: Callable[[], T], *, timeout: float = 5.0, what: str = "the condition holds"
    ) -> T:
        """Return ``predicate()``'s first truthy value, checking now and after
        each change; raise :class:`WaitTimeout` after ``timeout`` seconds."""
        value = predicate()
        if value:
            return value
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            # asyncio.wait, not wait_for: on Python 3.11 wait_for swallows a
            # cancellation (a kernel interrupt) that comes as the future ends.
            await asyncio.wait((future,), timeout=timeout)
        finally:
            self._waiters.remove(entry)
        if not future.done():
            future.cancel()
            raise WaitTimeout(f"timed out after {timeout:g} s waiting until {what}")
        return future.result()  # type: ignore[return-value]
