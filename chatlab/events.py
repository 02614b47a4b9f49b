"""A timestamped log of the events a client sent and received."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

from .waiting import Changes

__all__ = ["EventLog", "LogEntry"]

Direction = Literal["in", "out"]


@dataclass(frozen=True)
class LogEntry:
    """One event: when (``time.time()``), which way, its name and data."""

    time: float
    direction: Direction
    event: str
    data: tuple[Any, ...]


class EventLog:
    """The newest ``limit`` events, with callbacks and awaitable waits.

    Counts are kept for every event ever recorded, so a wait for the third
    ``message`` works even after old entries have been dropped.
    """

    def __init__(self, limit: int = 1000) -> None:
        self.entries: collections.deque[LogEntry] = collections.deque(maxlen=limit)
        self.counts: collections.Counter[tuple[Direction, str]] = collections.Counter()
        self._changes = Changes()

    def record(self, direction: Direction, event: str, *data: Any) -> LogEntry:
        entry = LogEntry(time.time(), direction, event, data)
        self.entries.append(entry)
        self.counts[direction, event] += 1
        self._changes.notify(entry)
        return entry

    def subscribe(self, callback: Callable[[LogEntry], Any]) -> None:
        """Call ``callback(entry)`` after each new entry."""
        self._changes.subscribe(callback)

    def unsubscribe(self, callback: Callable[[LogEntry], Any]) -> None:
        self._changes.unsubscribe(callback)

    async def wait_for(
        self, event: str, *, direction: Direction = "in", count: int = 1, timeout: float = 5.0
    ) -> int:
        """Wait until ``event`` has been seen ``count`` times in all; return
        the count then."""
        verb = "received" if direction == "in" else "sent"
        return await self._changes.wait_until(
            lambda: self.counts[direction, event] >= count and self.counts[direction, event],
            timeout=timeout,
            what=f"{event!r} was {verb} {count} time(s)",
        )
