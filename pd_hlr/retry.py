"""The client's retry and answer-classification policy: what came back, and what to do now.

Every lookup costs money once the API has answered it, so nothing is retried blindly. The
client asks this module three questions about each attempt:

1. **What came back?** :func:`classify_answer` decodes an HTTP answer once and returns the
   result object (an :class:`Answer`) or a :class:`Failure` of one kind of :data:`KINDS`;
   :func:`classify_exception` does the same for an attempt that got no complete answer.
2. **What now?** :meth:`RetryPolicy.decide` says retry (after how long), give up on the number,
   or stop the whole run.
3. **Is the API down?** A :class:`CircuitBreaker` (one per run) counts consecutive failures of
   one kind across the run, whatever the number.

:class:`RetryPolicy` is a small frozen value, as urllib3's ``Retry`` is; its ``random`` (the
jitter source) can be injected. The README's retry table is generated from :data:`KINDS`
(:func:`retry_table_markdown`).

Example:
    >>> policy = RetryPolicy(max_retries=2, random=lambda: 0.5)
    >>> failure = classify_answer(503, b'{"message": "busy"}')
    >>> failure.kind, failure.possibly_charged
    ('server_error', False)
    >>> policy.decide(failure, attempt=1)
    Decision(action='retry', delay=0.25, error=None)
    >>> policy.decide(failure, attempt=3).action
    'give_up'
"""

from __future__ import annotations

import json
import random
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, NamedTuple

import requests
from urllib3.exceptions import ConnectTimeoutError, InvalidHeader, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

from pd_hlr._json import NotStorable, repaired
from pd_hlr._spec import TRAFFIC_QUOTA_EXCEEDED
from pd_hlr.errors import (
    APIError,
    AuthenticationError,
    HLRError,
    InsufficientBalanceError,
    RateLimitError,
    ServiceUnavailableError,
    TransportError,
    ValidationError,
)

__all__ = [
    "KINDS",
    "Answer",
    "CircuitBreaker",
    "Decision",
    "Failure",
    "Kind",
    "RetryPolicy",
    "classify_answer",
    "classify_exception",
    "excerpt",
    "parse_retry_after",
    "retry_table_markdown",
    "same_number",
]

#: Statuses retried with backoff (server trouble; the service does not charge them).
RETRY_STATUSES = frozenset({500, 502, 503, 504})
#: Longest body excerpt kept on an error (characters).
EXCERPT_CHARS = 200


class Kind(NamedTuple):
    """One kind of failed attempt and how it is handled (a row of the README's retry table)."""

    name: str
    failure: str  # what happened, as the README says it
    retried: str  # how it is retried, as the README says it
    retry: bool
    possibly_charged: bool
    breaker: bool  # counts toward the circuit breaker


_K = Kind
#: Every failure kind, in the README table's order.
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        _K(
            "connect",
            "connection refused / DNS / connect timeout / proxy (request never sent)",
            "yes, backoff",
            True,
            False,
            True,
        ),
        _K("tls", "TLS error (certificate, handshake)", "never", False, False, True),
        _K(
            "server_error",
            "500, 502, 503, 504",
            "yes, backoff (or `Retry-After`)",
            True,
            False,
            True,
        ),
        _K(
            "throttled",
            "429, or a `TRAFFIC_QUOTA_EXCEEDED` result",
            "yes, after `Retry-After` (seconds or HTTP-date), else backoff",
            True,
            False,
            False,
        ),
        _K(
            "timeout",
            "read timeout, or the attempt's `deadline` passed (connect + whole answer)",
            "yes, backoff",
            True,
            True,
            True,
        ),
        _K(
            "connection_lost",
            "connection dropped after sending, or the answer cut off",
            "yes, backoff",
            True,
            True,
            True,
        ),
        _K(
            "malformed",
            "200 whose body is unusable: cut off, not JSON (e.g. HTML), not UTF-8, nested too "
            'deep, not `{"results": [{...}]}`',
            "yes, backoff",
            True,
            True,
            True,
        ),
        _K(
            "too_large",
            "answer bigger than `max_answer_bytes` (endless, gzip bomb, 100 MB)",
            "yes, backoff",
            True,
            True,
            True,
        ),
        _K(
            "incomplete_result",
            "complete 200 `{\"results\": [{...}]}` whose result lacks its `to` number or holds "
            "a bare `NaN` / `Infinity` (billed: the API answered)",
            "never (not cached): a retry would be billed again",
            False,
            True,
            True,
        ),
        _K(
            "wrong_number",
            "200 whose `to` is not the number asked (digits compared)",
            "never (not cached)",
            False,
            True,
            True,
        ),
        _K(
            "auth",
            "401/403 (`AuthenticationError`)",
            "never; **stops the whole run**",
            False,
            False,
            False,
        ),
        _K(
            "balance",
            "402 (`InsufficientBalanceError`)",
            "never; **stops the whole run**",
            False,
            False,
            False,
        ),
        _K("validation", "validation errors (`ValidationError`)", "never", False, False, False),
        _K("request_error", "`requestError` bodies (`APIError`)", "never", False, False, True),
        _K(
            "unexpected",
            "any other answer (e.g. 404 from a wrong base URL)",
            "never",
            False,
            False,
            True,
        ),
    )
}
del _K


