"""``HLRClient``: the Provero API — one number per request, many numbers concurrently.

It builds each request, asks :mod:`pd_hlr.transport` for the answer, asks
:mod:`pd_hlr.classify` what came back and :mod:`pd_hlr.retry` what to do about a failure, and
runs the numbers on a thread pool behind the rate limiter, with counters and logs. It never
sees a socket or the token in clear.

Invariants: every attempt passes the stop event, the rate limiter and the counters; an answer
is delivered once per number; no exception, answer or log line leaving it holds the token.

Example:
    >>> client.lookup("+441302778473", detailed=True)["status"]["groupName"]
    'DELIVERED'
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from pd_hlr._spec import DEFAULT_BASE_URL, ENDPOINT_PATH, check_route
from pd_hlr.adaptive import AdaptiveRateLimiter
from pd_hlr.classify import (
    KINDS,
    Answer,
    Failure,
    classify_answer,
    classify_exception,
    too_large,
)
from pd_hlr.errors import AuthenticationError, HLRError
from pd_hlr.ratelimit import RateLimiter
from pd_hlr.retry import CircuitBreaker, RetryPolicy
from pd_hlr.settings import BASE_URL_ENV, DEFAULT_WORKERS, TOKEN_ENV, is_loopback_host
from pd_hlr.transport import (
    MAX_ANSWER_BYTES,
    NoReply,
    Transport,
    hide_echoed_token,
    read_token,
    scrub_exception,
)

__all__ = ["ClientStats", "HLRClient", "Outcome"]

logger = logging.getLogger("pd_hlr.client")

#: The limiter starts this much below ``rate_limit``: slots exactly 1/rate apart sit on the
#: edge of a server's sliding 1-second window, and tens of ms of network/scheduling jitter
#: (measured against the sandbox at 50 ms latency) tip a request over it now and then.
RATE_HEADROOM = 0.97

#: A number JSON writes as it is (its request body is made without ``json.dumps``).
_PLAIN_NUMBER = re.compile(r"\+?[0-9]+")

#: What ``lookup_many`` gives per number: the result object, or the error that ended it.
Outcome = dict[str, Any] | HLRError
OnResult = Callable[[str, Outcome], None]


# ------------------------------------------------------------------------------- stats, run
@dataclass(frozen=True)
class ClientStats:
    """A snapshot of one client's counters.

    ``requests``: HTTP requests sent (retries included); ``retries``: of those, repeats;
    ``throttled``: 429 / TRAFFIC_QUOTA_EXCEEDED answers; ``possibly_charged``: failed attempts
    the server may have billed (timeout, connection lost, malformed, too large, wrong number);
    ``possibly_charged_numbers``: the numbers concerned; ``failures``: failed attempts by kind
    (the keys of :data:`pd_hlr.classify.KINDS`); ``repaired``: answers whose text held lone
    surrogates, replaced by U+FFFD; ``rate``: the requests/second the limiter allows now (None:
    unthrottled); ``rate_peak``: the most answers counted in one second; ``limit_signals``:
    429s, ``Retry-After``s and quota answers the adaptive limiter reacted to (or counted as one
    congestion event).

    Example:
        >>> ClientStats(requests=3, possibly_charged_numbers=frozenset({"+441302778473"}))
        ClientStats(requests=3, retries=0, throttled=0, possibly_charged=0 (1 numbers), failures={}, repaired=0)
    """  # noqa: E501

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    possibly_charged: int = 0
    possibly_charged_numbers: frozenset[str] = field(default_factory=frozenset)
    failures: dict[str, int] = field(default_factory=dict)
    repaired: int = 0
    rate: float | None = None
    rate_peak: float = 0.0
    limit_signals: int = 0

    def __repr__(self) -> str:
        numbers = len(self.possibly_charged_numbers)
        return (
            f"ClientStats(requests={self.requests}, retries={self.retries}, "
            f"throttled={self.throttled}, possibly_charged={self.possibly_charged} "
            f"({numbers} numbers), failures={dict(sorted(self.failures.items()))}, "
            f"repaired={self.repaired}"
            + ("" if self.rate is None else f", rate={self.rate:.3g}/s")
            + ")"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython / notebooks
        printer.text(repr(self))


#: The caller waiting for its workers wakes this often (seconds) to run signal handlers.
_WAKE = 0.05


def _wait(done: threading.Event) -> None:
    """Wait for ``done``, waking every :data:`_WAKE` s (a Ctrl-C is acted on within it)."""
    while not done.wait(_WAKE):
        pass


class _Worker(NamedTuple):
    """One ``lookup_many`` worker: its thread, and the event it sets when it has ended."""

    thread: threading.Thread
    done: threading.Event


class _Stopped(Exception):
    """Internal: the run was stopped before this number was (re)sent."""


@dataclass
class _Run:
    """Shared state of one ``lookup_many`` call (or one ``lookup``)."""

    on_result: OnResult | None = None
    breaker: CircuitBreaker | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    fatal: BaseException | None = None
    warned: set[str] = field(default_factory=set)

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.fatal is None:
                self.fatal = exc
        self.stop.set()

    def first(self, kind: str) -> bool:
        """True the first time ``kind`` is seen in this run (one WARNING per kind)."""
        with self.lock:
            if kind in self.warned:
                return False
            self.warned.add(kind)
            return True


# ------------------------------------------------------------------------------- checks
def _check_base_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "base_url must be an absolute https:// URL such as "
            f"{DEFAULT_BASE_URL!r}, got scheme {parts.scheme!r}"
        )
    if parts.username or parts.password:
        raise ValueError(
            "base_url must not contain credentials; pass the API token with token= or "
            f"the {TOKEN_ENV} environment variable"
        )
    if parts.query or parts.fragment:
        raise ValueError("base_url must not have a query string or fragment")
    _ = parts.port  # raises ValueError on a malformed port
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"refusing plain http:// to {parts.hostname!r}: the API token would travel "
            "unencrypted. Use https://, or http:// only for a loopback sandbox "
            "(127.0.0.0/8, ::1, localhost)."
        )
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


def _check_timeout(timeout: float | tuple[float, float]) -> tuple[float, float]:
    pair = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    if len(pair) != 2:
        raise ValueError(f"timeout must be seconds > 0 or a (connect, read) pair, got {timeout!r}")
    return _positive("timeout", pair[0]), _positive("timeout", pair[1])


def _option(name: str, value: object) -> object:
    if name == "route":
        return check_route(value)
    if isinstance(value, str) or not hasattr(value, "__bool__"):
        raise TypeError(f"{name} must be True, False or None, got {value!r}")
    return bool(value)


# ------------------------------------------------------------------------------- the client
class HLRClient:
    """Client for Provero's ``POST /api/validate/phone`` (one number per request).

    Args:
        token: API token; default ``$PROVERO_API_TOKEN``. It must be printable ASCII/Latin-1
            (else ``ValueError``, which does not echo it). If neither is set, the first lookup
            raises :class:`~pd_hlr.errors.AuthenticationError` naming the variable.
        base_url: default ``$PROVERO_BASE_URL``, else ``https://api.provero.io``. Must be
            https; plain http only for loopback hosts (a local sandbox), else ``ValueError``.
        timeout: ``(connect, read)`` seconds per socket operation, or one number for both.
        max_retries: a shortcut for the same field of ``retry``.
        backoff_factor: a shortcut for the same field of ``retry``.
        backoff_max: a shortcut for the same field of ``retry``.
        rate_limit: the most requests/second shared by all threads of this client, a hard
            ceiling (None = none). The limiter runs at 97% of it (see ``RATE_HEADROOM``).
        adaptive: pace requests at the rate the account accepts, found from the server's limit
            signals (429, ``Retry-After``, ``TRAFFIC_QUOTA_EXCEEDED``): unthrottled (or at
            ``rate_limit``) until the first signal, then a multiplicative decrease and a CUBIC
            climb (see :mod:`pd_hlr.adaptive`); never above ``rate_limit``. False: a fixed
            ``rate_limit`` (or none), whatever the server says.
        workers: default thread count of :meth:`lookup_many`.
        retry: the :class:`~pd_hlr.retry.RetryPolicy` (retries, backoff, the longest
            ``Retry-After`` honoured, the circuit breaker); see :mod:`pd_hlr.classify` for what is
            retried and what may have been charged.
        deadline: seconds one attempt may take in all (connect + the whole answer), whatever
            the server trickles; then it fails as a ``timeout`` (possibly charged).
        max_answer_bytes: the longest answer read (decoded); a longer one fails as
            ``too_large`` (possibly charged) without being read further.

    In :meth:`lookup_many`, 401/402, a ``Retry-After`` beyond ``retry.retry_after_max`` and
    the circuit breaker stop the run: every worker checks a shared stop event before each
    request and each retry, no queued number is taken any more, and the error carries
    ``.outcomes`` (all delivered to ``on_result``) and ``.pending``. Per-number detail is
    logged at DEBUG; at most one WARNING per failure kind per run.

    Example:
        >>> HLRClient(token="t", base_url="http://127.0.0.1:8787", rate_limit=50)
        HLRClient(base_url='http://127.0.0.1:8787', token=***, workers=8, rate_limit=50)
    """

    def __init__(
        self,
        token: str | None = None,
        base_url: str | None = None,
        timeout: float | tuple[float, float] = (5, 30),
        max_retries: int | None = None,
        rate_limit: float | None = None,
        workers: int = DEFAULT_WORKERS,
        backoff_factor: float | None = None,
        backoff_max: float | None = None,
        *,
        retry: RetryPolicy | None = None,
        deadline: float = 60.0,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        adaptive: bool = True,
    ) -> None:
        self._token, problem = read_token(token)
        del token  # no frame local keeps the token (tracebacks with locals stay clean)
        if problem:
            raise ValueError(problem)
        self.base_url = _check_base_url(
            base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        )
        self.url = self.base_url + ENDPOINT_PATH
        self.timeout = _check_timeout(timeout)
        self.deadline = _positive("deadline", deadline)
        if isinstance(max_answer_bytes, bool) or not isinstance(max_answer_bytes, int):
            raise ValueError(f"max_answer_bytes must be an int, got {max_answer_bytes!r}")
        if max_answer_bytes < 1024:
            raise ValueError(f"max_answer_bytes must be >= 1024, got {max_answer_bytes!r}")
        self.max_answer_bytes = max_answer_bytes
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        shortcuts: dict[str, Any] = {
            "max_retries": max_retries,
            "backoff_factor": backoff_factor,
            "backoff_max": backoff_max,
        }
        self.retry = dataclasses.replace(
            retry or RetryPolicy(), **{k: v for k, v in shortcuts.items() if v is not None}
        )
        self.workers = workers
        self.rate_limit = rate_limit
        ceiling = rate_limit * RATE_HEADROOM if rate_limit else None
        self._limiter: AdaptiveRateLimiter | RateLimiter | None
        if adaptive:
            self._limiter = AdaptiveRateLimiter(ceiling)
        else:
            self._limiter = RateLimiter(ceiling) if ceiling else None
        if self._limiter is not None:  # a wait for a slot ends early when the run stops
            self._limiter._sleep = self._sleep  # type: ignore[method-assign]
        self._where = f"Provero at {self.base_url}"
        self._transport = Transport(
            self.url,
            self._token,
            timeout=self.timeout,
            deadline=self.deadline,
            max_answer_bytes=max_answer_bytes,
            pool_size=workers,
        )
        self._local = threading.local()

        self._stats_lock = threading.Lock()
        self._echo_warned = False
        self.reset_stats()

    # ---------------------------------------------------------------- plumbing
    @property
    def max_retries(self) -> int:
        """``retry.max_retries``."""
        return self.retry.max_retries

    def __repr__(self) -> str:
        token = "***" if getattr(self, "_token", None) else None
        base_url, workers = getattr(self, "base_url", None), getattr(self, "workers", None)
        rate_limit = getattr(self, "rate_limit", None)
        return (
            f"HLRClient(base_url={base_url!r}, token={token}, workers={workers}, "
            f"rate_limit={rate_limit!r})"
        )

    def __reduce__(self) -> Any:
        raise TypeError("an HLRClient cannot be pickled (it holds the API token)")

    def __enter__(self) -> HLRClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every HTTP session this client opened (it stays usable; new ones open lazily).

        Example:
            >>> HLRClient(token="t").close()
        """
        self._transport.close()

    def _clock(self) -> float:
        """Monotonic seconds (replace in tests)."""
        return time.monotonic()

    def _sleep(self, seconds: float) -> None:
        """Backoff pause (replace in tests). Inside ``lookup_many`` it ends early on a stop."""
        stop: threading.Event | None = getattr(self._local, "stop", None)
        if stop is not None:
            stop.wait(seconds)
        else:
            time.sleep(seconds)

    def _require_token(self) -> None:
        if self._token is None:
            raise AuthenticationError(
                f"No Provero API token: pass token=... to HLRClient or set the {TOKEN_ENV} "
                "environment variable."
            )

    def _scrub(self, exc: BaseException) -> BaseException:
        """No exception leaving the client may hold the token, whatever the server echoed."""
        return scrub_exception(exc, self._token)

    # ---------------------------------------------------------------- stats
    def _scrub_answer(self, phone: str, result: dict[str, Any]) -> dict[str, Any]:
        """The result with the token replaced by ``***`` wherever a gateway echoed it (before
        it is journalled, cached or returned); a warning once per client."""
        result, echoed = hide_echoed_token(result, self._token)
        if not echoed:
            return result
        logger.debug("%s: the token was echoed in the answer; replaced by ***", phone)
        with self._stats_lock:
            first, self._echo_warned = not self._echo_warned, True
        if first:
            logger.warning(
                "%s echoed the API token in an answer (a gateway or proxy copying the "
                "Authorization header): it was replaced by *** before the answer was kept. "
                "Shown once per client.",
                self._where,
            )
        return result

    @property
    def stats(self) -> ClientStats:
        """Snapshot of the counters (see :class:`ClientStats`).

        Example:
            >>> HLRClient(token="t").stats.requests
            0
        """
        with self._stats_lock:
            return ClientStats(
                requests=self._requests,
                retries=self._retries,
                throttled=self._failures.get("throttled", 0),
                possibly_charged=self._possibly_charged,
                possibly_charged_numbers=frozenset(self._charged_numbers),
                failures=dict(self._failures),
                repaired=self._repaired,
                **self._rate_stats(),
            )

    def reset_stats(self) -> None:
        """Zero the counters.

        Example:
            >>> HLRClient(token="t").reset_stats()
        """
        with self._stats_lock:
            self._requests = self._retries = self._possibly_charged = self._repaired = 0
            self._charged_numbers: set[str] = set()
            self._failures: dict[str, int] = {}
            #: Failure kinds already warned about by single lookups (one WARNING per kind).
            self._warned: set[str] = set()
        if isinstance(self._limiter, AdaptiveRateLimiter):
            self._limiter.reset_peak()

    def current_rate(self) -> float | None:
        """The requests/second the limiter allows now; None when unthrottled (no limit
        signal met yet and no ``rate_limit``).

        Example:
            >>> HLRClient(token="t").current_rate() is None
            True
            >>> HLRClient(token="t", rate_limit=100).current_rate()
            97.0
        """
        return getattr(self._limiter, "rate", None)

    def _rate_stats(self) -> dict[str, Any]:
        limiter = self._limiter
        if isinstance(limiter, AdaptiveRateLimiter):
            state = limiter.state()
            return {"rate": state.rate, "rate_peak": state.peak, "limit_signals": state.signals}
        return {"rate": getattr(limiter, "rate", None)}

    def _observe(self, outcome: Answer | Failure) -> None:
        """Tell an adaptive limiter what the server said: a limit signal (a 429, a
        ``TRAFFIC_QUOTA_EXCEEDED`` result, any ``Retry-After``), or an answer it accepted."""
        limiter = self._limiter
        if not isinstance(limiter, AdaptiveRateLimiter):
            return
        if isinstance(outcome, Answer):
            limiter.success()
        elif outcome.kind == "throttled" or outcome.retry_after is not None:
            if limiter.throttled():
                logger.debug("limit signal (%s): rate now %s/s", outcome.kind, limiter.rate)
        elif outcome.error.status is not None:
            limiter.success()

    # ---------------------------------------------------------------- one attempt
    def _payload(self, phone: str, options: dict[str, object]) -> bytes:
        if not isinstance(phone, str):
            raise TypeError(f"phone must be a str, got {type(phone).__name__}")
        return json.dumps({"phone": phone, **options}, separators=(",", ":")).encode()

    def _payloads(self, numbers: list[str], options: dict[str, object]) -> dict[str, bytes]:
        """``{number: _payload(number, options)}``; a number of ``+`` and ASCII digits (what
        JSON writes as it is) is put between the bytes before and after it, not encoded."""
        before = b'{"phone":"'
        after = self._payload("", options)[len(before) :]
        plain, payload = _PLAIN_NUMBER.fullmatch, self._payload
        return {
            n: before + n.encode() + after if type(n) is str and plain(n) else payload(n, options)
            for n in numbers
        }

    @staticmethod
    def _options(**options: object) -> dict[str, object]:
        return {k: _option(k, v) for k, v in options.items() if v is not None}

    def _attempt(self, payload: bytes, phone: str) -> Answer | Failure:
        """One HTTP attempt (bounded by ``deadline`` and ``max_answer_bytes``), classified."""
        reply = self._transport.post(payload)
        if isinstance(reply, NoReply):
            return classify_exception(reply.error, self._where, expired=reply.expired)
        if not reply.complete and reply.status == 200:
            return too_large(reply.status, self.max_answer_bytes, self._where)
        outcome = classify_answer(reply.status, reply.body, reply.headers, phone)
        if type(outcome) is Answer and self._may_hold_token(reply.body):
            outcome = Answer(self._scrub_answer(phone, outcome.result), outcome.repaired)
        return outcome

    def _may_hold_token(self, body: bytes) -> bool:
        """Whether an answer's decoded text can hold the token: only if its bytes do, or an
        escape (``\\u0074``...) could spell it. Otherwise its result needs no walk."""
        return self._token is not None and (
            b"\\" in body or self._token.reveal().encode() in body
        )

    # ---------------------------------------------------------------- one number
    def _failed(self, run: _Run, phone: str, failure: Failure, attempt: int) -> None:
        """Count and log one failed attempt."""
        kind = KINDS[failure.kind]
        with self._stats_lock:
            self._failures[kind.name] = self._failures.get(kind.name, 0) + 1
            if kind.possibly_charged:
                self._possibly_charged += 1
                self._charged_numbers.add(phone)
        logger.debug("%s: attempt %d: %s [%s]", phone, attempt, failure.error, kind.name)
        if kind.possibly_charged and run.first(kind.name):
            logger.warning(
                "%s failed after the request was sent (%s): the lookup may have been charged; "
                "counted in client.stats.possibly_charged. Shown once per run; details at "
                "DEBUG (logger pd_hlr.client).",
                self._where,
                kind.failure.replace("`", ""),
            )

    def _gave_up(self, run: _Run, phone: str, failure: Failure, attempt: int) -> None:
        logger.debug("%s: gave up after %d attempts: %s", phone, attempt, failure.error)
        if failure.kind != "validation" and run.first(failure.kind):  # a 422 is a verdict
            logger.warning(
                "%s: a number failed after %d attempt%s (%s); it is returned as an error and "
                "not cached. Shown once per run; details at DEBUG (logger pd_hlr.client).",
                self._where,
                attempt,
                "" if attempt == 1 else "s",
                KINDS[failure.kind].failure.replace("`", ""),
            )

    def _lookup(self, phone: str, payload: bytes, run: _Run) -> dict[str, Any]:
        attempt = 0
        while True:
            attempt += 1
            if run.stop.is_set():
                raise _Stopped
            if self._limiter is not None:
                self._limiter.acquire()
                if run.stop.is_set():
                    raise _Stopped
            with self._stats_lock:
                self._requests += 1
            outcome = self._attempt(payload, phone)
            self._observe(outcome)
            if isinstance(outcome, Answer):
                if run.breaker is not None:
                    run.breaker.success()
                if outcome.repaired:
                    with self._stats_lock:
                        self._repaired += 1
                    logger.debug(
                        "%s: %d string(s) with lone surrogates replaced by U+FFFD",
                        phone,
                        outcome.repaired,
                    )
                return outcome.result
            failure = outcome
            error = failure.error
            self._scrub(error)
            self._failed(run, phone, failure, attempt)
            tripped = run.breaker.record(failure) if run.breaker is not None else None
            decision = self.retry.decide(failure, attempt)
            if decision.action == "stop":
                assert decision.error is not None
                self._scrub(decision.error)
                raise decision.error from failure.cause
            if tripped is not None:
                run.fail(self._scrub(tripped))
                if decision.action == "retry":
                    raise _Stopped
            if decision.action == "give_up":
                error.attempts = attempt
                if failure.retry:
                    tries = f"{attempt} attempt{'' if attempt == 1 else 's'}"
                    error.args = (f"{error} (gave up after {tries})",)
                self._gave_up(run, phone, failure, attempt)
                raise error from failure.cause
            with self._stats_lock:
                self._retries += 1
            logger.debug(
                "%s: retry %d/%d in %.2fs", phone, attempt, self.retry.max_retries, decision.delay
            )
            self._sleep(decision.delay)

    # ---------------------------------------------------------------- public API
    def lookup(
        self,
        phone: str,
        *,
        detailed: bool | None = None,
        roaming: bool | None = None,
        route: str | None = None,
        msisdn: bool | None = None,
    ) -> dict[str, Any]:
        """Look up one number; return its result object (the element of ``results``).

        Options left at None are not sent. Raises an :class:`~pd_hlr.errors.HLRError`. Single
        lookups log at most one WARNING per failure kind until :meth:`reset_stats`.

        Example:
            >>> client.lookup("+441302778473", detailed=True, roaming=True)["to"]
            '+441302778473'
        """
        try:
            options = self._options(detailed=detailed, roaming=roaming, route=route, msisdn=msisdn)
            payload = self._payload(phone, options)
            self._require_token()
            return self._lookup(phone, payload, _Run(warned=self._warned))
        except BaseException as exc:
            self._scrub(exc)
            raise

    def lookup_many(
        self,
        numbers: Iterable[str],
        *,
        detailed: bool | None = None,
        roaming: bool | None = None,
        route: str | None = None,
        msisdn: bool | None = None,
        on_result: OnResult | None = None,
        workers: int | None = None,
    ) -> dict[str, Outcome]:
        """Look up many numbers concurrently; return ``{number: result dict or HLRError}``.

        Duplicates are looked up once (first-seen order kept). ``on_result(number, outcome)``
        is called from the worker thread as each outcome arrives. Per-number failures
        (validation, errors after retries) are outcomes; errors with ``stops_run`` (401, 402,
        a too-long ``Retry-After``, the circuit breaker) stop the whole run and raise with
        ``.outcomes`` and ``.pending``. If ``on_result`` raises, the run stops the same way and
        that exception propagates.

        Example:
            >>> out = client.lookup_many(["+441302778473", "+441302778474"])
            >>> sorted(out), out["+441302778473"]["live"]
            (['+441302778473', '+441302778474'], True)
        """
        try:
            return self._lookup_many(
                numbers,
                self._options(detailed=detailed, roaming=roaming, route=route, msisdn=msisdn),
                on_result,
                self.workers if workers is None else workers,
            )
        except BaseException as exc:
            self._scrub(exc)
            raise

    def _lookup_many(
        self,
        numbers: Iterable[str],
        options: dict[str, object],
        on_result: OnResult | None,
        n_workers: int,
    ) -> dict[str, Outcome]:
        keys = list(dict.fromkeys(numbers))
        payloads = self._payloads(keys, options)
        if not isinstance(n_workers, int) or n_workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {n_workers!r}")
        try:
            self._require_token()
        except AuthenticationError as exc:
            exc.pending = keys
            raise
        if not keys:
            return {}

        run = _Run(on_result=on_result, breaker=self.retry.breaker())
        started = self._clock()
        todo = deque(keys)  # the workers' one shared queue: popleft is atomic, takes no lock
        # Not daemons (as a ThreadPoolExecutor's): an exiting interpreter waits for the
        # answers in flight to be delivered, paid as they are.
        workers: list[_Worker] = []
        for k in range(min(n_workers, len(keys))):
            done = threading.Event()
            thread = threading.Thread(
                target=self._worker, args=(run, todo, payloads, done), name=f"pd_hlr_{k}"
            )
            workers.append(_Worker(thread, done))
        try:
            self._drive(run, workers)
        finally:
            self._transport.close_dead_sessions()
        logger.debug(
            "lookup_many: %d outcomes of %d numbers in %.2fs",
            len(run.outcomes),
            len(keys),
            self._clock() - started,
        )
        if run.fatal is not None:
            fatal = run.fatal
            if isinstance(fatal, HLRError):
                fatal.outcomes = dict(run.outcomes)
                fatal.pending = [n for n in keys if n not in run.outcomes]
            raise fatal
        return {n: run.outcomes[n] for n in keys}

    @staticmethod
    def _drive(run: _Run, workers: list[_Worker]) -> None:
        """Start the workers and wait for them; on an exception here (Ctrl-C, SIGTERM) stop
        feeding at once, then wait: in-flight numbers finish and are delivered first, however
        many more Ctrl-Cs come meanwhile (the first one is raised).

        Each worker's own ``done`` event is waited for, not ``Thread.join``: on Python 3.11 a
        Ctrl-C that interrupts ``join`` can mark a thread that is still running as stopped
        (the bpo-45274 fix), and a later ``join`` would then not wait for its answer. The wait
        wakes every :data:`_WAKE` seconds, so a signal is acted on even where it does not
        interrupt a blocked lock wait."""
        first: BaseException | None = None
        try:
            for worker in workers:
                worker.thread.start()
            for worker in workers:
                _wait(worker.done)
        except BaseException as exc:  # KeyboardInterrupt in the caller: stop like a 401/402
            first = exc
        while True:  # the answers in flight are paid: delivered, however often interrupted
            try:
                if first is not None:
                    run.stop.set()
                for worker in workers:
                    if worker.thread.ident is not None:  # started: it sets done when it ends
                        _wait(worker.done)
                break
            except BaseException as exc:  # a second Ctrl-C: the first one is obeyed
                first = first if first is not None else exc
        if first is not None:
            raise first
        for worker in workers:  # all delivered; let the threads end (their sessions close)
            worker.thread.join()

    def _worker(
        self, run: _Run, todo: deque[str], payloads: dict[str, bytes], done: threading.Event
    ) -> None:
        """One worker thread: take the next number until none is left or the run stops."""
        try:
            self._local.stop = run.stop  # a backoff or rate wait in this thread ends on a stop
            stopped, take = run.stop.is_set, todo.popleft
            while not stopped():
                try:
                    number = take()
                except IndexError:
                    return
                self._work(run, number, payloads[number])
        finally:
            self._local.stop = None
            done.set()

    def _work(self, run: _Run, number: str, payload: bytes) -> None:
        try:
            try:
                outcome: Outcome = self._lookup(number, payload, run)
            except _Stopped:
                return
            except HLRError as exc:
                if exc.stops_run:
                    run.fail(exc)
                    return
                outcome = exc.with_traceback(None)  # an outcome, not a crash: keep no frames
            run.outcomes[number] = outcome  # one item set: atomic, no lock needed
            if run.on_result is not None:
                run.on_result(number, outcome)
        except BaseException as exc:  # a bug or a failing on_result: stop everything
            run.fail(exc)
