"""The exception tree of pd-hlr (classes only: which answer maps to which error is
:mod:`pd_hlr.classify`'s job, whether it is retried :mod:`pd_hlr.retry`'s).

Every error the package raises about a lookup is an :class:`HLRError`; each subclass also
inherits the built-in exception it resembles (``AuthenticationError`` is a ``PermissionError``,
``TransportError`` a ``ConnectionError``, ...), so generic handlers keep working. An error with
``stops_run`` ends a run and carries ``.partial``, ``.looked_up``, ``.remaining`` and
``.report``. :class:`RunInterrupted` is a ``KeyboardInterrupt``, deliberately not an
``HLRError``: ``except Exception`` must not swallow Ctrl-C. The whole tree, with each class's
attributes: ``docs/internals/errors.md`` (a test keeps it complete).

Example:
    >>> err = InsufficientBalanceError("top up", required_amount=Decimal("0.006"))
    >>> err.stops_run, isinstance(err, HLRError)
    (True, True)
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

__all__ = [
    "APIError",
    "AuthenticationError",
    "BudgetExceededError",
    "CacheFolderError",
    "CacheNotWritableError",
    "ColumnConflictError",
    "HLRError",
    "InsufficientBalanceError",
    "RateLimitError",
    "RunInterrupted",
    "ServiceUnavailableError",
    "StaleClaimsError",
    "TransportError",
    "ValidationError",
]


def _rebuild(
    cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]
) -> BaseException:
    """Unpickle an :class:`HLRError` (or :class:`RunInterrupted`) without calling its
    ``__init__``."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class HLRError(Exception):
    """Base class of every lookup error.

    ``status`` is the HTTP status (None when no answer came), ``body_excerpt`` the start of the
    answer's body, ``kind`` the failure kind the client classified it as (a key of
    ``pd_hlr.classify.KINDS``, e.g. ``"timeout"``; None when the error did not come from an
    answer). ``outcomes`` and ``pending`` are filled only on errors that stop a whole
    ``lookup_many`` run (those with ``stops_run`` true).

    Example:
        >>> try:
        ...     raise APIError("boom", status=500)
        ... except HLRError as exc:
        ...     exc.status
        500
    """

    #: True on the errors that stop a ``lookup_many`` run (no further request is sent).
    stops_run: bool = False
    #: The failure kind (``pd_hlr.classify.KINDS``) set by the client; None otherwise.
    kind: str | None = None

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


class CacheFolderError(CacheNotWritableError):
    """The cache refuses a folder it cannot prove is its own (it holds files the cache did not
    write, it is owned by another user, or a cache file is a link or a special file). Raised
    before anything is read, written, moved or looked up.

    Example:
        >>> err = CacheFolderError("not a cache", path="/data", files=["part-00000-x.parquet"])
        >>> err.files, isinstance(err, CacheNotWritableError)
        (['part-00000-x.parquet'], True)
    """

    def __init__(
        self, message: str, *, path: str | None = None, files: list[str] | None = None
    ) -> None:
        super().__init__(message, path=path)
        self.files = list(files or [])


class StaleClaimsError(HLRError, TimeoutError):
    """Numbers this run needs are claimed by another process that stopped refreshing its
    claims (suspended: Ctrl-Z, ``docker pause``, a closed laptop lid) for longer than the
    claims lease. Raised instead of waiting forever; what this run already paid for is in the
    cache, and a re-run continues.

    Example:
        >>> StaleClaimsError("stale", pid=4242, numbers=3).pid
        4242
    """

    def __init__(
        self,
        message: str,
        *,
        pid: int | None = None,
        path: str | None = None,
        numbers: int = 0,
    ) -> None:
        super().__init__(message)
        self.pid = pid
        self.path = path
        self.numbers = numbers


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


class RunInterrupted(KeyboardInterrupt):
    """A ``validate`` run stopped by the user or the system: Ctrl-C (Jupyter's Kernel →
    Interrupt), or SIGTERM / SIGHUP (``timeout``, ``docker stop``, systemd, Kubernetes, a closed
    terminal). The answers that were in flight finished and, like every answer, are in the
    cache: a re-run continues with the rest.

    ``signal`` names the signal (``"SIGINT"`` for Ctrl-C), ``exit_code`` is the shell's
    ``128 + signal number`` (what ``pd-hlr`` exits with). Like a run-stopping
    :class:`HLRError`, it carries ``.partial`` (the result so far, the face's kind of frame),
    ``.looked_up``, ``.remaining`` and ``.report``.

    Example:
        >>> exc = RunInterrupted("pd-hlr: stopped by SIGTERM", signal="SIGTERM")
        >>> isinstance(exc, KeyboardInterrupt), isinstance(exc, Exception), exc.exit_code
        (True, False, 143)
    """

    def __init__(self, message: str, signal: str = "SIGINT") -> None:
        super().__init__(message)
        self.signal = signal
        self.partial: Any = None
        self.looked_up: int | None = None
        self.remaining: int | None = None
        self.report: Any = None

    @property
    def exit_code(self) -> int:
        """``128 +`` the signal's number: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
        import signal as _signal

        return 128 + int(getattr(_signal, self.signal, _signal.SIGINT))

    def __str__(self) -> str:
        said = str(self.args[0]) if self.args else ""
        return said + (" The result so far is in .partial." if self.partial is not None else "")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))

