"""The exception tree of pd-hlr, and the one function that maps an HTTP answer onto it.

Every error the package raises about a lookup is an :class:`HLRError`. Subclasses also inherit
the built-in exception they resemble, so generic handlers keep working::

    HLRError(Exception)                               .status, .body_excerpt, .partial, .report
    ├── AuthenticationError(HLRError, PermissionError)    401 / 403, or no token; stops a run
    ├── InsufficientBalanceError(HLRError)                402; .required_amount; stops a run
    ├── ServiceUnavailableError(HLRError, ConnectionError) circuit breaker / long Retry-After;
    │                                                     stops a run
    ├── ValidationError(HLRError, ValueError)             validation body; .errors
    ├── RateLimitError(HLRError)                          429 / TRAFFIC_QUOTA_EXCEEDED; .retry_after
    ├── APIError(HLRError)                                requestError body, 5xx, unexpected body
    ├── TransportError(HLRError, ConnectionError)         connection / timeout
    ├── BudgetExceededError(HLRError, ValueError)         more lookups than budget=; nothing sent
    ├── CacheNotWritableError(HLRError, PermissionError)  cache folder not writable; nothing sent
    └── ColumnConflictError(HLRError, ValueError)         caller's columns named like results

Example:
    >>> err = error_from_response(402, '{"required_amount": "0.0060000000"}')
    >>> type(err).__name__, err.required_amount
    ('InsufficientBalanceError', Decimal('0.0060000000'))
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from pd_hlr._spec import TRAFFIC_QUOTA_EXCEEDED

__all__ = [
    "APIError",
    "AuthenticationError",
    "BudgetExceededError",
    "CacheNotWritableError",
    "ColumnConflictError",
    "HLRError",
    "InsufficientBalanceError",
    "RateLimitError",
    "ServiceUnavailableError",
    "TransportError",
    "ValidationError",
    "error_from_response",
    "parse_retry_after",
]

#: Longest body excerpt kept on an error (characters).
EXCERPT_CHARS = 200


def _rebuild(cls: type[HLRError], args: tuple[Any, ...], state: dict[str, Any]) -> HLRError:
    """Unpickle an :class:`HLRError` without calling its keyword-only ``__init__``."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class HLRError(Exception):
    """Base class of every lookup error.

    ``status`` is the HTTP status (None when no answer came), ``body_excerpt`` the start of the
    answer's body. ``outcomes`` and ``pending`` are filled only on errors that stop a whole
    ``lookup_many`` run (:class:`AuthenticationError`, :class:`InsufficientBalanceError`).

    Example:
        >>> try:
        ...     raise APIError("boom", status=500)
        ... except HLRError as exc:
        ...     exc.status
        500
    """

    #: True on the errors that stop a ``lookup_many`` run (no further request is sent).
    stops_run: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body_excerpt: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body_excerpt = body_excerpt
        #: Attempts made before giving up (set by the client).
        self.attempts: int | None = None
        #: On run-stopping errors: every outcome received before the stop (already delivered).
        self.outcomes: dict[str, dict[str, Any] | HLRError] = {}
        #: On run-stopping errors: the numbers never answered, in input order.
        self.pending: list[str] = []
        #: Set by the pipeline on run-stopping errors: the result so far (a frame of the face's
        #: kind), how many numbers were looked up, how many remain, and the run report.
        self.partial: Any = None
        self.looked_up: int | None = None
        self.remaining: int | None = None
        self.report: Any = None

    @property
    def message(self) -> str:
        """The human-readable message (``str(exc)``)."""
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only __init__ arguments break the default exception pickling (dask, processes).
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class AuthenticationError(HLRError, PermissionError):
    """The token is missing, wrong or not allowed (HTTP 401/403). Stops a whole run.

    Example:
        >>> isinstance(AuthenticationError("bad token", status=401), PermissionError)
        True
    """

    stops_run = True


class InsufficientBalanceError(HLRError):
    """The account cannot pay for the lookup (HTTP 402). Stops a whole run.

    Example:
        >>> InsufficientBalanceError("top up", required_amount=Decimal("0.006")).required_amount
        Decimal('0.006')
    """

    stops_run = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 402,
        body_excerpt: str | None = None,
        required_amount: Decimal | None = None,
        current_balance: Decimal | None = None,
    ) -> None:
        super().__init__(message, status=status, body_excerpt=body_excerpt)
        self.required_amount = required_amount
        self.current_balance = current_balance


