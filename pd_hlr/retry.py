"""The retry policy: after a failed attempt, retry (after how long), give up, or stop the run.

Every lookup costs money once the API has answered it, so nothing is retried blindly. What an
attempt got back is :mod:`pd_hlr.classify`'s job (a :class:`~pd_hlr.classify.Failure` of one
kind); this module only decides: :meth:`RetryPolicy.decide` (retry after how long, give up on
the number, or stop the run) and :class:`CircuitBreaker` (one per run: consecutive failures
of one kind across the run, whatever the number, stop it).

Invariants: :class:`RetryPolicy` is a small frozen value, as urllib3's ``Retry`` is; its jitter
source (``random``) and its wall clock (``now``) are passed in, so every decision can be
replayed. Whether a kind is retried, may have been charged, or counts toward the breaker is
read from :data:`pd_hlr.classify.KINDS`, never decided here again.

Example:
    >>> policy = RetryPolicy(max_retries=2, random=lambda: 0.5)
    >>> failure = classify_answer(503, b'{"message": "busy"}')
    >>> policy.decide(failure, attempt=1)
    Decision(action='retry', delay=0.25, error=None)
    >>> policy.decide(failure, attempt=3).action
    'give_up'
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple

# The classification names, importable from here as before (their home is pd_hlr.classify).
from pd_hlr.classify import (  # noqa: F401
    KINDS,
    Answer,
    Failure,
    Kind,
    classify_answer,
    classify_exception,
    excerpt,
    parse_retry_after,
    retry_table_markdown,
    same_number,
    too_large,
)
from pd_hlr.errors import HLRError, ServiceUnavailableError

__all__ = ["CircuitBreaker", "Decision", "RetryPolicy"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Decision(NamedTuple):
    """What to do after a failed attempt: ``retry`` after ``delay`` seconds, ``give_up`` on the
    number (raise ``error``), or ``stop`` the whole run (raise ``error``)."""

    action: Literal["retry", "give_up", "stop"]
    delay: float = 0.0
    error: HLRError | None = None


# --------------------------------------------------------------------------------------------
# the policy


@dataclass(frozen=True)
class RetryPolicy:
    """How failed attempts are retried: a small immutable value.

    Args:
        max_retries: retries per number after the first attempt.
        backoff_factor: exponential backoff with full jitter: before retry *n* (1-based)
            wait ``random() * min(backoff_max, backoff_factor * 2**(n-1))`` seconds.
        backoff_max: the cap of that wait (seconds).
        retry_after_max: the longest ``Retry-After`` honoured (seconds). A longer one stops the
            run with :class:`~pd_hlr.errors.ServiceUnavailableError` (``.resume_after`` set).
        breaker_threshold: this many consecutive failed attempts of one kind (of the kinds that
            count, see :data:`KINDS`) across a run stop it with ``ServiceUnavailableError``.
        random: the jitter source, a function returning a float in [0, 1).
        now: the wall clock (an aware ``datetime``), read only to say when to resume after a
            too-long ``Retry-After``.

    Example:
        >>> RetryPolicy(backoff_factor=1.0, random=lambda: 0.999).backoff(3)
        3.996
    """

    max_retries: int = 5
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 300.0
    breaker_threshold: int = 20
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)
    now: Callable[[], datetime] = field(default=_utcnow, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {self.max_retries!r}")
        if not isinstance(self.breaker_threshold, int) or self.breaker_threshold < 1:
            raise ValueError(
                f"breaker_threshold must be an int >= 1, got {self.breaker_threshold!r}"
            )
        for name in ("backoff_factor", "backoff_max", "retry_after_max"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")

    def backoff(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based): full jitter.

        Example:
            >>> RetryPolicy(backoff_factor=0.5, random=lambda: 1.0).backoff(1)
            0.5
        """
        ceiling = min(self.backoff_max, self.backoff_factor * 2.0 ** min(retry_number - 1, 60))
        return self.random() * ceiling

    def decide(self, failure: Failure, attempt: int) -> Decision:
        """Retry, give up or stop, after ``attempt`` (1-based) failed with ``failure``.

        Example:
            >>> from pd_hlr.errors import RateLimitError
            >>> slow = Failure("throttled", RateLimitError("slow down"), retry_after=86400)
            >>> decision = RetryPolicy().decide(slow, attempt=1)
            >>> decision.action, decision.error.resume_after
            ('stop', 86400)
        """
        error = failure.error
        if error.stops_run:
            return Decision("stop", error=error)
        wait = failure.retry_after
        if failure.retry and wait is not None and wait > self.retry_after_max:
            when = self.now() + timedelta(seconds=wait)
            return Decision("stop", error=_resume_later(failure, wait, self.retry_after_max, when))
        if not failure.retry or attempt > self.max_retries:
            return Decision("give_up", error=error)
        return Decision("retry", wait if wait is not None else self.backoff(attempt))

    def breaker(self) -> CircuitBreaker:
        """A fresh circuit breaker for one run."""
        return CircuitBreaker(self.breaker_threshold)


def _resume_later(
    failure: Failure, wait: float, cap: float, at: datetime
) -> ServiceUnavailableError:
    when = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    status = failure.error.status
    return ServiceUnavailableError(
        f"Provero asked to wait {_duration(wait)} before the next request (Retry-After on "
        f"HTTP {status}), longer than retry_after_max={cap:g}s, so the run stopped. Resume "
        f"after {when}: only the numbers not yet answered will be looked up.",
        status=status,
        body_excerpt=failure.error.body_excerpt,
        kind=failure.kind,
        resume_after=wait,
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class CircuitBreaker:
    """Consecutive failed attempts of one kind across a run (thread-safe).

    A success, or a failure of a kind that does not count (429, validation), resets the
    streak; a failure of another counting kind starts a new one.

    Example:
        >>> from pd_hlr.errors import TransportError
        >>> breaker = CircuitBreaker(threshold=2)
        >>> lost = Failure("connect", TransportError("refused"))
        >>> breaker.record(lost) is None, breaker.record(lost).kind
        (True, 'connect')
    """

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._lock = threading.Lock()
        self._kind: str | None = None
        self._streak = 0

    def success(self) -> None:
        """An attempt got a usable answer."""
        with self._lock:
            self._kind, self._streak = None, 0

    def record(self, failure: Failure) -> ServiceUnavailableError | None:
        """Count a failed attempt; return the error that stops the run once the streak reaches
        the threshold (each time it does), else None."""
        with self._lock:
            if not KINDS[failure.kind].breaker:
                self._kind, self._streak = None, 0
                return None
            if failure.kind == self._kind:
                self._streak += 1
            else:
                self._kind, self._streak = failure.kind, 1
            if self._streak < self.threshold:
                return None
            streak = self._streak
        return ServiceUnavailableError(
            f"Provero looks unavailable: {streak} attempts in a row failed the same way "
            f"({failure.kind}); the last one: {str(failure.error).rstrip('.')}. The run stopped "
            "instead of trying every number. Check base_url and the network, then run again: "
            "only the numbers not yet answered will be looked up.",
            status=failure.error.status,
            body_excerpt=failure.error.body_excerpt,
            kind=failure.kind,
        )
