"""chatlab.ratelimit: a token bucket on a clock the test steps by hand, so
every refill and every retry_after is an exact number."""

from __future__ import annotations

import pytest

from chatlab.ratelimit import TokenBucket, Unlimited, bucket_for

pytestmark = pytest.mark.unit


class FakeClock:
    """Seconds that pass only when the test says so. (Steps are binary
    fractions, so the bucket's arithmetic on them is exact.)"""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def takes(bucket: TokenBucket | Unlimited, tries: int) -> int:
    """How many of ``tries`` events in a row get through."""
    return sum(bucket.take() for _ in range(tries))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_full_bucket_lets_a_burst_through_then_refuses(clock):
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(5)] == [True, True, True, False, False]


def test_a_new_bucket_needs_no_waiting(clock):
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert bucket.retry_after() == 0.0
    assert takes(bucket, 2) == 2
    assert bucket.retry_after() == 0.0, "one token is still there"


def test_retry_after_is_the_time_to_the_next_token(clock):
    bucket = TokenBucket(rate=4, burst=2, clock=clock)
    assert takes(bucket, 2) == 2
    assert bucket.retry_after() == 0.25
    clock.advance(0.125)
    assert bucket.retry_after() == 0.125
    assert not bucket.take()
    assert bucket.retry_after() == 0.125, "a refused event costs nothing"
    clock.advance(0.125)
    assert bucket.retry_after() == 0.0
    assert bucket.take()
    assert bucket.retry_after() == 0.25


def test_asking_retry_after_takes_no_token(clock):
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    for _ in range(3):
        assert bucket.retry_after() == 0.0
    assert bucket.take()


def test_a_slow_rate_waits_longer_than_a_second(clock):
    bucket = TokenBucket(rate=0.5, burst=1, clock=clock)
    assert bucket.take()
    assert bucket.retry_after() == 2.0
    clock.advance(1.5)
    assert not bucket.take()
    assert bucket.retry_after() == 0.5
    clock.advance(0.5)
    assert bucket.take()


def test_tokens_come_back_at_the_rate(clock):
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert takes(bucket, 5) == 5
    clock.advance(0.25)  # 2.5 tokens: two events, half a token left
    assert takes(bucket, 5) == 2
    assert bucket.retry_after() == 0.05
    clock.advance(0.0625)  # 0.625 more: 1.125
    assert takes(bucket, 5) == 1


def test_a_sustained_flood_gets_the_rate_and_no_more(clock):
    bucket = TokenBucket(rate=8, burst=4, clock=clock)
    passed = 0
    for _ in range(64):  # eight seconds, 64 events a second
        passed += takes(bucket, 8)
        clock.advance(0.125)
    assert passed == 4 + 63  # the burst, then one in each later eighth of a second


def test_a_long_quiet_spell_fills_the_bucket_to_the_burst_and_no_further(clock):
    bucket = TokenBucket(rate=100, burst=3, clock=clock)
    assert takes(bucket, 3) == 3
    clock.advance(3600)
    assert takes(bucket, 10) == 3
    assert bucket.retry_after() == 0.01


def test_a_clock_that_has_not_moved_adds_nothing(clock):
    bucket = TokenBucket(rate=1000, burst=1, clock=clock)
    assert bucket.take()
    assert takes(bucket, 100) == 0


def test_the_burst_and_rate_are_what_was_asked(clock):
    bucket = TokenBucket(rate=2.5, burst=7, clock=clock)
    assert (bucket.rate, bucket.burst) == (2.5, 7)


@pytest.mark.parametrize("rate,burst", [(0, 1), (-1, 5), (1, 0), (1, -3), (0, 0)])
def test_a_bucket_needs_a_positive_rate_and_burst(rate, burst):
    with pytest.raises(ValueError, match=rf"rate > 0 and burst >= 1, not {rate}, {burst}"):
        TokenBucket(rate, burst)


def test_rate_0_means_no_limit():
    bucket = bucket_for(0, 5)
    assert isinstance(bucket, Unlimited)
    assert takes(bucket, 10_000) == 10_000
    assert bucket.retry_after() == 0.0


def test_other_rates_get_a_token_bucket():
    bucket = bucket_for(3, 2)
    assert isinstance(bucket, TokenBucket)
    assert (bucket.rate, bucket.burst) == (3, 2)
    assert takes(bucket, 3) == 2
