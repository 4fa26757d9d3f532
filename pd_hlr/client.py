"""``HLRClient``: the only code in pd-hlr that talks HTTP to Provero.

Example:
    >>> from pd_hlr.client import HLRClient
    >>> with HLRClient(token="demo", base_url="http://127.0.0.1:8787") as client:  # doctest: +SKIP
    ...     client.lookup("+441302778473", detailed=True)["status"]["groupName"]
    'DELIVERED'
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from pd_hlr._spec import DEFAULT_BASE_URL, ENDPOINT_PATH
from pd_hlr.errors import (
    APIError,
    AuthenticationError,
    HLRError,
    RateLimitError,
    TransportError,
    error_from_response,
    excerpt,
    parse_retry_after,
)
from pd_hlr.ratelimit import RateLimiter
from pd_hlr.settings import BASE_URL_ENV, TOKEN_ENV

__all__ = ["BASE_URL_ENV", "TOKEN_ENV", "ClientStats", "HLRClient", "Outcome"]

logger = logging.getLogger("pd_hlr.client")

#: Statuses retried with backoff (server trouble; the sandbox does not charge them).
RETRY_STATUSES = frozenset({500, 502, 503, 504})

#: The limiter starts this much below ``rate_limit``: slots exactly 1/rate apart sit on the
#: edge of a server's sliding 1-second window, and tens of ms of network/scheduling jitter
#: (measured against the sandbox at 50 ms latency) tip a request over it now and then.
RATE_HEADROOM = 0.97

#: What ``lookup_many`` gives per number: the result object, or the error that ended it.
Outcome = dict[str, Any] | HLRError
OnResult = Callable[[str, Outcome], None]


class _Secret:
    """Holds the token; its repr never shows it (safe in debuggers and ``capture_locals``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


class _BearerAuth(AuthBase):
    """Adds ``Authorization: Bearer …`` to each request (kept out of ``session.headers``)."""

    def __init__(self, secret: _Secret) -> None:
        self._secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = "Bearer " + self._secret.reveal()
        return request

    def __repr__(self) -> str:
        return "_BearerAuth('***')"


@dataclass(frozen=True)
class ClientStats:
    """A snapshot of one client's counters.

    ``requests``: HTTP requests sent (retries included); ``retries``: of those, repeats;
    ``throttled``: 429 / TRAFFIC_QUOTA_EXCEEDED answers; ``possibly_charged``: failures after
    the request went out (read timeout, dropped connection, malformed 200), each of which the
    server may have billed; ``possibly_charged_numbers``: the numbers concerned.

    Example:
        >>> ClientStats().possibly_charged
        0
    """

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    possibly_charged: int = 0
    possibly_charged_numbers: frozenset[str] = field(default_factory=frozenset)


@dataclass
class _Failure:
    """One failed attempt, classified by the retry policy."""

    error: HLRError
    retry: bool
    possibly_charged: bool = False
    retry_after: float | None = None
    cause: BaseException | None = None


class _Stopped(Exception):
    """Internal: the run was stopped before this number was (re)sent."""


@dataclass
class _Run:
    """Shared state of one ``lookup_many`` call."""

    on_result: OnResult | None
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    fatal: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.fatal is None:
                self.fatal = exc
        self.stop.set()


def _defuse(exc: BaseException) -> None:
    """Make a requests/urllib3 exception safe to chain as a ``__cause__``.

    Its prepared request holds the Authorization header, and the frames of its traceback (and
    of its own causes) hold the headers as locals; keep the exceptions and their messages,
    drop the request objects and the frames.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, requests.RequestException):
            item.request = None
            item.response = None
        item.__traceback__ = None
        todo.extend((item.__cause__, item.__context__))
        todo.extend(a for a in item.args if isinstance(a, BaseException))
        reason = getattr(item, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_token(token: str | None) -> tuple[_Secret | None, str | None]:
    """(secret or None, problem or None); never raises, so no traceback holds the token."""
    raw = token if token is not None else os.environ.get(TOKEN_ENV)
    raw = raw.strip() if raw else None
    if not raw:
        return None, None
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        # Checked here: requests would echo the header value in its InvalidHeader message.
        return None, "the API token contains whitespace or control characters"
    return _Secret(raw), None


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
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(
            f"refusing plain http:// to {parts.hostname!r}: the API token would travel "
            "unencrypted. Use https://, or http:// only for a loopback sandbox "
            "(127.0.0.0/8, ::1, localhost)."
        )
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _check_timeout(timeout: float | tuple[float, float]) -> tuple[float, float]:
    pair = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    if len(pair) != 2 or not all(isinstance(t, int | float) and t > 0 for t in pair):
        raise ValueError(f"timeout must be seconds > 0 or a (connect, read) pair, got {timeout!r}")
    return float(pair[0]), float(pair[1])


def _option(name: str, value: object) -> object:
    if name == "route":
        if not isinstance(value, str):
            raise TypeError(f"route must be a string, got {type(value).__name__}")
        return value
    if isinstance(value, str) or not hasattr(value, "__bool__"):
        raise TypeError(f"{name} must be True, False or None, got {value!r}")
    return bool(value)


class HLRClient:
    """Client for Provero's ``POST /api/validate/phone`` (one number per request).

    Args:
        token: API token; default ``$PROVERO_API_TOKEN``. If neither is set, the first lookup
            raises :class:`~pd_hlr.errors.AuthenticationError` naming the variable.
        base_url: default ``$PROVERO_BASE_URL``, else ``https://api.provero.io``. Must be
            https; plain http only for loopback hosts (a local sandbox), else ``ValueError``.
        timeout: ``(connect, read)`` seconds, or one number for both.
        max_retries: retries per number after the first attempt.
        rate_limit: requests/second shared by all threads of this client (None = no limit).
            The limiter runs at 97% of it (see ``RATE_HEADROOM``).
        workers: default thread count of :meth:`lookup_many`.
        backoff_factor, backoff_max: exponential backoff with full jitter: before retry *n*
            (1-based) sleep ``uniform(0, min(backoff_max, backoff_factor * 2**(n-1)))``.

    Retry policy (money-aware; each lookup costs money when the server answers it):

    * Retried, not charged: connection failures before the request was sent (refused, DNS,
      connect timeout); 500/502/503/504; 429 and ``TRAFFIC_QUOTA_EXCEEDED`` results. A
      ``Retry-After`` (seconds or HTTP-date, on 429 or 5xx) is waited exactly, capped at
      :attr:`retry_after_max`; otherwise exponential backoff with full jitter.
    * Retried, **possibly charged**: read timeout, connection dropped after sending, a 200 whose
      body is cut off or malformed. The server may have billed these; each one is counted in
      ``stats.possibly_charged`` and its number kept in ``stats.possibly_charged_numbers``.
    * Never retried: 401/403 (AuthenticationError), 402 (InsufficientBalanceError), validation
      errors, ``requestError`` bodies, other unexpected answers, TLS errors.
    * Out of retries: the last error (APIError with status and body excerpt for 5xx,
      TransportError for connection/timeout, RateLimitError for 429), ``.attempts`` set.
    * 401/402 in :meth:`lookup_many` stop the run: every worker checks a shared stop event
      before each request and each retry, queued numbers are cancelled, and the error carries
      ``.outcomes`` (all delivered to ``on_result``) and ``.pending``.

    Example:
        >>> client = HLRClient(token="t", base_url="http://127.0.0.1:8787", rate_limit=50)
        >>> client
        HLRClient(base_url='http://127.0.0.1:8787', token=***, workers=8, rate_limit=50)
    """

    #: Upper bound on a server-requested ``Retry-After`` pause (seconds).
    retry_after_max: float = 300.0

    def __init__(
        self,
        token: str | None = None,
        base_url: str | None = None,
        timeout: float | tuple[float, float] = (5, 30),
        max_retries: int = 5,
        rate_limit: float | None = None,
        workers: int = 8,
        backoff_factor: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self._token, problem = _read_token(token)
        del token  # no frame local keeps the token (tracebacks with locals stay clean)
        if problem:
            raise ValueError(problem)
        self.base_url = _check_base_url(
            base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        )
        self.url = self.base_url + ENDPOINT_PATH
        self.timeout = _check_timeout(timeout)
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        if backoff_factor < 0 or backoff_max < 0:
            raise ValueError("backoff_factor and backoff_max must be >= 0")
        self.max_retries = max_retries
        self.workers = workers
        self.backoff_factor = float(backoff_factor)
        self.backoff_max = float(backoff_max)
        self.rate_limit = rate_limit
        self._limiter = RateLimiter(rate_limit * RATE_HEADROOM) if rate_limit else None
        self._random = random.Random()
        self._loopback = _is_loopback(urlsplit(self.base_url).hostname or "")

        self._local = threading.local()
        self._sessions_lock = threading.Lock()
        self._sessions: list[tuple[threading.Thread, requests.Session]] = []
        self._generation = 0

        self._stats_lock = threading.Lock()
        self._requests = 0
        self._retries = 0
        self._throttled = 0
        self._possibly_charged = 0
        self._charged_numbers: set[str] = set()

    # ---------------------------------------------------------------- plumbing
    def __repr__(self) -> str:
        token = "***" if getattr(self, "_token", None) else None
        base_url, workers = getattr(self, "base_url", None), getattr(self, "workers", None)
        rate_limit = getattr(self, "rate_limit", None)
        return (
            f"HLRClient(base_url={base_url!r}, token={token}, workers={workers}, "
            f"rate_limit={rate_limit!r})"
        )

    def __enter__(self) -> HLRClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every HTTP session this client opened (it stays usable; new ones open lazily).

        Example:
            >>> HLRClient(token="t").close()
        """
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
            self._generation += 1
        for _, session in sessions:
            session.close()

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

    def _session(self) -> requests.Session:
        """This thread's keep-alive session (one per thread, created on first use)."""
        local = self._local
        session: requests.Session | None = getattr(local, "session", None)
        if session is not None and local.generation == self._generation:
            return session
        assert self._token is not None
        session = requests.Session()
        # max_retries=0: urllib3 must not retry anything by itself. Every retry decision is
        # made per failure in _lookup, so each attempt passes the rate limiter, the stop event
        # and the stats; a POST is never silently resent.
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.workers, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.auth = _BearerAuth(self._token)
        session.headers.update({"Accept": "application/json", "Content-Type": "application/json"})
        if self._loopback:
            session.trust_env = False  # never send sandbox traffic through an env proxy
        with self._sessions_lock:
            self._sessions.append((threading.current_thread(), session))
            local.generation = self._generation
        local.session = session
        return session

    def _close_dead_sessions(self) -> None:
        with self._sessions_lock:
            dead = [(t, s) for t, s in self._sessions if not t.is_alive()]
            self._sessions = [(t, s) for t, s in self._sessions if t.is_alive()]
        for _, session in dead:
            session.close()

    def _require_token(self) -> None:
        if self._token is None:
            raise AuthenticationError(
                f"No Provero API token: pass token=... to HLRClient or set the {TOKEN_ENV} "
                "environment variable."
            )

    def _scrub(self, exc: HLRError) -> HLRError:
        """Belt and braces: no error text may contain the token, whatever the server echoed."""
        if self._token is not None:
            secret = self._token.reveal()
            if exc.args and secret in str(exc.args[0]):
                exc.args = (str(exc.args[0]).replace(secret, "***"),)
            if exc.body_excerpt and secret in exc.body_excerpt:
                exc.body_excerpt = exc.body_excerpt.replace(secret, "***")
        return exc

    # ---------------------------------------------------------------- stats
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
                throttled=self._throttled,
                possibly_charged=self._possibly_charged,
                possibly_charged_numbers=frozenset(self._charged_numbers),
            )

    def reset_stats(self) -> None:
        """Zero the counters.

        Example:
            >>> HLRClient(token="t").reset_stats()
        """
        with self._stats_lock:
            self._requests = self._retries = self._throttled = self._possibly_charged = 0
            self._charged_numbers = set()

    # ---------------------------------------------------------------- one request
    def _payload(
        self, phone: str, options: dict[str, object]
    ) -> bytes:  # options already validated
        if not isinstance(phone, str):
            raise TypeError(f"phone must be a str, got {type(phone).__name__}")
        return json.dumps({"phone": phone, **options}, separators=(",", ":")).encode()

    @staticmethod
    def _options(**options: object) -> dict[str, object]:
        return {k: _option(k, v) for k, v in options.items() if v is not None}

    def _transport_failure(self, exc: requests.RequestException) -> _Failure:
        _defuse(exc)
        reason: object = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        detail = excerpt(f"{type(exc).__name__}: {reason if reason is not None else exc}", 160)
        where = f"Provero at {self.base_url}"

        def fail(kind: str, retry: bool, charged: bool) -> _Failure:
            msg = f"{kind} talking to {where} ({detail})"
            return _Failure(TransportError(msg), retry=retry, possibly_charged=charged, cause=exc)

        if isinstance(exc, requests.exceptions.SSLError):
            return fail("TLS error", retry=False, charged=False)
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return fail("connect timeout", retry=True, charged=False)
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return fail("read timeout (the lookup may have been charged)", True, True)
        if isinstance(exc, requests.exceptions.ProxyError):
            return fail("proxy error", retry=True, charged=False)
        if isinstance(exc, requests.exceptions.ConnectionError):
            if isinstance(reason, NewConnectionError | ConnectTimeoutError):
                return fail("could not connect", retry=True, charged=False)
            return fail(
                "connection lost after sending (the lookup may have been charged)", True, True
            )
        if isinstance(
            exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
        ):
            return fail("answer cut off (the lookup may have been charged)", True, True)
        return fail("request failed", retry=False, charged=False)

    def _attempt(self, payload: bytes) -> dict[str, Any] | _Failure:
        session = self._session()
        try:
            response = session.post(
                self.url, data=payload, timeout=self.timeout, allow_redirects=False
            )
            body = response.content
        except requests.RequestException as exc:
            return self._transport_failure(exc)
        status = response.status_code
        error = error_from_response(status, body, response.headers)
        if error is None:
            return json.loads(body)["results"][0]
        if isinstance(error, RateLimitError):
            return _Failure(error, retry=True, retry_after=error.retry_after)
        if isinstance(error, APIError) and status in RETRY_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return _Failure(error, retry=True, retry_after=retry_after)
        if isinstance(error, APIError) and status == 200 and error.malformed:
            return _Failure(error, retry=True, possibly_charged=True)
        return _Failure(error, retry=False)

    def _backoff(self, retry_number: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        ceiling = min(self.backoff_max, self.backoff_factor * 2.0 ** min(retry_number - 1, 60))
        return self._random.uniform(0.0, ceiling)

    def _lookup(self, phone: str, payload: bytes, stop: threading.Event | None) -> dict[str, Any]:
        attempt = 0
        while True:
            attempt += 1
            if stop is not None and stop.is_set():
                raise _Stopped
            if self._limiter is not None:
                self._limiter.acquire()
                if stop is not None and stop.is_set():
                    raise _Stopped
            with self._stats_lock:
                self._requests += 1
            outcome = self._attempt(payload)
            if not isinstance(outcome, _Failure):
                return outcome
            failure = outcome
            error = self._scrub(failure.error)
            with self._stats_lock:
                if isinstance(error, RateLimitError):
                    self._throttled += 1
                if failure.possibly_charged:
                    self._possibly_charged += 1
                    self._charged_numbers.add(phone)
            if failure.possibly_charged:
                logger.warning("%s: %s; counted as possibly charged", phone, error)
            if not failure.retry or attempt > self.max_retries:
                error.attempts = attempt
                if failure.retry:
                    error.args = (f"{error} (gave up after {attempt} attempts)",)
                raise error from failure.cause
            delay = self._backoff(attempt, failure.retry_after)
            with self._stats_lock:
                self._retries += 1
            logger.debug(
                "%s: %s; retry %d/%d in %.2fs", phone, error, attempt, self.max_retries, delay
            )
            self._sleep(delay)

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

        Options left at None are not sent. Raises an :class:`~pd_hlr.errors.HLRError`.

        Example:
            >>> client.lookup("+441302778473", detailed=True, roaming=True)  # doctest: +SKIP
            {'to': '+441302778473', 'mccMnc': '234...', ...}
        """
        options = self._options(detailed=detailed, roaming=roaming, route=route, msisdn=msisdn)
        payload = self._payload(phone, options)
        self._require_token()
        return self._lookup(phone, payload, stop=None)

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
        (validation, errors after retries) are outcomes; 401/402 stop the whole run and raise
        with ``.outcomes`` and ``.pending`` (see the class docstring). If ``on_result`` raises,
        the run stops the same way and that exception propagates.

        Example:
            >>> client.lookup_many(["+441302778473", "+441302778474"])  # doctest: +SKIP
            {'+441302778473': {...}, '+441302778474': {...}}
        """
        options = self._options(detailed=detailed, roaming=roaming, route=route, msisdn=msisdn)
        keys = list(dict.fromkeys(numbers))
        payloads = {number: self._payload(number, options) for number in keys}
        n_workers = self.workers if workers is None else workers
        if not isinstance(n_workers, int) or n_workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {n_workers!r}")
        try:
            self._require_token()
        except AuthenticationError as exc:
            exc.pending = keys
            raise
        if not keys:
            return {}

        run = _Run(on_result=on_result)
        started = self._clock()
        pool = ThreadPoolExecutor(
            max_workers=min(n_workers, len(keys)), thread_name_prefix="pd_hlr"
        )
        try:
            self._drive(pool, run, iter(keys), payloads, window=2 * n_workers)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self._close_dead_sessions()
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

    def _drive(
        self,
        pool: ThreadPoolExecutor,
        run: _Run,
        todo: Iterator[str],
        payloads: dict[str, bytes],
        window: int,
    ) -> None:
        """Keep at most ``window`` numbers queued; stop feeding and cancel on a stop."""
        inflight: set[Future[None]] = set()
        try:
            while True:
                while len(inflight) < window and not run.stop.is_set():
                    number = next(todo, None)
                    if number is None:
                        break
                    inflight.add(pool.submit(self._work, run, number, payloads[number]))
                if not inflight:
                    return
                _, inflight = wait(inflight, return_when=FIRST_COMPLETED)
                if run.stop.is_set():
                    break
        except BaseException:  # KeyboardInterrupt in the caller: stop like a 401/402
            run.stop.set()
            raise
        finally:
            if run.stop.is_set():
                for future in inflight:
                    future.cancel()
            wait(inflight)  # in-flight numbers finish and are delivered before we return

    def _work(self, run: _Run, number: str, payload: bytes) -> None:
        if run.stop.is_set():
            return
        self._local.stop = run.stop
        try:
            try:
                outcome: Outcome = self._lookup(number, payload, run.stop)
            except _Stopped:
                return
            except HLRError as exc:
                if exc.stops_run:
                    run.fail(exc)
                    return
                outcome = exc
            with run.lock:
                run.outcomes[number] = outcome
            if run.on_result is not None:
                run.on_result(number, outcome)
        except BaseException as exc:  # a bug or a failing on_result: stop everything
            run.fail(exc)
        finally:
            self._local.stop = None