def retry_table_markdown() -> str:
    """The README's retry table, generated from :data:`KINDS`.

    Example:
        >>> retry_table_markdown().splitlines()[0]
        '| failure | kind | retried? | may have been charged? | counts toward the breaker? |'
    """
    lines = [
        "| failure | kind | retried? | may have been charged? | counts toward the breaker? |",
        "|---|---|---|---|---|",
    ]
    for k in KINDS.values():
        charged = "**maybe**: counted in `client.stats.possibly_charged`"
        breaker = "yes" if k.breaker else "no"
        lines.append(
            f"| {k.failure} | `{k.name}` | {k.retried} | "
            f"{charged if k.possibly_charged else 'no'} | {breaker} |"
        )
    return "\n".join(lines)


class Answer(NamedTuple):
    """A usable 200 answer: the result object, and how many of its strings were repaired
    (lone surrogates replaced by U+FFFD)."""

    result: dict[str, Any]
    repaired: int = 0


@dataclass(frozen=True)
class Failure:
    """One failed attempt: its kind (a key of :data:`KINDS`), the error to report, and the
    server's requested pause (``Retry-After``), when it sent one.

    Example:
        >>> f = Failure("timeout", TransportError("read timeout"))
        >>> f.retry, f.possibly_charged
        (True, True)
    """

    kind: str
    error: HLRError
    retry_after: float | None = None
    cause: BaseException | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.error.kind = self.kind

    @property
    def retry(self) -> bool:
        """Whether this kind is retried at all."""
        return KINDS[self.kind].retry

    @property
    def possibly_charged(self) -> bool:
        """Whether the API may have billed this attempt."""
        return KINDS[self.kind].possibly_charged


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
        backoff_factor, backoff_max: exponential backoff with full jitter: before retry *n*
            (1-based) wait ``random() * min(backoff_max, backoff_factor * 2**(n-1))``.
        retry_after_max: the longest ``Retry-After`` honoured (seconds). A longer one stops the
            run with :class:`~pd_hlr.errors.ServiceUnavailableError` (``.resume_after`` set).
        breaker_threshold: this many consecutive failed attempts of one kind (of the kinds that
            count, see :data:`KINDS`) across a run stop it with ``ServiceUnavailableError``.
        random: the jitter source, a function returning a float in [0, 1).

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
            return Decision("stop", error=_resume_later(failure, wait, self.retry_after_max))
        if not failure.retry or attempt > self.max_retries:
            return Decision("give_up", error=error)
        return Decision("retry", wait if wait is not None else self.backoff(attempt))

    def breaker(self) -> CircuitBreaker:
        """A fresh circuit breaker for one run."""
        return CircuitBreaker(self.breaker_threshold)


def _resume_later(failure: Failure, wait: float, cap: float) -> ServiceUnavailableError:
    when = (datetime.now(UTC) + timedelta(seconds=wait)).strftime("%Y-%m-%d %H:%M UTC")
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


# --------------------------------------------------------------------------------------------
# helpers


