"""The retry policy's numbers, pinned: the defaults the README documents, each validation
boundary, the backoff curve, the decision at each edge, the circuit breaker's streak and the
stop message. Each assertion kills a small change to ``pd_hlr/retry.py``'s policy part that
would make a run pay for more attempts (or fewer) than documented (``tools/mutation.py
retry-policy``)."""

from __future__ import annotations

import pytest

from pd_hlr.errors import APIError, AuthenticationError, RateLimitError, TransportError
from pd_hlr.retry import KINDS, CircuitBreaker, Decision, Failure, RetryPolicy, _duration

RETRIED = next(k for k, v in KINDS.items() if v.retry and v.breaker)
NEVER = next(k for k, v in KINDS.items() if not v.retry)
UNCOUNTED = next(k for k, v in KINDS.items() if not v.breaker)


def test_the_documented_defaults() -> None:
    p = RetryPolicy()
    assert (p.max_retries, p.backoff_factor, p.backoff_max) == (5, 0.5, 30.0)
    assert (p.retry_after_max, p.breaker_threshold) == (300.0, 20)
    assert Decision("retry") == ("retry", 0.0, None)


@pytest.mark.parametrize(
    "ok",
    [{"max_retries": 0}, {"breaker_threshold": 1}, {"backoff_factor": 0}, {"backoff_max": 0.0}],
)
def test_the_smallest_valid_values_are_valid(ok) -> None:
    RetryPolicy(**ok)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"breaker_threshold": 0},
        {"breaker_threshold": 2.0},
        {"backoff_factor": -0.1},
        {"backoff_max": "30"},
        {"retry_after_max": -1},
    ],
)
def test_invalid_values_are_refused(bad) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        RetryPolicy(**bad)


def test_backoff_doubles_from_the_factor_up_to_the_cap_with_full_jitter() -> None:
    top = RetryPolicy(backoff_factor=0.5, backoff_max=30.0, random=lambda: 1.0)
    assert [top.backoff(n) for n in (1, 2, 3, 4, 7, 8, 1000)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        30.0,
        30.0,
        30.0,
    ]
    assert RetryPolicy(random=lambda: 0.25).backoff(3) == 0.5


def test_decide_at_each_edge() -> None:
    p = RetryPolicy(max_retries=2, retry_after_max=10.0, random=lambda: 1.0)
    lost = Failure(RETRIED, TransportError("lost"))
    assert p.decide(lost, 1) == Decision("retry", 0.5)
    assert p.decide(lost, 2) == Decision("retry", 1.0)
    assert p.decide(lost, 3) == Decision("give_up", error=lost.error)
    never = Failure(NEVER, APIError("no"))
    assert p.decide(never, 1) == Decision("give_up", error=never.error)
    slow = Failure("throttled", RateLimitError("slow"), retry_after=10.0)
    assert p.decide(slow, 1) == Decision("retry", 10.0)  # exactly the cap: honoured
    slower = Failure("throttled", RateLimitError("slow"), retry_after=10.5)
    stop = p.decide(slower, 1)
    assert stop.action == "stop" and stop.error.resume_after == 10.5
    assert "retry_after_max=10s" in str(stop.error) and "10.5 s" in str(stop.error)
    assert stop.error.kind == "throttled"
    never_late = Failure(NEVER, APIError("no"), retry_after=99.0)
    assert p.decide(never_late, 1).action == "give_up"  # not retried: no pause to honour
    auth = Failure(NEVER, AuthenticationError("who", status=401))
    assert p.decide(auth, 1) == Decision("stop", error=auth.error)


def test_the_stop_message_names_the_wait_in_a_readable_unit() -> None:
    assert [_duration(s) for s in (5, 119, 120, 7199, 7200, 86400)] == [
        "5 s",
        "119 s",
        "2 min",
        "120 min",
        "2.0 h",
        "24.0 h",
    ]


def test_the_breaker_counts_one_kind_in_a_row() -> None:
    b = RetryPolicy(breaker_threshold=3).breaker()
    assert isinstance(b, CircuitBreaker) and b.threshold == 3
    lost = Failure(RETRIED, TransportError("lost", status=None))
    assert [b.record(lost) is None for _ in range(2)] == [True, True]
    err = b.record(lost)
    assert err is not None and err.kind == RETRIED and "3 attempts in a row" in str(err)
    assert b.record(lost) is not None  # and each time after
    b.success()
    assert b.record(lost) is None and b.record(lost) is None
    other = next(k for k, v in KINDS.items() if v.breaker and k != RETRIED)
    assert b.record(Failure(other, TransportError("x"))) is None  # a new streak of another kind
    assert b.record(lost) is None and b.record(lost) is None  # started again at one
    assert b.record(Failure(UNCOUNTED, RateLimitError("slow"))) is None  # resets
    assert b.record(lost) is None and b.record(lost) is None
    assert b.record(lost) is not None
    one = CircuitBreaker(1)
    assert one.record(lost) is not None


def test_a_failure_carries_its_kind_and_its_kind_s_flags() -> None:
    f = Failure(NEVER, APIError("no"))
    assert f.error.kind == NEVER and f.retry is False
    assert f.possibly_charged is KINDS[NEVER].possibly_charged
    assert Failure(RETRIED, TransportError("t")).retry is True


def test_what_is_compared_and_shown() -> None:
    """A failure's cause and a policy's jitter source are neither compared nor shown: two
    failures of one kind and error are equal whatever raised them, and a repr stays short."""
    err = TransportError("t")
    one = Failure(RETRIED, err, cause=OSError("a"))
    assert one == Failure(RETRIED, err, cause=ValueError("b"))
    assert "cause" not in repr(one) and "OSError" not in repr(one)
    assert RetryPolicy(random=lambda: 0.1) == RetryPolicy(random=lambda: 0.9)
    assert "random" not in repr(RetryPolicy())


def test_the_backoff_exponent_stops_at_sixty_so_no_cap_overflows() -> None:
    uncapped = RetryPolicy(backoff_max=float("inf"), random=lambda: 1.0)
    assert uncapped.backoff(61) == uncapped.backoff(10**6) == 0.5 * 2.0**60


def test_the_stop_says_when_to_resume_in_the_future() -> None:
    import re
    from datetime import UTC, datetime, timedelta

    day = Failure("throttled", RateLimitError("slow", status=429), retry_after=86400.0)
    err = RetryPolicy().decide(day, 1).error
    when = re.search(r"Resume after (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", str(err))
    assert when is not None and "HTTP 429" in str(err)
    resume = datetime.strptime(when.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert resume > datetime.now(UTC) + timedelta(hours=23)
    assert _duration(720000) == "200.0 h"
