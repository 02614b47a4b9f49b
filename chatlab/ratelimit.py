"""How fast one connection may send events: a token bucket.

Each connection has a bucket holding up to ``burst`` tokens, refilled at
``rate`` tokens a second. An event takes one token; with none left it is
refused, and the bucket says how long until the next token. A short burst
(a paste, a reconnecting page) passes; a sustained flood does not.
"""

from __future__ import annotations

import time
from typing import Callable

__all__ = ["TokenBucket", "Unlimited", "bucket_for"]


class TokenBucket:
    """``rate`` events a second on average, up to ``burst`` at once.

    :param clock: seconds from a monotonic clock; given in tests that need
        to step time exactly.
    """

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst >= 1, not {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def take(self) -> bool:
        """Take a token if there is one; ``False`` means over the limit."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next token."""
        self._refill()
        return max(0.0, (1 - self._tokens) / self.rate)


class Unlimited:
    """A bucket that never runs out: no rate limit at all."""

    def take(self) -> bool:
        return True

    def retry_after(self) -> float:
        return 0.0


def bucket_for(rate: float, burst: int) -> TokenBucket | Unlimited:
    """A bucket for one connection; a ``rate`` of 0 means no limit."""
    return Unlimited() if rate == 0 else TokenBucket(rate, burst)
