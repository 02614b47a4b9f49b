"""How fast a client may go: token buckets, and what they decide.

Each connection has a bucket holding up to ``burst`` tokens, refilled at
``rate`` tokens a second. An event takes one token; with none left it is
refused, and the bucket says how long until the next token. A short burst
(a paste, a reconnecting page) passes; a sustained flood does not.

:class:`Allowance` is what the chat server keeps per connection: the bucket
of events, and a second one of refusals, so that a refusal is told once per
wait and a client that goes on regardless is closed (see its docstring for
the numbers). :class:`Lockout` slows down an address that keeps sending
wrong tokens.
"""

from __future__ import annotations

import enum
import math
import time
from collections import OrderedDict
from typing import Callable

__all__ = [
    "Allowance", "TokenBucket", "Unlimited", "Verdict", "Lockout", "allowance_for",
    "bucket_for",
]


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
    """A bucket, or an allowance, that never runs out: no rate limit at all."""

    closed = False

    def take(self) -> bool:
        return True

    def judge(self) -> Verdict:
        return Verdict.PASS

    def retry_after(self) -> float:
        return 0.0


def bucket_for(rate: float, burst: int) -> TokenBucket | Unlimited:
    """A bucket for one connection; a ``rate`` of 0 means no limit."""
    return Unlimited() if rate == 0 else TokenBucket(rate, burst)


def allowance_for(rate: float, burst: int) -> Allowance | Unlimited:
    """An :class:`Allowance` for one connection; a ``rate`` of 0 means no limit."""
    return Unlimited() if rate == 0 else Allowance(rate, burst)


class Verdict(enum.Enum):
    """What becomes of one event (see :class:`Allowance`)."""

    PASS = "pass"  # within the limit: handled as usual
    REFUSE = "refuse"  # over it: the sender is told when to try again
    DROP = "drop"  # over it again before then: dropped, unanswered
    CLOSE = "close"  # over it far beyond the refusals allowed: the connection closes


def _hundredths_up(seconds: float) -> float:
    """``seconds`` rounded up to the hundredth (at least 0.01): waiting
    what a refusal says is always long enough."""
    return max(math.ceil(round(seconds * 100, 6)) / 100, 0.01)


class Allowance:
    """One connection's rate limit: ``rate`` events a second, in bursts of
    up to ``burst``, and what happens beyond it.

    - An event within the limit passes (:attr:`Verdict.PASS`).
    - The first event over it is refused, and the sender is told to try
      again in :meth:`retry_after` seconds, the time until the next token
      (:attr:`Verdict.REFUSE`). Until then, further events are dropped
      unanswered (:attr:`Verdict.DROP`): one refusal per wait, however
      many events arrive.
    - Refusals have a bucket of their own, the same size: ``rate`` a
      second, ``burst`` at once. A client that goes on sending after being
      told, beyond that, is closed (:attr:`Verdict.CLOSE`, and CLOSE from
      then on). So a connection may send at most twice its limit: by
      default the 40 events of a burst, 40 refused, and the 81st closes it.

    :param clock: seconds from a monotonic clock; given in tests that need
        to step time exactly.
    """

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.events = TokenBucket(rate, burst, clock=clock)
        self.refusals = TokenBucket(rate, burst, clock=clock)
        self._clock = clock
        self._told_until = -math.inf  # the end of the wait the last refusal told
        self._wait = 0.0
        self.closed = False

    def judge(self) -> Verdict:
        """Take one event, and say what becomes of it."""
        if self.closed:
            return Verdict.CLOSE
        if self.events.take():
            return Verdict.PASS
        if not self.refusals.take():
            self.closed = True
            return Verdict.CLOSE
        now = self._clock()
        if now < self._told_until:
            return Verdict.DROP
        self._wait = _hundredths_up(self.events.retry_after())
        self._told_until = now + self._wait
        return Verdict.REFUSE

    def retry_after(self) -> float:
        """Seconds the last refusal told the sender to wait, rounded up to
        the hundredth; events sent within them are dropped."""
        return self._wait


class Lockout:
    """Slows down an address that keeps doing what it should not: sending
    wrong tokens, or flooding until its connection is closed.

    The first ``free`` failures from an address cost nothing. From the
    ``free``-th on, each failure locks the address out for ``first``
    seconds, doubled with each further one, up to ``longest``: within the
    lockout its connects are refused without further ado. With the
    defaults (for tokens), the 5th wrong token locks it for 1 s, the 6th
    for 2 s, ..., the 13th and later for 5 minutes: a dozen guesses in the
    first ten minutes, then one every five minutes.

    A success forgets the address (:meth:`right`), and so does ``forget``
    seconds without a failure from it. At most ``addresses`` are kept;
    beyond that the one whose last failure is the oldest is forgotten.

    :param clock: as for :class:`TokenBucket`.
    """

    def __init__(
        self, *, free: int = 5, first: float = 1.0, longest: float = 300.0,
        forget: float = 900.0, addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if free < 1 or first <= 0 or longest < first or forget < longest or addresses < 1:
            raise ValueError("Lockout needs free >= 1, 0 < first <= longest <= forget "
                             "and addresses >= 1")
        self.free = free
        self.first = first
        self.longest = longest
        self.forget = forget
        self.addresses = addresses
        self._clock = clock
        # address -> (wrong tokens in a row, when the last came, locked until),
        # oldest last wrong token first.
        self._seen: OrderedDict[str, tuple[int, float, float]] = OrderedDict()

    def locked_for(self, address: str) -> float:
        """Seconds until ``address`` may try again; 0 when it may now."""
        entry = self._current(address)
        return 0.0 if entry is None else max(0.0, entry[2] - self._clock())

    def wrong(self, address: str) -> None:
        """``address`` failed once more (sent a wrong token, say)."""
        now = self._clock()
        entry = self._current(address)
        count = (entry[0] if entry is not None else 0) + 1
        locked_until = now
        if count >= self.free:
            locked_until = now + min(self.longest, self.first * 2 ** min(count - self.free, 64))
        self._seen.pop(address, None)
        self._seen[address] = (count, now, locked_until)
        self._prune(now)

    def right(self, address: str) -> None:
        """``address`` succeeded (sent the right token): its count starts again."""
        self._seen.pop(address, None)

    def __len__(self) -> int:
        return len(self._seen)

    def _current(self, address: str) -> tuple[int, float, float] | None:
        entry = self._seen.get(address)
        if entry is not None and self._clock() - entry[1] >= self.forget:
            del self._seen[address]
            return None
        return entry

    def _prune(self, now: float) -> None:
        while self._seen:
            address, (_, last, _) = next(iter(self._seen.items()))
            if len(self._seen) <= self.addresses and now - last < self.forget:
                break
            del self._seen[address]
