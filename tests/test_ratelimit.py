"""chatlab.ratelimit: token buckets, a connection's allowance and the
wrong-token lockout, on a clock the test steps by hand, so every refill,
every retry_after and every lockout is an exact number."""

from __future__ import annotations

import pytest

from chatlab.ratelimit import (
    Allowance, TokenBucket, Unlimited, Verdict, Lockout, allowance_for, bucket_for)

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


# -- Allowance: one refusal per wait, and closing a flood --------------------

PASS, REFUSE, DROP, CLOSE = Verdict.PASS, Verdict.REFUSE, Verdict.DROP, Verdict.CLOSE


def test_over_the_limit_the_first_event_is_refused_and_the_rest_dropped_until_the_wait_ends(clock):
    allowance = Allowance(rate=4, burst=3, clock=clock)
    assert [allowance.judge() for _ in range(5)] == [PASS, PASS, PASS, REFUSE, DROP]
    assert allowance.retry_after() == 0.25, "the time to the next token"
    clock.advance(0.125)
    assert allowance.judge() is DROP, "still within the wait it was told"
    clock.advance(0.125)
    assert allowance.judge() is PASS, "a client that waits as told gets through"
    assert allowance.judge() is REFUSE, "a new wait, told again"
    assert allowance.retry_after() == 0.25


def test_the_wait_told_is_rounded_up_to_the_hundredth(clock):
    allowance = Allowance(rate=3, burst=1, clock=clock)
    assert allowance.judge() is PASS
    assert allowance.judge() is REFUSE
    assert allowance.retry_after() == 0.34  # a third of a second, rounded up
    clock.advance(0.34)
    assert allowance.judge() is PASS


def test_a_flood_is_closed_after_as_many_refusals_as_the_limit_lets_through(clock):
    allowance = Allowance(rate=20, burst=40, clock=clock)
    verdicts = [allowance.judge() for _ in range(1000)]  # all at once
    assert verdicts[:40] == [PASS] * 40
    assert verdicts[40] is REFUSE
    assert verdicts[41:80] == [DROP] * 39
    assert verdicts[80:] == [CLOSE] * 920, "the 81st closes it, and it stays closed"
    assert allowance.closed
    clock.advance(3600)
    assert allowance.judge() is CLOSE


def test_twice_the_limit_is_never_closed(clock):
    allowance = Allowance(rate=8, burst=4, clock=clock)
    verdicts = []
    for _ in range(80):  # ten seconds, 16 events a second
        verdicts += [allowance.judge(), allowance.judge()]
        clock.advance(0.125)
    assert CLOSE not in verdicts
    assert verdicts.count(PASS) == 4 + 79, "the burst, then the rate"
    assert verdicts.count(REFUSE) >= 1


def test_refusals_come_back_at_the_rate_too(clock):
    allowance = Allowance(rate=2, burst=2, clock=clock)
    assert [allowance.judge() for _ in range(4)] == [PASS, PASS, REFUSE, DROP]
    clock.advance(1)  # two events' tokens, and two refusals' tokens
    assert [allowance.judge() for _ in range(5)] == [PASS, PASS, REFUSE, DROP, CLOSE]


def test_no_limit_lets_everything_pass():
    allowance = allowance_for(0, 5)
    assert isinstance(allowance, Unlimited)
    assert {allowance.judge() for _ in range(10_000)} == {PASS}
    assert isinstance(allowance_for(3, 2), Allowance)


# -- Lockout: slowing down a guesser --------------------------------------


def test_the_first_wrong_tokens_cost_nothing_then_the_lockout_doubles(clock):
    tokens = Lockout(clock=clock)
    for _ in range(4):
        tokens.wrong("10.0.0.1")
        assert tokens.locked_for("10.0.0.1") == 0
    lockouts = []
    for _ in range(12):
        tokens.wrong("10.0.0.1")
        lockouts.append(tokens.locked_for("10.0.0.1"))
        clock.advance(lockouts[-1])  # the guesser waits each lockout out
    assert lockouts == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]


def test_a_lockout_counts_down(clock):
    tokens = Lockout(free=1, first=8, clock=clock)
    tokens.wrong("a")
    clock.advance(2.5)
    assert tokens.locked_for("a") == 5.5
    clock.advance(5.5)
    assert tokens.locked_for("a") == 0


def test_other_addresses_are_not_affected(clock):
    tokens = Lockout(free=1, clock=clock)
    tokens.wrong("10.0.0.1")
    assert tokens.locked_for("10.0.0.1") == 1
    assert tokens.locked_for("10.0.0.2") == 0


def test_a_right_token_clears_the_count(clock):
    tokens = Lockout(free=2, clock=clock)
    tokens.wrong("a")
    tokens.right("a")
    tokens.wrong("a")
    assert tokens.locked_for("a") == 0, "one wrong token since the right one"
    assert len(tokens) == 1


def test_an_address_is_forgotten_after_a_quiet_spell(clock):
    tokens = Lockout(free=2, forget=900, clock=clock)
    tokens.wrong("a")
    clock.advance(900)
    tokens.wrong("a")
    assert tokens.locked_for("a") == 0, "the count started again"
    clock.advance(900)
    tokens.wrong("b")
    assert len(tokens) == 1, "a forgotten address is dropped"


def test_at_most_so_many_addresses_are_kept(clock):
    tokens = Lockout(free=1, addresses=3, clock=clock)
    for n in range(5):
        tokens.wrong(f"10.0.0.{n}")
        clock.advance(0.5)
    assert len(tokens) == 3
    assert tokens.locked_for("10.0.0.0") == 0, "the oldest is forgotten first"
    assert tokens.locked_for("10.0.0.4") == 0.5


@pytest.mark.parametrize("options", [
    {"free": 0}, {"first": 0}, {"first": 10, "longest": 5}, {"longest": 1000, "forget": 10},
    {"addresses": 0}])
def test_a_lockout_needs_sensible_numbers(options):
    with pytest.raises(ValueError, match="Lockout needs"):
        Lockout(**options)
