"""The adaptive rate limiter on a fake clock: what it does before any signal, the decrease on a
limit signal, the climb while answers flow, the ceiling and the floor, a limit that changes
under it (against an independent model of a server's limit), and many threads at once. Then
the client against the sandbox's hidden limit, judged by the charge ledger. Real-time figures
live in ``benchmarks/bench_adaptive.py``."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pd_hlr import sandbox
from pd_hlr.adaptive import AdaptiveRateLimiter

from .conftest import bounded
from .test_ratelimit import FakeTime, fake, max_in_window


def answers(limiter: AdaptiveRateLimiter, t: FakeTime, n: int, seconds: float = 1.0) -> None:
    """``n`` requests answered, spread evenly over ``seconds`` of fake time."""
    for _ in range(n):
        t.now += seconds / n
        limiter.reserve()
        limiter.success()


# ------------------------------------------------------------------------- before any signal
def test_unthrottled_until_the_first_signal() -> None:
    limiter = AdaptiveRateLimiter()
    t = fake(limiter)
    assert [limiter.acquire() for _ in range(1000)] == [0.0] * 1000
    assert t.now == 100.0  # nobody slept
    assert limiter.rate is None
    assert limiter.state().signals == 0


def test_with_a_ceiling_it_starts_at_the_ceiling() -> None:
    limiter = AdaptiveRateLimiter(ceiling=20.0)
    t = fake(limiter)
    sent = []
    for _ in range(60):
        limiter.acquire()
        sent.append(t.now)
    assert limiter.rate == 20.0
    assert max_in_window(sent) == 21  # 1/20 s apart: rate + 1 in a closed 1-second window
    assert sent[-1] - sent[0] == pytest.approx(59 / 20)


# ------------------------------------------------------------------------- the decrease
def test_a_signal_decreases_to_beta_times_the_accepted_rate() -> None:
    limiter = AdaptiveRateLimiter(beta=0.5, headroom=1.0)
    t = fake(limiter)
    answers(limiter, t, 40)  # 40 accepted in the last second
    assert limiter.throttled() is True
    assert limiter.state().limit == pytest.approx(40.0)
    assert limiter.rate == pytest.approx(20.0)  # 0.5 x 40
    # the slots are now 1/20 s apart
    first = limiter.reserve()
    assert limiter.reserve() - first == pytest.approx(1 / 20)


def test_the_estimate_keeps_its_headroom_and_never_exceeds_the_current_rate() -> None:
    limiter = AdaptiveRateLimiter(ceiling=30.0, beta=0.5, headroom=0.9)
    t = fake(limiter)
    answers(limiter, t, 100)  # the server accepted more than the ceiling lets us send
    limiter.throttled()
    assert limiter.state().limit == pytest.approx(27.0)  # 0.9 x min(30, 100)
    assert limiter.rate == pytest.approx(13.5)


def test_signals_of_one_congestion_event_decrease_once() -> None:
    limiter = AdaptiveRateLimiter(beta=0.5, headroom=1.0, window=1.0)
    t = fake(limiter)
    answers(limiter, t, 40)
    assert limiter.throttled() is True
    after_first = limiter.rate
    t.now += 0.5
    assert limiter.throttled() is False  # requests sent at the old pace, still answered 429
    assert limiter.rate is not None and limiter.rate >= after_first  # not decreased again
    t.now += 0.5  # a new event: a window after the decrease
    assert limiter.throttled() is True
    assert limiter.state().signals == 3


def test_a_run_refused_from_its_first_request_does_not_fall_to_the_floor() -> None:
    limiter = AdaptiveRateLimiter(beta=0.5, headroom=1.0)
    t = fake(limiter)
    for _ in range(16):  # 16 workers sent at once and all were refused: no answer at all
        limiter.acquire()
    t.now += 0.01
    limiter.throttled()
    assert limiter.rate == pytest.approx(4.0)  # half the 16 sent, then beta


def test_never_below_the_floor() -> None:
    limiter = AdaptiveRateLimiter(floor=5.0, beta=0.5)
    t = fake(limiter)
    answers(limiter, t, 40)
    assert limiter.throttled() is True
    for _ in range(20):  # signal after signal; 12 requests sent in between, none answered
        t.now += 1.01
        for _ in range(12):
            limiter.reserve()
        limiter.throttled()
        rate = limiter.rate
        assert rate is not None and rate >= 5.0
    assert limiter.rate == pytest.approx(5.0)  # 0.5 x 97 % of half the 12 sent: the floor


def test_the_default_floor_is_half_a_request_a_second() -> None:
    limiter = AdaptiveRateLimiter(beta=0.01)  # a decrease to 1 % of 40/s: below the floor
    t = fake(limiter)
    answers(limiter, t, 40)
    limiter.throttled()
    assert limiter.rate == pytest.approx(0.5)
    assert limiter.state().limit == pytest.approx(50.0)  # so that beta x limit is the floor


@pytest.mark.parametrize(("sent", "measured"), [(9, False), (10, True)])
def test_ten_requests_in_the_window_are_enough_to_measure_a_pace(sent: int, measured: bool) -> None:
    limiter = AdaptiveRateLimiter(beta=0.5, headroom=1.0)
    t = fake(limiter)
    for _ in range(sent):  # all refused: half of them is the estimate
        limiter.acquire()
    t.now += 0.01
    assert limiter.throttled() is measured
    assert limiter.rate == (pytest.approx(sent / 4) if measured else None)
    longer = AdaptiveRateLimiter(window=2.0)  # a count over the window, not a rate
    for _ in range(sent):
        longer.acquire()
    assert longer.throttled() is measured


def test_the_module_exports_what_it_names() -> None:
    from pd_hlr import adaptive

    assert sorted(adaptive.__all__) == ["AdaptiveRateLimiter", "RateState"]
    assert all(hasattr(adaptive, name) for name in adaptive.__all__)


def test_a_fresh_limiter_reads_well() -> None:
    from pd_hlr.adaptive import RateState

    assert AdaptiveRateLimiter().state() == RateState(None, None, 0, 0.0, 0.0)
    assert repr(AdaptiveRateLimiter()) == "AdaptiveRateLimiter(rate=None, ceiling=None, signals=0)"
    limiter = AdaptiveRateLimiter(ceiling=12.5)
    limiter.throttled()
    assert repr(limiter) == "AdaptiveRateLimiter(rate=11.25, ceiling=12.5, signals=1)"


def test_answers_are_counted_over_exactly_the_window() -> None:
    limiter = AdaptiveRateLimiter(window=2.0)
    t = fake(limiter)
    for _ in range(4):
        limiter.success()
    assert limiter.state().measured == 2.0  # 4 answers over a 2-second window
    t.now += 1.999
    assert limiter.state().measured == 2.0
    t.now += 0.001  # exactly a window later: they no longer count
    assert limiter.state().measured == 0.0
    assert limiter.state().peak == 2.0


def test_the_send_log_stays_bounded() -> None:
    limiter = AdaptiveRateLimiter()
    t = fake(limiter)
    for _ in range(10_000):  # 100 s of sends at 100/s, unthrottled
        t.now += 0.01
        limiter.reserve()
    assert len(limiter._sent) <= 101  # type: ignore[attr-defined]  # the last second only


def test_reset_peak_forgets_the_peak_and_the_signals_not_the_pace() -> None:
    limiter = AdaptiveRateLimiter()
    t = fake(limiter)
    answers(limiter, t, 30)
    limiter.throttled()
    rate = limiter.rate
    limiter.reset_peak()
    state = limiter.state()
    assert (state.peak, state.signals) == (0.0, 0)
    assert state.rate == rate and state.limit is not None


def test_the_real_sleep_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    from pd_hlr import adaptive

    slept: list[float] = []
    monkeypatch.setattr(adaptive.time, "sleep", slept.append)
    AdaptiveRateLimiter()._sleep(0.25)
    assert slept == [0.25]


def test_one_refused_lookup_does_not_set_a_pace() -> None:
    limiter = AdaptiveRateLimiter()
    limiter.acquire()
    assert limiter.throttled() is False  # one request measures nothing: the retry waits
    assert limiter.rate is None and limiter.state().signals == 1


def test_a_ceiling_below_the_floor_wins() -> None:
    limiter = AdaptiveRateLimiter(ceiling=0.2, floor=1.0)
    limiter.throttled()
    assert limiter.rate == pytest.approx(0.2)


# ------------------------------------------------------------------------- the climb
def test_the_rate_climbs_while_answers_flow() -> None:
    limiter = AdaptiveRateLimiter(beta=0.9, scale=0.1, headroom=1.0)
    t = fake(limiter)
    answers(limiter, t, 50)
    limiter.throttled()
    rates = [limiter.rate]
    for _ in range(40):  # 4 s after the decrease, every 0.1 s
        t.now += 0.1
        rates.append(limiter.rate)
    assert rates == sorted(rates) and rates[0] < rates[-1]
    assert rates[0] == pytest.approx(45.0)  # at the decrease: 0.9 x 50
    # K = cbrt((1 - 0.9) / 0.1) = 1 s: back at the estimate, flat around it, then beyond
    assert rates[10] == pytest.approx(50.0)
    assert rates[8] == pytest.approx(rates[12], rel=0.01)
    assert rates[40] == pytest.approx(50 * (1 + 0.1 * 3**3))  # 3 s past K: 2.35x


def test_the_ceiling_is_never_exceeded() -> None:
    limiter = AdaptiveRateLimiter(ceiling=25.0)
    t = fake(limiter)
    answers(limiter, t, 20)
    limiter.throttled()
    sent = []
    for _ in range(600):  # long after the decrease the curve is far above 25
        limiter.acquire()
        limiter.success()
        sent.append(t.now)
    assert limiter.rate == 25.0
    assert max_in_window(sent[-200:]) <= 26


@pytest.mark.parametrize("ceiling", [None, 1000.0])
def test_a_long_run_keeps_only_the_last_window_of_times(ceiling: float | None) -> None:
    """Memory stays bounded on a run of any length: the send and answer times older than the
    window are dropped, unthrottled or paced."""
    limiter = AdaptiveRateLimiter(ceiling)
    t = fake(limiter)
    answers(limiter, t, 5000, seconds=100.0)  # 50/s for 100 s
    assert len(limiter._sent) <= 51 and len(limiter._answers) <= 51


@settings(max_examples=60, deadline=None)
@given(
    ceiling=st.none() | st.floats(1.0, 500.0),
    floor=st.floats(0.1, 5.0),
    events=st.lists(
        st.tuples(st.sampled_from(["answer", "signal", "send"]), st.floats(0.0, 2.0)),
        max_size=80,
    ),
)
def test_the_rate_stays_between_floor_and_ceiling(
    ceiling: float | None, floor: float, events: list[tuple[str, float]]
) -> None:
    limiter = AdaptiveRateLimiter(ceiling=ceiling, floor=floor)
    t = fake(limiter)
    low = min(floor, ceiling) if ceiling is not None else floor
    for what, dt in events:
        t.now += dt
        {"answer": limiter.success, "signal": limiter.throttled, "send": limiter.reserve}[what]()
        rate = limiter.rate
        if rate is None:
            assert ceiling is None and limiter.state().limit is None
        else:
            assert rate >= low - 1e-9
            assert ceiling is None or rate <= ceiling + 1e-9


# ------------------------------------------------------------------------- a changing limit
class WindowServer:
    """An independent model of a server's limit: at most ``limit`` accepted requests in any
    1-second window (the sandbox's rule), refusals not counted."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.accepted: collections.deque[float] = collections.deque()

    def request(self, now: float) -> bool:
        while self.accepted and self.accepted[0] <= now - 1.0:
            self.accepted.popleft()
        if len(self.accepted) >= self.limit:
            return False
        self.accepted.append(now)
        return True


def test_it_follows_a_limit_that_changes_mid_run() -> None:
    """One sender as fast as the limiter lets it, instant answers, the limit 40 → 120 → 20.
    In the last 10 s of each 20-s phase: at least 90 % of the limit accepted, and few refusals."""
    limiter = AdaptiveRateLimiter()
    t = fake(limiter, start=0.0)
    server = WindowServer(40)
    log: list[tuple[float, bool]] = []
    for limit, end in ((40, 20.0), (120, 40.0), (20, 60.0)):
        server.limit = limit
        while t.now < end:
            limiter.acquire()
            ok = server.request(t.now)
            log.append((t.now, ok))
            if ok:
                limiter.success()
            else:
                limiter.throttled()
            t.now += 0.001  # the answer's latency
        late = [ok for when, ok in log if end - 10.0 <= when < end]
        assert sum(late) / 10.0 >= 0.9 * limit, (limit, sum(late) / 10.0)
        assert sum(late) / 10.0 <= limit
        assert late.count(False) <= 0.02 * len(late) + 1, (limit, late.count(False))


# ------------------------------------------------------------------------- threads
def test_concurrent_feedback_is_counted_exactly() -> None:
    limiter = AdaptiveRateLimiter(ceiling=1e6)
    fake(limiter)
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        for _ in range(500):
            limiter.acquire()
            if i % 2:
                limiter.throttled()
            else:
                limiter.success()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    state = limiter.state()
    assert state.signals == 4 * 500
    assert state.rate is not None and state.rate >= limiter.floor


def test_unthrottled_sends_and_answers_from_many_threads_are_all_counted() -> None:
    """Unthrottled, sends and answers are logged without the lock: none is lost, none is
    counted twice, and the log still keeps only the last window."""
    limiter = AdaptiveRateLimiter(window=1.0)
    t = fake(limiter)
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(500):
            assert limiter.acquire() == 0.0
            limiter.success()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert limiter.state().measured == 4000.0  # every answer, at one instant of the clock
    assert len(limiter._sent) == 4000  # type: ignore[attr-defined]
    t.now += 0.5
    limiter.success()  # one more answer: the peak counts all of them
    assert limiter.state().peak == 4001.0
    t.now += 1.0
    limiter.reserve()  # a window later the log is pruned to the send just made
    assert len(limiter._sent) == 1  # type: ignore[attr-defined]
    assert limiter.state().measured == 0.0


def test_a_slot_reserved_before_a_decrease_is_reserved_again() -> None:
    """A worker already waiting at the old pace when a decrease happens goes at the new one."""
    limiter = AdaptiveRateLimiter(ceiling=100.0, beta=0.5, headroom=1.0)
    t = fake(limiter)
    answers(limiter, t, 100)
    t.now += 0.01
    start = t.now
    assert limiter.reserve() == 0.0  # another worker's slot: now; the next is 10 ms later
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 1:
            limiter.throttled()  # a 429 arrives while this worker waits: the pace is now 50/s
        t.sleep(seconds)

    limiter._sleep = sleep  # type: ignore[method-assign]
    waited = limiter.acquire()
    # it woke in a new generation and reserved again: one new-pace interval (~1/50 s: half
    # the 99 answers of the last second) after the signal, not the old 1/100 s
    assert len(slept) == 2 and slept[0] == pytest.approx(0.01)
    assert waited == pytest.approx(1 / 49.5)
    assert t.now - start == pytest.approx(1 / 49.5)


@pytest.mark.parametrize(
    "bad",
    [
        {"ceiling": 0},
        {"floor": 0},
        {"beta": 1.0},
        {"beta": 0},
        {"scale": 0},
        {"window": 0},
        {"window": -1},
    ],
)
def test_bad_arguments(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AdaptiveRateLimiter(**bad)


# ------------------------------------------------------------------------- the client, for real
def test_the_client_finds_a_hidden_limit_and_pays_once(
    make_sandbox: Callable[..., sandbox.Sandbox], client_for: Callable[..., Any]
) -> None:
    server = make_sandbox(rate_limit=40)
    client = client_for(server, workers=8, max_retries=50)  # no rate_limit
    numbers = [f"+4479{i:08d}" for i in range(120)]
    out = bounded(lambda: client.lookup_many(numbers))
    assert all(isinstance(v, dict) for v in out.values())
    stats = server.stats()
    refused = stats.status_counts.get(429, 0)
    assert refused > 0  # the hidden limit was met ...
    assert stats.charged == dict.fromkeys(numbers, 1)  # ... and nothing was paid twice
    assert client.stats.throttled == refused == client.stats.limit_signals
    assert client.current_rate() is not None  # the limiter now paces
    assert client.stats.rate == client.current_rate() or client.stats.rate is not None


def test_quota_answers_are_limit_signals_and_not_paid(
    make_sandbox: Callable[..., sandbox.Sandbox], client_for: Callable[..., Any]
) -> None:
    server = make_sandbox(faults=sandbox.Faults(quota=0.1), seed=3)
    client = client_for(server, workers=4, max_retries=50)
    client._sleep = lambda s: None  # no backoff sleeps  # type: ignore[method-assign]
    numbers = [f"+4479{i:08d}" for i in range(40)]
    out = bounded(lambda: client.lookup_many(numbers))
    assert all(isinstance(v, dict) for v in out.values())
    stats = server.stats()
    assert stats.fault_counts["quota"] == client.stats.limit_signals > 0
    assert stats.charged == dict.fromkeys(numbers, 1)


def test_the_fixed_limiter_is_still_there(client_for: Callable[..., Any], sb: Any) -> None:
    client = client_for(sb, rate_limit=50, adaptive=False)
    assert client.current_rate() == pytest.approx(50 * 0.97)
    assert client_for(sb, adaptive=False).current_rate() is None


def test_the_benchmark_runs_in_its_small_mode() -> None:
    """What CI runs of ``benchmarks/bench_adaptive.py``: it finishes, prints its figures, and
    the sandbox's ledger shows nothing paid twice (the script exits non-zero otherwise)."""
    from .benchrun import ROOT, run_benchmark

    proc = run_benchmark("bench_adaptive.py", "--small", cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "0 paid twice" in proc.stdout
    assert proc.stdout.count("SUMMARY ") == 3


def test_a_stop_ends_the_wait_for_a_slot(
    make_sandbox: Callable[..., sandbox.Sandbox], client_for: Callable[..., Any]
) -> None:
    """Workers queued for slots a quarter of an hour apart do not hold a stopped run."""
    server = make_sandbox()
    client = client_for(server, rate_limit=0.001 / 0.97, workers=3)  # one request in 1,000 s

    class Enough(Exception):
        pass

    def on_result(number: str, outcome: Any) -> None:
        raise Enough

    with pytest.raises(Enough):
        bounded(lambda: client.lookup_many(["+447400123456", "+447400123457"], on_result=on_result))
    assert server.stats().requests == 1  # the second worker's slot never came
