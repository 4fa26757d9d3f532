"""A thread-safe rate limiter shared by every worker of one client.

A slot scheduler (GCRA, the "virtual scheduling" form of a token bucket): each caller reserves
the next free send time under a lock, then sleeps outside the lock until that time. Slots are
``1/rate`` apart; ``burst`` lets that many requests go back to back after an idle spell. With
``burst=1`` any 1-second window holds at most ``rate + 1`` sends, and the sustained rate is
exactly ``rate``.

``_clock`` and ``_sleep`` are methods so tests can replace them with a fake clock.
"""

from __future__ import annotations

import threading
import time

__all__ = ["RateLimiter"]


class RateLimiter:
    """Allow at most ``rate`` acquisitions per second across all threads.

    Example:
        >>> limiter = RateLimiter(100.0)
        >>> waited = limiter.acquire()   # first one goes at once
        >>> waited
        0.0
    """

    def __init__(self, rate: float, burst: int = 1) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be a positive number of requests per second, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = int(burst)
        self.interval = 1.0 / self.rate
        self._tolerance = (self.burst - 1) * self.interval
        self._lock = threading.Lock()
        self._tat: float | None = None  # theoretical arrival time of the next conforming request

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate:g}, burst={self.burst})"

    def _clock(self) -> float:
        """Monotonic seconds (replace in tests)."""
        return time.monotonic()

    def _sleep(self, seconds: float) -> None:
        """Block for ``seconds`` (replace in tests)."""
        time.sleep(seconds)

    def reserve(self) -> float:
        """Reserve the next send slot; return how many seconds the caller must wait for it.

        Example:
            >>> RateLimiter(10.0).reserve()
            0.0
        """
        with self._lock:
            now = self._clock()
            tat = now if self._tat is None else max(self._tat, now)
            start = max(now, tat - self._tolerance)
            self._tat = max(tat, start) + self.interval
            return start - now

    def acquire(self) -> float:
        """Wait for the next slot (thread-safe); return the seconds waited.

        Example:
            >>> limiter = RateLimiter(1000.0)
            >>> _ = [limiter.acquire() for _ in range(3)]
        """
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait
