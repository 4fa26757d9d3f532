"""Answer classification: what one attempt got back, as one kind of :data:`KINDS`.

:func:`classify_answer` decodes an HTTP answer once and returns the result object (an
:class:`Answer`) or a :class:`Failure`; :func:`classify_exception` does the same for an attempt
that got no complete answer. What to do about a failure is :mod:`pd_hlr.retry`'s job.

Invariants: each answer is decoded once; the status alone decides where the spec's status
table does (:data:`STATUS_KINDS`), else a short sequence of body-shape checks
(:data:`SHAPE_CHECKS`); every kind is a row of :data:`KINDS`, from which the docs' retry
table is generated (:func:`retry_table_markdown`). Pure: no I/O, no clock.

Example:
    >>> failure = classify_answer(503, b'{"message": "busy"}')
    >>> failure.kind, failure.possibly_charged, failure.retry
    ('server_error', False, True)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import requests
from urllib3.exceptions import ConnectTimeoutError, InvalidHeader, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

from pd_hlr._json import MAX_DEPTH, NotStorable, repaired
from pd_hlr._spec import TRAFFIC_QUOTA_EXCEEDED
from pd_hlr.errors import (
    APIError,
    AuthenticationError,
    HLRError,
    InsufficientBalanceError,
    RateLimitError,
    TransportError,
    ValidationError,
)

__all__ = [
    "KINDS",
    "SHAPE_CHECKS",
    "STATUS_KINDS",
    "Answer",
    "Failure",
    "Kind",
    "classify_answer",
    "classify_exception",
    "excerpt",
    "parse_retry_after",
    "retry_table_markdown",
    "same_number",
    "too_large",
]

#: Statuses retried with backoff (server trouble; the service does not charge them).
RETRY_STATUSES = frozenset({500, 502, 503, 504})
#: Longest body excerpt kept on an error (characters).
EXCERPT_CHARS = 200


class Kind(NamedTuple):
    """One kind of failed attempt and how it is handled (a row of the docs' retry table)."""

    name: str
    failure: str  # what happened, as the docs say it
    retried: str  # how it is retried, as the docs say it
    retry: bool
    possibly_charged: bool
    breaker: bool  # counts toward the circuit breaker


_K = Kind
#: Every failure kind, in the retry table's order.
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        _K(
            "connect",
            "connection refused / DNS / connect timeout / TLS handshake cut off or timed out / "
            "proxy (request never sent)",
            "yes, backoff",
            True,
            False,
            True,
        ),
        _K("tls", "TLS error before sending (certificate, protocol)", "never", False, False, True),
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
            "connection dropped (or a TLS error) after sending, or the answer cut off",
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
            'complete 200 `{"results": [{...}]}` whose result lacks its `to` number or holds '
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
    """The retry table of the docs (docs/guide/retry.md), generated from :data:`KINDS`.

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
#: urllib3 < 2.7 has no cap and no ``retry_after_max`` argument.
try:
    _RETRY_AFTER = Retry(0, retry_after_max=sys.maxsize)
except TypeError:  # urllib3 2.0-2.6
    _RETRY_AFTER = Retry(0)


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


def _plain(number: str) -> bool:
    """``+`` and ASCII digits, at least one of them not ``0``: its own digits, as
    :func:`same_number` reads them, are not empty."""
    return number[:1] == "+" and number[1:].isdigit() and number.isascii() and bool(
        number.strip("+0")
    )


def same_number(to: str, asked: str) -> bool:
    """Whether the API's ``to`` names the number asked: their digits compared, leading zeros (an
    ``00`` prefix) ignored, and a duplicated country code in the number asked tolerated (the
    ``msisdn=false`` case).

    Example:
        >>> same_number("+441302778473", "+44 1302 778473"), same_number("+441302778474", "+441302778473")
        (True, False)
    """  # noqa: E501
    if to == asked and _plain(to):  # the common case, without walking the digits
        return True
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
# classification of an answer: the status table, then the body's shape

#: HTTP status → failure kind, where the status alone decides (as geopy's ``ERROR_CODE_MAP``).
#: A 4xx whose body names ``required_amount`` reads as a 402 (see :attr:`_Body.status_read`).
STATUS_KINDS: Mapping[int, str] = {
    401: "auth",
    403: "auth",
    402: "balance",
    429: "throttled",
    **dict.fromkeys(sorted(RETRY_STATUSES), "server_error"),
}


#: One decoder for every answer (``json.loads`` with an argument builds a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _decode(body: bytes) -> tuple[str | None, Any, str]:
    """(text or None when not UTF-8, the JSON value or None, why it is not JSON or "")."""
    try:
        text = body.decode("utf-8-sig")  # a UTF-8 byte-order mark tolerated
    except UnicodeDecodeError as exc:
        return None, None, f"not UTF-8 ({exc.reason} at byte {exc.start})"
    if not text.strip():
        return text, None, "empty body"
    try:
        return text, _DECODER.decode(text), ""
    except RecursionError:
        return text, None, "JSON nested too deeply"
    except ValueError as exc:
        return text, None, f"not JSON ({str(exc)[:80]})"


class _Body:
    """One HTTP answer, decoded once: what the checks and the error messages read."""

    __slots__ = ("_short", "headers", "obj", "problem", "raw", "status", "text")

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str] | None) -> None:
        self.status, self.raw, self.headers = status, body, headers
        self.text, data, self.problem = _decode(body)
        #: The body when it is a JSON object, else ``{}``.
        self.obj: dict[str, Any] = data if isinstance(data, dict) else {}
        self._short: str | None = None

    @property
    def short(self) -> str:
        """The body's start, for messages (made once, only for a failure)."""
        if self._short is None:
            self._short = excerpt(self.text if self.text is not None else self.raw)
        return self._short

    @property
    def said(self) -> str:
        """``": <server message>"`` when the body has a ``message`` string, else ``""``."""
        message = self.obj.get("message")
        return f": {message}" if isinstance(message, str) and message else ""

    @property
    def client_error(self) -> bool:
        return 400 <= self.status < 500

    @property
    def status_read(self) -> int:
        """The status the table is read with: a 4xx carrying a 402's ``required_amount`` body
        is a 402, unless it is a 401/403 (whose meaning is never in doubt)."""
        if self.client_error and "required_amount" in self.obj and self.status not in (401, 403):
            return 402
        return self.status

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(_header(self.headers, "Retry-After"))

    @property
    def first_result(self) -> dict[str, Any] | None:
        """``results[0]`` of a 200 ``{"results": [{...}]}`` answer, else None."""
        results = self.obj.get("results") if self.status == 200 else None
        if isinstance(results, list) and results and isinstance(results[0], dict):
            return results[0]
        return None

    @property
    def validation_errors(self) -> dict[str, list[str]] | None:
        return _validation_errors(self.obj)