def excerpt(body: str | bytes | None, limit: int = EXCERPT_CHARS) -> str:
    """The start of a body, whitespace collapsed, for messages.

    Example:
        >>> excerpt("a\\n  b " + "x" * 300)[:5]
        'a b x'
    """
    if body is None:
        return ""
    head = body[: 8 * limit]
    if isinstance(head, bytes):
        head = head.decode("utf-8", "replace")
    text = " ".join(head.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: urllib3's Retry-After parser, without its silent 6-hour cap (the policy decides what is long).
_RETRY_AFTER = Retry(0, retry_after_max=sys.maxsize)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date); None if absent
    or unreadable. Uses urllib3's parser (a date in the past gives 0).

    Example:
        >>> parse_retry_after("3")
        3.0
    """
    if value is None or not str(value).strip():
        return None
    try:
        return float(_RETRY_AFTER.parse_retry_after(str(value)))
    except (InvalidHeader, ValueError, OverflowError):
        return None


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit()).lstrip("0")


def same_number(to: str, asked: str) -> bool:
    """Whether the API's ``to`` names the number asked: their digits compared, leading zeros (an
    ``00`` prefix) ignored, and a duplicated country code in the number asked tolerated (the
    ``msisdn=false`` case).

    Example:
        >>> same_number("+441302778473", "+44 1302 778473"), same_number("+441302778474", "+441302778473")
        (True, False)
    """  # noqa: E501
    got, asked_digits = _digits(to), _digits(asked)
    if not got:
        return False
    if got == asked_digits:
        return True
    extra = len(asked_digits) - len(got)
    return 1 <= extra <= 3 and asked_digits == got[:extra] + got


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _money(value: Decimal | None) -> str:
    """``Decimal("0E-10")`` → ``"0"``, ``Decimal("0.0060000000")`` → ``"0.006"``."""
    return "unknown" if value is None else format(value.normalize(), "f")


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    for key, item in headers.items():
        if key.lower() == lower:
            return item
    return None


def _validation_errors(data: dict[str, Any]) -> dict[str, list[str]] | None:
    errors = data.get("errors")
    if not isinstance(errors, dict):
        return None
    out: dict[str, list[str]] = {}
    for key, messages in errors.items():
        if isinstance(messages, list):
            out[str(key)] = [str(m) for m in messages]
        else:
            out[str(key)] = [str(messages)]
    return out


def _is_quota(result: dict[str, Any]) -> bool:
    group_id, error_id, name = TRAFFIC_QUOTA_EXCEEDED
    error = result.get("error")
    if not isinstance(error, dict):
        return False
    return (error.get("groupId"), error.get("id")) == (group_id, error_id) or error.get(
        "name"
    ) == name


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _complete_result(text: str) -> bool:
    """True when ``text`` is a whole ``{"results": [{...}]}`` answer once ``NaN`` /
    ``Infinity`` are allowed: the API answered (and billed) it, only a value is broken."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return False
    results = data.get("results") if isinstance(data, dict) else None
    return isinstance(results, list) and bool(results) and isinstance(results[0], dict)


# --------------------------------------------------------------------------------------------
# classification


