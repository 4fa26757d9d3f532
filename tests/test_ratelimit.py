"""The rate limiter, on a fake clock: the slots it hands out, alone and from many threads, and
that every attempt of a client (retries included) passes it. Real-time figures live in
``benchmarks/bench_ratelimit.py``."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest

from pd_hlr import sandbox
from pd_hlr.adaptive import AdaptiveRateLimiter
from pd_hlr.client import RATE_HEADROOM
from pd_hlr.ratelimit import RateLimiter

from .conftest import bounded


class FakeTime:
    """A clock that only moves when someone sleeps (thread-safe)."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.lock = threading.Lock()

    def clock(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def fake(limiter: RateLimiter, start: float = 100.0) -> FakeTime:
    t = FakeTime(start)
    limiter._clock = t.clock  # type: ignore[method-assign]
    limiter._sleep = t.sleep  # type: ignore[method-assign]
    return t


def max_in_window(times: list[float], width: float = 1.0) -> int:
    """Most timestamps in any closed window of ``width`` seconds."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] < t - width - 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_slots_are_one_interval_apart() -> None:
    limiter = RateLimiter(10.0)
    t = fake(limiter)
    sent = []
    for _ in range(25):
        limiter.acquire()
        sent.append(t.now)
    assert {round(b - a, 9) for a, b in itertools.pairwise(sent)} == {0.1}
    assert max_in_window(sent) == 11  # rate + 1 in a closed 1-second window, no more
    t.now += 5.0  # idle: no debt carried over, and no burst beyond 1 either
    assert limiter.acquire() == 0.0
    assert limiter.reserve() == pytest.approx(0.1)


def test_burst_lets_that_many_go_back_to_back() -> None:
    bursty = RateLimiter(10.0, burst=3)
    bursty._clock = lambda: 0.0  # type: ignore[method-assign]
    assert [bursty.reserve() for _ in range(4)] == pytest.approx([0, 0, 0, 0.1])


@pytest.mark.parametrize("bad", [{"rate": 0}, {"rate": -1.0}, {"rate": 5, "burst": 0}])
def test_bad_arguments(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RateLimiter(**bad)


@pytest.mark.parametrize(
    "make", [lambda: RateLimiter(400.0), lambda: AdaptiveRateLimiter(ceiling=400.0)]
)
def test_reservations_from_many_threads_never_share_a_slot(
    make: Callable[[], RateLimiter | AdaptiveRateLimiter],
) -> None:
    limiter = make()
    limiter._clock = lambda: 0.0  # type: ignore[method-assign]  # time stands still
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            w = limiter.reserve()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert sorted(waits) == pytest.approx([k / 400.0 for k in range(200)])


def test_every_attempt_of_a_client_passes_the_limiter(
    make_sandbox: Callable[..., sandbox.Sandbox], client_for: Callable[..., Any]
) -> None:
    server = make_sandbox(faults=sandbox.Faults(error_503=0.3), seed=4)
    client = client_for(server, rate_limit=50, workers=8, max_retries=20)
    client._sleep = lambda s: None  # backoff not slept  # type: ignore[method-assign]
    limiter = client._limiter
    assert limiter is not None and limiter.rate == pytest.approx(50 * RATE_HEADROOM)
    t = fake(limiter)
    sent: list[float] = []
    acquire = limiter.acquire

    def recording() -> float:
        waited = acquire()
        sent.append(t.clock())
        return waited

    limiter.acquire = recording  # type: ignore[method-assign]
    numbers = [f"+4479{i:08d}" for i in range(60)]
    out = bounded(lambda: client.lookup_many(numbers))
    assert all(isinstance(v, dict) for v in out.values())
    stats = server.stats()
    assert stats.status_counts.get(503, 0) > 0
    assert len(sent) == stats.requests == client.stats.requests  # retries too
    assert max_in_window(sent) <= 50 * RATE_HEADROOM + 1