def _is_validation(b: _Body) -> bool:
    return (b.client_error or (b.status == 200 and bool(b.obj.get("errors")))) and (
        b.validation_errors is not None
    )


def _is_request_error(b: _Body) -> bool:
    return isinstance(b.obj.get("requestError"), dict)


def _is_incomplete(b: _Body) -> bool:
    return b.status == 200 and b.text is not None and _complete_result(b.text)


#: Checks of the body's shape, in order, for an answer whose status is not in
#: :data:`STATUS_KINDS`: the first that holds names the kind; ``result`` means a usable result
#: (still checked by :func:`_result`); none holding means ``unexpected``.
SHAPE_CHECKS: tuple[tuple[str, Callable[[_Body], bool]], ...] = (
    ("result", lambda b: b.first_result is not None),
    ("validation", _is_validation),
    ("request_error", _is_request_error),
    ("incomplete_result", _is_incomplete),
    ("malformed", lambda b: b.status == 200),
)


def _kind(b: _Body) -> str:
    kind = STATUS_KINDS.get(b.status_read)
    if kind is not None:
        return kind
    return next((name for name, check in SHAPE_CHECKS if check(b)), "unexpected")


# one builder per kind: the error to report, in words a user can act on


def _auth(b: _Body) -> Failure:
    what = "rejected the API token" if b.status == 401 else "refused access with this token"
    return Failure(
        "auth",
        AuthenticationError(
            f"Provero {what} (HTTP {b.status}{b.said}). Check the token= argument or the "
            "PROVERO_API_TOKEN environment variable, and the account's permissions.",
            status=b.status,
            body_excerpt=b.short,
        ),
    )


def _balance(b: _Body) -> Failure:
    required = _decimal(b.obj.get("required_amount"))
    balance = _decimal(b.obj.get("current_balance"))
    amounts = ""
    if required is not None or balance is not None:
        amounts = f" (a lookup costs {_money(required)}, the balance is {_money(balance)})"
    return Failure(
        "balance",
        InsufficientBalanceError(
            f"Provero balance is too low for another lookup{amounts} (HTTP {b.status}{b.said}). "
            "Top up the account, then look up the numbers still pending.",
            status=b.status,
            body_excerpt=b.short,
            required_amount=required,
            current_balance=balance,
        ),
    )


def _throttled(b: _Body) -> Failure:
    wait = b.retry_after
    when = f"; the server asks to wait {wait:g}s" if wait is not None else ""
    return Failure(
        "throttled",
        RateLimitError(
            f"Provero rate limit hit (HTTP 429{when}). Lower rate_limit= or retry later.",
            status=b.status,
            body_excerpt=b.short,
            retry_after=wait,
        ),
        wait,
    )


