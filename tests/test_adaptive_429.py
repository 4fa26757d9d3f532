"""The adaptive limiter (the default when no ``rate_limit`` is given) under random 429s: the
sandbox's ``rate_429`` fault knob refuses a share of requests whatever the pace. Every number
is answered, none is paid twice (the sandbox's charge ledger), and each limit signal the
limiter acts on lowers the pace. Counts, not times: no wall-clock threshold."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pd_hlr import sandbox
from pd_hlr.adaptive import AdaptiveRateLimiter

from .conftest import bounded


def test_random_429s_with_the_adaptive_limiter_answer_all_and_pay_once(
    make_sandbox: Callable[..., sandbox.Sandbox], client_for: Callable[..., Any]
) -> None:
    server = make_sandbox(faults=sandbox.Faults(rate_429=0.08, retry_after=0), seed=27)
    client = client_for(server, workers=8, max_retries=60, backoff_factor=0.001)
    limiter = client._limiter
    assert isinstance(limiter, AdaptiveRateLimiter)  # the default: no rate_limit given
    assert client.current_rate() is None  # unthrottled until the first signal

    decisions: list[tuple[float | None, bool, float | None]] = []
    throttled = limiter.throttled

    def watched() -> bool:  # observes the real limiter: (rate before, decreased, rate after)
        before = limiter.rate
        decreased = throttled()
        decisions.append((before, decreased, limiter.rate))
        return decreased

    limiter.throttled = watched  # type: ignore[method-assign]
    numbers = [f"+4479{i:08d}" for i in range(80)]
    out = bounded(lambda: client.lookup_many(numbers), 120)

    assert sorted(out) == sorted(numbers)
    assert all(isinstance(v, dict) and v["to"] == n for n, v in out.items())  # all answered
    ledger = server.stats()
    assert ledger.charged == dict.fromkeys(numbers, 1)  # each paid once, none twice
    refused = ledger.status_counts.get(429, 0)
    assert refused == ledger.fault_counts["rate_429"] > 0  # the knob fired, and only it
    assert ledger.requests == len(numbers) + refused  # a 429 is retried, nothing else sent
    stats = client.stats
    assert stats.throttled == refused == stats.limit_signals == len(decisions)
    assert stats.retries == refused and stats.possibly_charged == 0
    # the pace backs off: every decrease lowers the rate (from unthrottled: sets one)
    decreases = [(before, after) for before, decreased, after in decisions if decreased]
    assert decreases, decisions
    assert len(decreases) <= refused
    for before, after in decreases:
        assert after is not None and after > 0
        assert before is None or after < before, decisions
    assert client.current_rate() is not None  # paced from the first decrease on