def classify_answer(
    status: int,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    phone: str | None = None,
) -> Answer | Failure:
    """Classify one HTTP answer by status **and** body shape, decoding the body once.

    ``phone`` is the number as sent; when given, a 200 whose ``to`` names another number is a
    ``wrong_number`` failure. A whole result without ``to``, or holding ``NaN``, is an
    ``incomplete_result`` (billed, never retried). A UTF-8 byte-order mark is tolerated.
    Undecodable bytes, JSON nested deeper than :data:`pd_hlr._json.MAX_DEPTH` and any other
    shape than ``{"results": [{...}]}`` make a 200 ``malformed``. Lone surrogates
    (``"\\ud83d"``, half an emoji) are replaced by U+FFFD and counted in ``Answer.repaired``:
    the answer was paid for and the rest of it is sound. A usable result wins over a top-level
    ``errors`` beside it.

    ========================================  ===========================================
    answer                                    failure kind (error)
    ========================================  ===========================================
    401, 403                                  auth (AuthenticationError)
    402, or a 4xx with ``required_amount``    balance (InsufficientBalanceError)
    429                                       throttled (RateLimitError, ``Retry-After``)
    500, 502, 503, 504                        server_error (APIError, ``Retry-After``)
    4xx ``{"message", "errors": {...}}``      validation (ValidationError)
    ``{"requestError": {...}}``               request_error (APIError with ``code``)
    200 ``{"results": [{...}]}``              the result, or throttled (quota), or
                                              wrong_number, or incomplete_result (no
                                              ``to``, or ``NaN`` in it)
    200 with ``errors`` and no results        validation (ValidationError)
    any other 200                             malformed (APIError, ``malformed=True``)
    anything else                             unexpected (APIError)
    ========================================  ===========================================

    Example:
        >>> classify_answer(200, b'\\xef\\xbb\\xbf{"results": [{"to": "+441302778473"}]}')
        Answer(result={'to': '+441302778473'}, repaired=0)
        >>> classify_answer(200, b'{"results": [{"to": "Telef\\xf3nica"}]}').kind
        'malformed'
        >>> classify_answer(401, b'{"message": "Unauthenticated."}').error.status
        401
    """
    try:
        text: str | None = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        text, problem = None, f"not UTF-8 ({exc.reason} at byte {exc.start})"
    data: Any = None
    if text is not None:
        try:
            data = json.loads(text, parse_constant=_reject_constant) if text.strip() else None
            problem = "" if text.strip() else "empty body"
        except RecursionError:
            problem = "JSON nested too deeply"
        except ValueError as exc:
            problem = f"not JSON ({str(exc)[:80]})"
    short = excerpt(text if text is not None else body)
    obj: dict[str, Any] = data if isinstance(data, dict) else {}
    server_message = obj.get("message") if isinstance(obj.get("message"), str) else None
    said = f": {server_message}" if server_message else ""

    def fail(kind: str, error: HLRError, retry_after: float | None = None) -> Failure:
        return Failure(kind, error, retry_after)

    if status in (401, 403):
        what = "rejected the API token" if status == 401 else "refused access with this token"
        return fail(
            "auth",
            AuthenticationError(
                f"Provero {what} (HTTP {status}{said}). Check the token= argument or the "
                "PROVERO_API_TOKEN environment variable, and the account's permissions.",
                status=status,
                body_excerpt=short,
            ),
        )

    if status == 402 or (400 <= status < 500 and "required_amount" in obj):
        required = _decimal(obj.get("required_amount"))
        balance = _decimal(obj.get("current_balance"))
        amounts = ""
        if required is not None or balance is not None:
            amounts = f" (a lookup costs {_money(required)}, the balance is {_money(balance)})"
        return fail(
            "balance",
            InsufficientBalanceError(
                f"Provero balance is too low for another lookup{amounts} (HTTP {status}{said}). "
                "Top up the account, then look up the numbers still pending.",
                status=status,
                body_excerpt=short,
                required_amount=required,
                current_balance=balance,
            ),
        )

    if status == 429:
        wait = parse_retry_after(_header(headers, "Retry-After"))
        when = f"; the server asks to wait {wait:g}s" if wait is not None else ""
        return fail(
            "throttled",
            RateLimitError(
                f"Provero rate limit hit (HTTP 429{when}). Lower rate_limit= or retry later.",
                status=status,
                body_excerpt=short,
                retry_after=wait,
            ),
            wait,
        )

    if status in RETRY_STATUSES:
        return fail(
            "server_error",
            APIError(
                f"Provero server error (HTTP {status}): {short or '<empty body>'}",
                status=status,
                body_excerpt=short,
            ),
            parse_retry_after(_header(headers, "Retry-After")),
        )

    if status == 200:
        results = obj.get("results")
        if isinstance(results, list) and results and isinstance(results[0], dict):
            return _result(results[0], text or "", short, phone)

    if 400 <= status < 500 or (status == 200 and obj.get("errors")):
        errors = _validation_errors(obj)
        if errors is not None:
            detail = server_message or "; ".join(m for ms in errors.values() for m in ms)
            return fail(
                "validation",
                ValidationError(
                    f"Provero rejected the request (HTTP {status}): {detail}",
                    status=status,
                    body_excerpt=short,
                    errors=errors,
                ),
            )

    request_error = obj.get("requestError")
    if isinstance(request_error, dict):
        details = request_error.get("serviceException")
        details = details if isinstance(details, dict) else {}
        code, message_id = details.get("code"), details.get("messageId")
        return fail(
            "request_error",
            APIError(
                f"Provero reported an application error (HTTP {status}, code {code}): "
                f"{message_id}",
                status=status,
                body_excerpt=short,
                code=None if code is None else str(code),
                message_id=None if message_id is None else str(message_id),
            ),
        )

    if status == 200 and text is not None and _complete_result(text):
        return fail(
            "incomplete_result",
            APIError(
                "Provero answered 200 with a complete result holding NaN or Infinity, which "
                f"JSON does not allow (the lookup was charged; not retried): {short}",
                status=status,
                body_excerpt=short,
                malformed=True,
            ),
        )

    if status == 200:
        why = problem or 'not the documented {"results": [{...}]} shape'
        return fail(
            "malformed",
            APIError(
                f"Provero answered 200 with an unusable body ({why}; the lookup may have been "
                f"charged): {short or '<empty body>'}",
                status=status,
                body_excerpt=short,
                malformed=True,
            ),
        )

    return fail(
        "unexpected",
        APIError(
            f"Unexpected answer from Provero (HTTP {status}): {short or '<empty body>'}",
            status=status,
            body_excerpt=short,
            malformed=not obj,
        ),
    )