def _server_error(b: _Body) -> Failure:
    return Failure(
        "server_error",
        APIError(
            f"Provero server error (HTTP {b.status}): {b.short or '<empty body>'}",
            status=b.status,
            body_excerpt=b.short,
        ),
        b.retry_after,
    )


def _validation(b: _Body) -> Failure:
    errors = b.validation_errors or {}
    message = b.obj.get("message")
    server_message = message if isinstance(message, str) and message else None
    detail = server_message or "; ".join(m for ms in errors.values() for m in ms)
    return Failure(
        "validation",
        ValidationError(
            f"Provero rejected the request (HTTP {b.status}): {detail}",
            status=b.status,
            body_excerpt=b.short,
            errors=errors,
        ),
    )


def _request_error(b: _Body) -> Failure:
    details = b.obj["requestError"].get("serviceException")
    details = details if isinstance(details, dict) else {}
    code, message_id = details.get("code"), details.get("messageId")
    return Failure(
        "request_error",
        APIError(
            f"Provero reported an application error (HTTP {b.status}, code {code}): {message_id}",
            status=b.status,
            body_excerpt=b.short,
            code=None if code is None else str(code),
            message_id=None if message_id is None else str(message_id),
        ),
    )


def _incomplete(b: _Body) -> Failure:
    return Failure(
        "incomplete_result",
        APIError(
            "Provero answered 200 with a complete result holding NaN or Infinity, which "
            f"JSON does not allow (the lookup was charged; not retried): {b.short}",
            status=b.status,
            body_excerpt=b.short,
            malformed=True,
        ),
    )


def _malformed(b: _Body) -> Failure:
    why = b.problem or 'not the documented {"results": [{...}]} shape'
    return Failure(
        "malformed",
        APIError(
            f"Provero answered 200 with an unusable body ({why}; the lookup may have been "
            f"charged): {b.short or '<empty body>'}",
            status=b.status,
            body_excerpt=b.short,
            malformed=True,
        ),
    )


def _unexpected(b: _Body) -> Failure:
    return Failure(
        "unexpected",
        APIError(
            f"Unexpected answer from Provero (HTTP {b.status}): {b.short or '<empty body>'}",
            status=b.status,
            body_excerpt=b.short,
            malformed=not b.obj,
        ),
    )


#: Failure kind → the failure it makes of an answer.
_FAILURES: Mapping[str, Callable[[_Body], Failure]] = {
    "auth": _auth,
    "balance": _balance,
    "throttled": _throttled,
    "server_error": _server_error,
    "validation": _validation,
    "request_error": _request_error,
    "incomplete_result": _incomplete,
    "malformed": _malformed,
    "unexpected": _unexpected,
}


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

    The first four rows are :data:`STATUS_KINDS`; the rest are :data:`SHAPE_CHECKS`.

    Example:
        >>> classify_answer(200, b'\\xef\\xbb\\xbf{"results": [{"to": "+441302778473"}]}')
        Answer(result={'to': '+441302778473'}, repaired=0)
        >>> classify_answer(200, b'{"results": [{"to": "Telef\\xf3nica"}]}').kind
        'malformed'
        >>> classify_answer(401, b'{"message": "Unauthenticated."}').error.status
        401
    """
    answer = _Body(status, body, headers)
    if status == 200 and answer.first_result is not None:  # the common case: a result
        return _result(answer, phone)
    kind = _kind(answer)
    return _result(answer, phone) if kind == "result" else _FAILURES[kind](answer)


def _sound(raw: bytes) -> bool:
    """Whether a body's decoded strings are its own bytes and it cannot nest deeper than
    :data:`MAX_DEPTH`: no escape at all (so no lone surrogate, which only ``\\u`` makes)
    and fewer brackets than that. Such a result needs no :func:`repaired` walk."""
    return b"\\" not in raw and raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH


def _result(b: _Body, phone: str | None) -> Answer | Failure:
    """Check one 200 result: depth and strings, quota, ``to``."""
    result = b.first_result
    assert result is not None
    try:
        result, fixed = (result, 0) if _sound(b.raw) else repaired(result)
    except NotStorable as exc:
        return Failure(
            "malformed",
            APIError(
                f"Provero answered 200 with an unusable body ({exc}; the lookup may have been "
                f"charged): {b.short}",
                status=200,
                body_excerpt=b.short,
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
                body_excerpt=b.short,
            ),
        )
    to = result.get("to")
    if not isinstance(to, str):
        return Failure(
            "incomplete_result",
            APIError(
                "Provero answered 200 with a result without its 'to' number (the lookup was "
                f"charged; not retried): {b.short}",
                status=200,
                body_excerpt=b.short,
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
                body_excerpt=b.short,
            ),
        )
    return Answer(result, fixed)


# --------------------------------------------------------------------------------------------
# an attempt without a complete answer


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
