"""An adaptive rate limiter: it finds the account's rate limit from the server's limit signals.

The spec documents no limit and each account has its own, so the client paces itself the way
TCP's CUBIC (and botocore's adaptive retry mode) does. Invariants: nothing is throttled before
the first limit signal (or requests go at ``ceiling``); a signal (a 429, a ``Retry-After``, a
quota result) sets the rate to ``beta ×`` the rate the server was accepting, once per
congestion event (``window``); while answers flow the rate grows back along CUBIC's curve,
relative to that limit; the rate stays within ``floor`` and ``ceiling`` (a user's
``rate_limit``). Sends are spaced by :class:`~pd_hlr.ratelimit.RateLimiter`'s slot scheduler;
``_clock`` and ``_sleep`` are methods so tests can inject a fake clock. The rules in full and
the curve: ``docs/internals/adaptive.md``.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import NamedTuple

__all__ = ["AdaptiveRateLimiter", "RateState"]


class RateState(NamedTuple):
    """A snapshot of an :class:`AdaptiveRateLimiter`.

    ``rate``: the current allowed requests/second (None: no limit signal seen and no
    ceiling, so unthrottled); ``limit``: the estimate of the server's limit at the last
    decrease (None before any); ``signals``: limit signals seen; ``measured``: answers in the
    last ``window`` seconds, per second; ``peak``: the highest ``measured`` seen since
    :meth:`AdaptiveRateLimiter.reset_peak`.
    """

    rate: float | None
    limit: float | None
    signals: int
    measured: float
    peak: float


class AdaptiveRateLimiter:
    """Pace requests at a rate discovered from the server's limit signals (thread-safe).

    Args:
        ceiling: the highest rate ever used (requests/second), or None for no ceiling.
        floor: the lowest rate a decrease can reach.
        beta: the multiplicative decrease (the new rate is ``beta ×`` the estimated limit).
        scale: how fast the rate grows back and beyond (see the module docstring); ``K``, the
            seconds from a decrease back to the estimated limit, is ``∛((1 − beta) / scale)``.
        window: seconds over which answers are counted to measure the accepted rate; also the
            span of one congestion event (signals within it after a decrease are not new).
        headroom: the estimated limit is this share of the measured accepted rate.
        min_sample: fewer requests than this in the last ``window`` measure nothing: a signal
            then decreases from the current rate, or, unthrottled, is left to the retry
            policy (one lookup's 429 does not set the pace of the next run).

    Example:
        >>> AdaptiveRateLimiter(ceiling=50)
        AdaptiveRateLimiter(rate=50, ceiling=50, signals=0)
    """

    def __init__(
        self,
        ceiling: float | None = None,
        *,
        floor: float = 0.5,
        beta: float = 0.9,
        scale: float = 0.1,
        window: float = 1.0,
        headroom: float = 0.97,
        min_sample: int = 10,
    ) -> None:
        if ceiling is not None and not ceiling > 0:
            raise ValueError(f"ceiling must be a positive rate or None, got {ceiling!r}")
        if not floor > 0:
            raise ValueError(f"floor must be a positive rate, got {floor!r}")
        # (>= would clamp to the same value)
        if ceiling is not None and floor > ceiling:  # pragma: no mutate
            floor = float(ceiling)
        if not 0 < beta < 1:
            raise ValueError(f"beta must be in (0, 1), got {beta!r}")
        if not scale > 0 or not window > 0:
            raise ValueError(f"scale and window must be > 0, got {scale!r}, {window!r}")
        self.ceiling = None if ceiling is None else float(ceiling)
        self.floor = float(floor)
        self.beta = float(beta)
        self.scale = float(scale)
        self.window = float(window)
        self.headroom = float(headroom)
        self.min_sample = int(min_sample)
        self.k = ((1.0 - self.beta) / self.scale) ** (1.0 / 3.0)
        self._lock = threading.Lock()
        self._tat: float | None = None  # the next free send slot
        # +1 at each decrease: the slots reserved before it are void
        self._generation = 0  # pragma: no mutate
        self._limit: float | None = None  # the estimated limit at the last decrease
        self._decreased: float = -math.inf  # when
        self._signals = 0
        self._answers: collections.deque[float] = collections.deque()
        self._sent: collections.deque[float] = collections.deque()
        self._peak = 0.0

    def __repr__(self) -> str:
        rate = self.rate
        shown = "None" if rate is None else f"{rate:.4g}"
        ceiling = "None" if self.ceiling is None else f"{self.ceiling:g}"
        return f"AdaptiveRateLimiter(rate={shown}, ceiling={ceiling}, signals={self._signals})"

    def _clock(self) -> float:
        """Monotonic seconds (replace in tests)."""
        return time.monotonic()

    def _sleep(self, seconds: float) -> None:
        """Block for ``seconds`` (replace in tests)."""
        time.sleep(seconds)

    # ---------------------------------------------------------------- the rate
    def _rate_at(self, now: float) -> float | None:
        """The allowed rate at ``now``; call with the lock held."""
        if self._limit is None:
            return self.ceiling
        t = now - self._decreased - self.k
        rate = max(self.floor, self._limit * (1.0 + self.scale * t * t * t))
        return rate if self.ceiling is None else min(rate, self.ceiling)

    def _limit_rate(self, now: float) -> float:
        """The rate at ``now`` once a limit (or a ceiling) is known; call with the lock held."""
        rate = self._rate_at(now)
        assert rate is not None
        return rate

    @property
    def rate(self) -> float | None:
        """The allowed requests/second now (None: unthrottled).

        Example:
            >>> AdaptiveRateLimiter(ceiling=20).rate
            20.0
        """
        with self._lock:
            return self._rate_at(self._clock())

    def _per_second(self, times: collections.deque[float], now: float) -> float:
        """Events per second over the last ``window``; call with the lock held."""
        while times and times[0] <= now - self.window:
            times.popleft()
        return len(times) / self.window

    def _measured(self, now: float) -> float:
        """Answers per second over the last ``window``; call with the lock held."""
        return self._per_second(self._answers, now)

    # ---------------------------------------------------------------- pacing
    def _tidy(self, times: collections.deque[float], now: float) -> None:
        """Drop the times older than the window, unless another thread holds the lock (it
        does the same). Appending needs no lock (``deque.append`` is atomic) and only the
        lock's holder removes, so no time in the window is lost."""
        if self._lock.acquire(blocking=False):
            try:
                self._per_second(times, now)
            finally:
                self._lock.release()

    def _reserve(self) -> tuple[float, int]:
        """(seconds to wait for the next slot, the pacing generation it was reserved in)."""
        if self._limit is None and self.ceiling is None:  # unthrottled: no slot, no lock
            now = self._clock()
            self._sent.append(now)
            self._tidy(self._sent, now)
            return 0.0, self._generation
        with self._lock:
            now = self._clock()
            rate = self._limit_rate(now)  # not None: a limit, once known, is never unset
            self._per_second(self._sent, now)  # prune
            start = now if self._tat is None else max(self._tat, now)
            self._tat = start + 1.0 / rate
            self._sent.append(start)
            return start - now, self._generation

    def reserve(self) -> float:
        """Reserve the next send slot; return how many seconds the caller must wait for it.
        (A slot reserved before a decrease is not honoured by :meth:`acquire`.)

        Example:
            >>> AdaptiveRateLimiter().reserve()
            0.0
        """
        return self._reserve()[0]

    def acquire(self) -> float:
        """Wait for the next slot (thread-safe); return the seconds waited.

        Callers waiting for slots reserved at the old rate when a decrease happens reserve
        again at the new rate (so the decrease takes effect at once, not after the queue of
        workers already waiting has gone out at the old pace).

        Example:
            >>> limiter = AdaptiveRateLimiter(ceiling=1000.0)
            >>> _ = [limiter.acquire() for _ in range(3)]
        """
        waited = 0.0
        while True:
            wait, generation = self._reserve()
            if wait <= 0:
                return waited
            self._sleep(wait)
            waited += wait
            with self._lock:
                if generation == self._generation:
                    return waited

    # ---------------------------------------------------------------- feedback
    def success(self) -> None:
        """One answer that was not a limit signal arrived (it is counted in the measured rate).

        Example:
            >>> limiter = AdaptiveRateLimiter(window=1.0)
            >>> limiter.success(); limiter.state().measured
            1.0
        """
        now = self._clock()
        self._answers.append(now)  # counted at once; the peak is kept by whoever tidies
        if not self._lock.acquire(blocking=False):
            return
        try:
            measured = self._measured(now)
            # (>= would store the same value)
            if measured > self._peak:  # pragma: no mutate
                self._peak = measured
        finally:
            self._lock.release()

    def throttled(self) -> bool:
        """A limit signal arrived: decrease the rate, unless this is the congestion event of
        the last decrease. Return whether the rate was decreased.

        Example:
            >>> limiter = AdaptiveRateLimiter(ceiling=10.0)
            >>> limiter.throttled(), limiter.throttled()   # the second is the same event
            (True, False)
            >>> limiter.rate < 10.0
            True
        """
        with self._lock:
            now = self._clock()
            self._signals += 1
            if now - self._decreased < self.window:
                return False
            current = self._rate_at(now)
            sent = self._per_second(self._sent, now)
            if sent * self.window < self.min_sample:  # too few requests to measure a pace by
                if current is None:
                    return False  # the retry policy's wait for this number is enough
                limit = current
            else:
                accepted = self._measured(now) or 0.5 * sent
                limit = self.headroom * (accepted if current is None else min(current, accepted))
            limit = max(limit, self.floor / self.beta)
            if self.ceiling is not None:
                limit = min(limit, self.ceiling)
            self._limit = limit
            self._decreased = now
            # any change of the generation voids the slots reserved before this decrease
            self._generation += 1  # pragma: no mutate
            self._tat = now + 1.0 / self._limit_rate(now)
            return True

    # ---------------------------------------------------------------- reporting
    def state(self) -> RateState:
        """A consistent snapshot (see :class:`RateState`).

        Example:
            >>> AdaptiveRateLimiter().state()
            RateState(rate=None, limit=None, signals=0, measured=0.0, peak=0.0)
        """
        with self._lock:
            now = self._clock()
            return RateState(
                self._rate_at(now), self._limit, self._signals, self._measured(now), self._peak
            )

    def reset_peak(self) -> None:
        """Forget the peak measured rate and the signal count (what was learnt stays)."""
        with self._lock:
            self._peak = 0.0
            self._signals = 0