def _result(result: dict[str, Any], text: str, short: str, phone: str | None) -> Answer | Failure:
    """Check one 200 result: shape, quota, ``to``, depth and strings."""
    try:
        result, fixed = repaired(result)
    except NotStorable as exc:
        return Failure(
            "malformed",
            APIError(
                f"Provero answered 200 with an unusable body ({exc}; the lookup may have been "
                f"charged): {short}",
                status=200,
                body_excerpt=short,
                malformed=True,
            ),
        )
    if _is_quota(result):
        return Failure(
            "throttled",
            RateLimitError(
                "Provero traffic quota exceeded (TRAFFIC_QUOTA_EXCEEDED in a 200 result). "
                "Lower rate_limit= or retry later.",
                status=200,
                body_excerpt=short,
            ),
        )
    to = result.get("to")
    if not isinstance(to, str):
        return Failure(
            "incomplete_result",
            APIError(
                "Provero answered 200 with a result without its 'to' number (the lookup was "
                f"charged; not retried): {short}",
                status=200,
                body_excerpt=short,
                malformed=True,
            ),
        )
    if phone is not None and not same_number(to, phone):
        return Failure(
            "wrong_number",
            APIError(
                f"Provero answered for {to!r} when asked for {phone!r}: the answer is not used "
                "(the lookup may have been charged)",
                status=200,
                body_excerpt=short,
            ),
        )
    return Answer(result, fixed)


def classify_exception(
    exc: requests.RequestException, where: str, *, expired: bool = False
) -> Failure:
    """Classify an attempt that got no complete answer. ``where`` names the API in messages;
    ``expired`` says the attempt's deadline cut it off.

    Example:
        >>> classify_exception(requests.ReadTimeout("slow"), "Provero").kind
        'timeout'
    """
    reason: object = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    detail = excerpt(f"{type(exc).__name__}: {reason if reason is not None else exc}", 160)

    def fail(kind: str, what: str) -> Failure:
        return Failure(kind, TransportError(f"{what} talking to {where} ({detail})"), cause=exc)

    never_sent = isinstance(exc, requests.exceptions.ConnectTimeout) or (
        isinstance(exc, requests.exceptions.ConnectionError)
        and isinstance(reason, NewConnectionError | ConnectTimeoutError)
    )
    if isinstance(exc, requests.exceptions.SSLError):
        return fail("tls", "TLS error")
    if never_sent or isinstance(exc, requests.exceptions.ProxyError):
        return fail("connect", "could not connect")
    if expired:
        return fail("timeout", "no complete answer within the deadline (may have been charged)")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return fail("timeout", "read timeout (the lookup may have been charged)")
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return fail("malformed", "answer could not be decoded (the lookup may have been charged)")
    if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return fail("connection_lost", "connection lost (the lookup may have been charged)")
    return fail("unexpected", "request failed")


def too_large(status: int, limit: int, where: str) -> Failure:
    """A 200 answer longer than ``limit`` bytes (the rest was not read).

    Example:
        >>> too_large(200, 1 << 20, "Provero").kind
        'too_large'
    """
    return Failure(
        "too_large",
        APIError(
            f"the answer from {where} is larger than max_answer_bytes={limit:,} (HTTP {status}); "
            "it was not read further (the lookup may have been charged)",
            status=status,
            malformed=True,
        ),
    )