class ValidationError(HLRError, ValueError):
    """The API rejected the request's fields; ``errors`` maps field → messages. Never retried.

    Example:
        >>> ValidationError("bad", errors={"phone": ["too short"]}).errors["phone"]
        ['too short']
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 422,
        body_excerpt: str | None = None,
        errors: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message, status=status, body_excerpt=body_excerpt)
        self.errors: dict[str, list[str]] = dict(errors or {})


class RateLimitError(HLRError):
    """Too many requests (HTTP 429, or a TRAFFIC_QUOTA_EXCEEDED result).

    ``retry_after`` is the server's requested pause in seconds, when it sent one.

    Example:
        >>> RateLimitError("slow down", status=429, retry_after=2.0).retry_after
        2.0
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        body_excerpt: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, body_excerpt=body_excerpt)
        self.retry_after = retry_after


class APIError(HLRError):
    """The API answered with an error or with something unexpected.

    ``code`` / ``message_id`` come from a ``requestError.serviceException`` body. ``malformed``
    is True when the body was not the documented shape (e.g. cut-off JSON on a 200).

    Example:
        >>> APIError("server error", status=503).status
        503
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body_excerpt: str | None = None,
        code: str | None = None,
        message_id: str | None = None,
        malformed: bool = False,
    ) -> None:
        super().__init__(message, status=status, body_excerpt=body_excerpt)
        self.code = code
        self.message_id = message_id
        self.malformed = malformed


class TransportError(HLRError, ConnectionError):
    """No usable answer arrived: connection refused/reset, timeout. ``status`` is None.

    Example:
        >>> isinstance(TransportError("timed out"), ConnectionError)
        True
    """


# --------------------------------------------------------------------------------------------
# status + body shape → exception


def excerpt(body: str | bytes | None, limit: int = EXCERPT_CHARS) -> str:
    """The start of a body, whitespace collapsed, for messages.

    Example:
        >>> excerpt("a\\n  b " + "x" * 300)[:5]
        'a b x'
    """
    if body is None:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = " ".join(body.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
        return float(Retry(0).parse_retry_after(str(value)))
    except (InvalidHeader, ValueError, OverflowError):
        return None


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


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
    for field, messages in errors.items():
        if isinstance(messages, list):
            out[str(field)] = [str(m) for m in messages]
        else:
            out[str(field)] = [str(messages)]
    return out


def _is_quota(result: dict[str, Any]) -> bool:
    group_id, error_id, name = TRAFFIC_QUOTA_EXCEEDED
    error = result.get("error")
    if not isinstance(error, dict):
        return False
    return (error.get("groupId"), error.get("id")) == (group_id, error_id) or error.get(
        "name"
    ) == name


def error_from_response(
    status: int,
    body: str | bytes | None,
    headers: Mapping[str, str] | None = None,
) -> HLRError | None:
    """Classify one HTTP answer by status **and** body shape; None means a usable 200 result.

    The vendor documents bodies but not every status code, so the body shape decides where the
    status is ambiguous:

    ========================================  ============================================
    answer                                    error
    ========================================  ============================================
    401, 403                                  AuthenticationError
    402, or a 4xx with ``required_amount``    InsufficientBalanceError (amounts as Decimal)
    429                                       RateLimitError (``Retry-After`` read)
    200 result with TRAFFIC_QUOTA_EXCEEDED    RateLimitError (status 200)
    4xx/200 ``{"message", "errors": {...}}``  ValidationError
    ``{"requestError": {...}}``               APIError with ``code`` and ``message_id``
    5xx                                       APIError
    200 that is not ``{"results": [{..}]}``   APIError(malformed=True)
    anything else                             APIError(malformed=True)
    ========================================  ============================================

    Example:
        >>> error_from_response(200, '{"results": [{"to": "+441302778473"}]}') is None
        True
        >>> error_from_response(401, '{"message": "Unauthenticated."}').status
        401
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    short = excerpt(text)
    try:
        data: Any = json.loads(text) if text else None
    except ValueError:
        data = None
    obj: dict[str, Any] = data if isinstance(data, dict) else {}
    server_message = obj.get("message") if isinstance(obj.get("message"), str) else None
    said = f": {server_message}" if server_message else ""

    if status in (401, 403):
        what = "rejected the API token" if status == 401 else "refused access with this token"
        return AuthenticationError(
            f"Provero {what} (HTTP {status}{said}). Check the token= argument or the "
            "PROVERO_API_TOKEN environment variable, and the account's permissions.",
            status=status,
            body_excerpt=short,
        )

    if status == 402 or (400 <= status < 500 and "required_amount" in obj):
        required = _decimal(obj.get("required_amount"))
        balance = _decimal(obj.get("current_balance"))
        amounts = ""
        if required is not None or balance is not None:
            amounts = f" (a lookup costs {required}, the balance is {balance})"
        return InsufficientBalanceError(
            f"Provero balance is too low for another lookup{amounts} (HTTP {status}{said}). "
            "Top up the account, then look up the numbers still pending.",
            status=status,
            body_excerpt=short,
            required_amount=required,
            current_balance=balance,
        )

    if status == 429:
        retry_after = parse_retry_after(_header(headers, "Retry-After"))
        when = f"; the server asks to wait {retry_after:g}s" if retry_after is not None else ""
        return RateLimitError(
            f"Provero rate limit hit (HTTP 429{when}). Lower rate_limit= or retry later.",
            status=status,
            body_excerpt=short,
            retry_after=retry_after,
        )

    if status == 200 or 400 <= status < 500:
        errors = _validation_errors(obj)
        if errors is not None:
            detail = server_message or "; ".join(m for ms in errors.values() for m in ms)
            return ValidationError(
                f"Provero rejected the request (HTTP {status}): {detail}",
                status=status,
                body_excerpt=short,
                errors=errors,
            )

    request_error = obj.get("requestError")
    if isinstance(request_error, dict):
        exc_body = request_error.get("serviceException")
        exc_body = exc_body if isinstance(exc_body, dict) else {}
        code = exc_body.get("code")
        message_id = exc_body.get("messageId")
        return APIError(
            f"Provero reported an application error (HTTP {status}, code {code}): {message_id}",
            status=status,
            body_excerpt=short,
            code=None if code is None else str(code),
            message_id=None if message_id is None else str(message_id),
        )

    if status >= 500:
        return APIError(
            f"Provero server error (HTTP {status}): {short or '<empty body>'}",
            status=status,
            body_excerpt=short,
        )

    if status == 200:
        results = obj.get("results")
        if isinstance(results, list) and results and isinstance(results[0], dict):
            if _is_quota(results[0]):
                return RateLimitError(
                    "Provero traffic quota exceeded (TRAFFIC_QUOTA_EXCEEDED in a 200 result). "
                    "Lower rate_limit= or retry later.",
                    status=status,
                    body_excerpt=short,
                )
            return None
        return APIError(
            "Provero answered 200 with a body that is not the documented "
            f"{{'results': [...]}} shape: {short or '<empty body>'}",
            status=status,
            body_excerpt=short,
            malformed=True,
        )

    return APIError(
        f"Unexpected answer from Provero (HTTP {status}): {short or '<empty body>'}",
        status=status,
        body_excerpt=short,
        malformed=True,
    )


