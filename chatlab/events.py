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
    """One event: when (``time.time()``), which way, its name, its data
    and the namespace it travelled on (``"/"``, the default one, unless the
    client connected to others)."""

    time: float
    direction: Direction
    event: str
    data: tuple[Any, ...]
    namespace: str = "/"


class EventLog:
    """The newest ``limit`` events, with callbacks and awaitable waits.

    Counts are kept for every event ever recorded, so a wait for the third
    ``message`` works even after old entries have been dropped: ``counts``
    by direction and event name over all namespaces, ``namespace_counts``
    by direction, event name and namespace.
    """

    def __init__(self, limit: int = 1000) -> None:
        self.entries: collections.deque[LogEntry] = collections.deque(maxlen=limit)
        self.counts: collections.Counter[tuple[Direction, str]] = collections.Counter()
        self.namespace_counts: collections.Counter[tuple[Direction, str, str]] = (
            collections.Counter())
        self._changes = Changes()

    def record(self, direction: Direction, event: str, *data: Any,
               namespace: str = "/") -> LogEntry:
        """Add an event sent (``"out"``) or received (``"in"``) on
        ``namespace``, with its arguments as ``data``."""
        entry = LogEntry(time.time(), direction, event, data, namespace)
        self.entries.append(entry)
        self.counts[direction, event] += 1
        self.namespace_counts[direction, event, namespace] += 1
        self._changes.notify(entry)
        return entry

    def count(self, event: str, *, direction: Direction = "in",
              namespace: str | None = None) -> int:
        """How often ``event`` was seen in all, on ``namespace`` or (None)
        on any namespace."""
        if namespace is None:
            return self.counts[direction, event]
        return self.namespace_counts[direction, event, namespace]

    def subscribe(self, callback: Callable[[LogEntry], Any]) -> None:
        """Call ``callback(entry)`` after each new entry."""
        self._changes.subscribe(callback)

    def unsubscribe(self, callback: Callable[[LogEntry], Any]) -> None:
        self._changes.unsubscribe(callback)

    async def wait_for(
        self, event: str, *, direction: Direction = "in", count: int = 1, timeout: float = 5.0,
        namespace: str | None = None,
    ) -> int:
        """Wait until ``event`` has been seen ``count`` times in all (on
        ``namespace`` only, if given); return the count then."""
        verb = "received" if direction == "in" else "sent"
        where = "" if namespace is None else f" on {namespace!r}"

        def seen() -> int | bool:
            seen_so_far = self.count(event, direction=direction, namespace=namespace)
            return seen_so_far >= count and seen_so_far

        return await self._changes.wait_until(
            seen, timeout=timeout, what=f"{event!r} was {verb}{where} {count} time(s)")
