"""The rate limiter on the real clock (every other limiter test fakes time): ``acquire`` really
sleeps until its slot. Only lower bounds are asserted (a sleep never returns early), so a slow
machine cannot fail these tests."""

from __future__ import annotations

import time

import pytest

from pd_hlr import ratelimit
from pd_hlr.ratelimit import RateLimiter


def test_acquire_really_sleeps_until_its_slot() -> None:
    limiter = RateLimiter(20.0)  # slots 50 ms apart
    t0 = time.monotonic()
    waits = [limiter.acquire() for _ in range(3)]
    elapsed = time.monotonic() - t0
    assert waits[0] == 0.0 and waits[1] > 0 and waits[2] > 0
    # each wait is measured from when it was asked for, after the sleep before it
    assert elapsed >= waits[1] + waits[2]  # the third send left no earlier than its slot


def test_the_real_clock_is_monotonic_seconds() -> None:
    limiter = RateLimiter(1.0)
    before = time.monotonic()
    now = limiter._clock()
    assert before <= now <= time.monotonic()


def test_defaults_and_bounds() -> None:
    limiter = RateLimiter(10.0)
    assert limiter.burst == 1 and repr(limiter) == "RateLimiter(rate=10, burst=1)"
    limiter._clock = lambda: 0.0  # type: ignore[method-assign]
    assert [limiter.reserve() for _ in range(2)] == pytest.approx([0.0, 0.1])
    assert RateLimiter(0.5).interval == 2.0  # a rate below one per second is a rate
    assert RateLimiter(1e-3, burst=1).burst == 1
    assert ratelimit.__all__ == ["RateLimiter"]