class ServiceUnavailableError(HLRError, ConnectionError):
    """The API cannot serve this run now: too many consecutive failures of one kind (the circuit
    breaker), or a ``Retry-After`` beyond the client's cap. Stops a whole run.

    ``kind`` names the failure that tripped it; ``resume_after`` is the server's requested pause
    in seconds, when it sent one.

    Example:
        >>> ServiceUnavailableError("down", kind="connect", resume_after=None).stops_run
        True
    """

    stops_run = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body_excerpt: str | None = None,
        kind: str | None = None,
        resume_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, body_excerpt=body_excerpt)
        self.kind = kind
        self.resume_after = resume_after


class CacheNotWritableError(HLRError, PermissionError):
    """The cache folder cannot be written; raised before any request is sent.

    Example:
        >>> CacheNotWritableError("read-only", path="/ro/cache").path
        '/ro/cache'
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class ColumnConflictError(HLRError, ValueError):
    """The caller's frame already has columns named like result columns; nothing was sent.

    Example:
        >>> ColumnConflictError("clash", columns=["status"]).columns
        ['status']
    """

    def __init__(self, message: str, *, columns: list[str] | None = None) -> None:
        super().__init__(message)
        self.columns = list(columns or [])


class BudgetExceededError(HLRError, ValueError):
    """A run would need more paid lookups than its ``budget``; nothing was sent.

    ``estimate`` is the :class:`~pd_hlr.pipeline.Estimate` that decided it.

    Example:
        >>> BudgetExceededError("too many", estimate=None).estimate is None
        True
    """

    def __init__(self, message: str, *, estimate: Any = None) -> None:
        super().__init__(message)
        self.estimate = estimate
