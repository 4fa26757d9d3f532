"""The transport: POST one body to Provero and bring back the answer, bounded in time and size.

:class:`Transport` is the one seam between :class:`~pd_hlr.client.HLRClient` and the network
(as geopy's ``adapters.py`` is for its geocoders): the client hands it a body and gets back a
:class:`Reply` or a :class:`NoReply`, never a session, a socket or the token. Invariants: one
keep-alive connection per thread (its own when no proxy applies, else a session's), no
redirects, no cookies, and nothing retries by itself (every retry is the policy's, so a POST
is never silently resent); each attempt ends by its ``deadline`` whatever the server trickles,
and reads at most ``max_answer_bytes``; the token lives in a :class:`Secret` and is scrubbed
from every exception and echoed answer. What an answer means is :mod:`pd_hlr.classify`'s job.
The invariants in full: ``docs/internals/transport.md``.

Example:
    >>> transport = Transport(client.url, Secret("doctest-token"))
    >>> reply = transport.post(b'{"phone": "+441302778473"}')
    >>> reply.status, reply.complete
    (200, True)
    >>> transport.close()
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import http.client
import itertools
import os
import select
import socket
import ssl
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, cast
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.structures import CaseInsensitiveDict
from requests.utils import select_proxy
from urllib3 import HTTPHeaderDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    HTTPError,
    InvalidHeader,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import SSLError as _U3SSLError
from urllib3.response import HTTPResponse as _U3Response
from urllib3.util import Timeout
from urllib3.util.ssl_match_hostname import CertificateError
from urllib3.util.wait import wait_for_read

from pd_hlr.settings import TOKEN_ENV, is_loopback_host

__all__ = [
    "MAX_ANSWER_BYTES",
    "NoReply",
    "Reply",
    "Secret",
    "Transport",
    "hide_echoed_token",
    "read_token",
    "scrub_exception",
]

#: Default of ``max_answer_bytes``: a documented answer is under 2 KB.
MAX_ANSWER_BYTES = 1 << 20


# ------------------------------------------------------------------------------------ secrets
class Secret:
    """Holds the token: its repr never shows it, and it refuses to be pickled.

    Example:
        >>> import pickle
        >>> secret = Secret("s3cret")
        >>> secret
        '***'
        >>> pickle.dumps(secret)
        Traceback (most recent call last):
        ...
        TypeError: the API token cannot be pickled (it would be written in clear)
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("the API token cannot be pickled (it would be written in clear)")


class _BearerAuth(AuthBase):
    """Adds ``Authorization: Bearer …`` to each request (kept out of ``session.headers``)."""

    def __init__(self, secret: Secret) -> None:
        self._secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = "Bearer " + self._secret.reveal()
        return request

    def __repr__(self) -> str:
        return "_BearerAuth('***')"


def read_token(token: str | None) -> tuple[Secret | None, str | None]:
    """(secret or None, problem or None); never raises, so no traceback holds the token."""
    raw = token if token is not None else os.environ.get(TOKEN_ENV)
    raw = raw.strip() if isinstance(raw, str) else raw
    if raw is not None and not isinstance(raw, str):
        return None, f"the API token must be a str, got {type(raw).__name__}"
    if not raw:
        return None, None
    for position, ch in enumerate(raw, 1):
        code = ord(ch)
        if ch.isspace() or code < 32 or 127 <= code < 160:
            # Checked here: requests would echo the header value in its InvalidHeader message.
            return None, "the API token contains whitespace or control characters"
        if code > 255:
            return None, (
                f"the API token has a character at position {position} that cannot be sent in "
                "an HTTP header (not Latin-1: e.g. a typographic quote or dash pasted from a "
                "document). Copy the token again from the Provero dashboard."
            )
    return Secret(raw), None


def _defuse(exc: BaseException) -> None:
    """Make a requests/urllib3 exception safe to chain as a ``__cause__``.

    Its prepared request holds the Authorization header, and the frames of its traceback (and
    of its own causes) hold the headers as locals; keep the exceptions and their messages,
    drop the request objects and the frames.
    """
    for item in _chain(exc):
        if isinstance(item, requests.RequestException):
            item.request = None
            item.response = None
        item.__traceback__ = None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes, contexts, wrapped reasons and group members (each once)."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo.extend((item.__cause__, item.__context__, getattr(item, "reason", None)))
        todo.extend(item.args)
        todo.extend(getattr(item, "exceptions", ()))


def _scrub_value(value: Any, secret: str) -> Any:
    if isinstance(value, str) and secret in value:
        return value.replace(secret, "***")
    if isinstance(value, bytes | bytearray) and secret.encode("utf-8", "replace") in value:
        return bytes(value).replace(secret.encode("utf-8", "replace"), b"***")
    if isinstance(value, tuple):
        return tuple(_scrub_value(v, secret) for v in value)
    if isinstance(value, list):
        return [_scrub_value(v, secret) for v in value]
    if isinstance(value, dict):
        return {_scrub_value(k, secret): _scrub_value(v, secret) for k, v in value.items()}
    return value


#: Tokens at least this long are replaced wherever they occur in an answer; shorter ones (tests,
#: demos: real tokens are long and random) only as the echoed header, ``Bearer <token>``.
_BARE_TOKEN_MIN = 8


def _holds(value: Any, secret: str) -> bool:
    """True if ``secret`` occurs anywhere in a decoded JSON value (keys included)."""
    if isinstance(value, str):
        return secret in value
    if isinstance(value, dict):
        return any(_holds(k, secret) or _holds(v, secret) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds(v, secret) for v in value)
    return False


def scrub_exception(exc: BaseException, token: Secret | None) -> BaseException:
    """Remove the token from an exception of any type and everything chained to it: args,
    attributes (a UnicodeEncodeError's ``.object``), notes, and the locals of finished frames.
    """
    secret = token.reveal() if token is not None else None
    for item in _chain(exc):
        if secret:
            with contextlib.suppress(AttributeError, TypeError):
                item.args = _scrub_value(item.args, secret)
            if isinstance(item, UnicodeError):
                for name in ("object", "reason"):
                    with contextlib.suppress(AttributeError, TypeError):
                        setattr(item, name, _scrub_value(getattr(item, name), secret))
            notes = getattr(item, "__notes__", None)
            if isinstance(notes, list):
                item.__notes__ = _scrub_value(notes, secret)
            for name, value in list(getattr(item, "__dict__", {}).items()):
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(item, name, _scrub_value(value, secret))
        for frame, _ in traceback.walk_tb(item.__traceback__):
            with contextlib.suppress(RuntimeError):  # a frame still running (ours, callers)
                frame.clear()  # its locals may hold the request headers
    return exc


def hide_echoed_token(result: dict[str, Any], token: Secret | None) -> tuple[dict[str, Any], bool]:
    """(the result with the token replaced by ``***`` wherever a gateway echoed it, whether it
    was). A short token is replaced only as the echoed header, ``Bearer <token>``.

    Example:
        >>> hide_echoed_token({"to": "+44", "echo": "Bearer s3cret-token"}, Secret("s3cret-token"))
        ({'to': '+44', 'echo': 'Bearer ***'}, True)
    """
    secret = token.reveal() if token is not None else None
    if not secret:
        return result, False
    if len(secret) < _BARE_TOKEN_MIN:  # a short token is also ordinary text ("t" in "to")
        secret = f"Bearer {secret}"  # so only the header as echoed is replaced
    if not _holds(result, secret):
        return result, False
    return _scrub_value(result, secret), True


# ------------------------------------------------------------------- deadline per attempt
_attempt_local = threading.local()


class _Deadline:
    """One attempt's deadline. When it passes, the socket of the attempt's connection is shut
    down, which ends any blocked read (a body trickled one byte a second included).

    No lock: the attempt (:meth:`finish`) and the watchdog (:meth:`expire`) race for one token
    (``list.pop`` is atomic); the winner decides. An attempt that lost waits, rarely and
    briefly, until the watchdog has cut its socket, so no shutdown lands on a connection
    already back in the pool."""

    __slots__ = ("_cut", "_sock", "_token", "at", "expired")

    def __init__(self, at: float) -> None:
        self.at = at
        self.expired = False
        self._cut = False
        self._sock: socket.socket | None = None
        self._token = [True]

    @property
    def done(self) -> bool:
        """Finished or expired: nothing left for the watchdog to do."""
        return not self._token

    def attach(self, conn: HTTPConnection) -> None:
        """Note the connection's socket (kept: http.client drops ``conn.sock`` on a
        ``Connection: close`` answer while the body is still being read from it)."""
        sock = getattr(conn, "sock", None)
        if sock is None:
            return
        self._sock = sock
        if self.expired:  # the watchdog may have looked before the socket was noted
            self._shutdown(sock)

    def expire(self) -> None:
        try:
            self._token.pop()
        except IndexError:  # the attempt finished first
            return
        self.expired = True
        try:
            if self._sock is not None:
                self._shutdown(self._sock)
        finally:
            self._cut = True

    def finish(self) -> None:
        try:
            self._token.pop()
        except IndexError:  # expired: let the watchdog finish cutting (microseconds)
            while not self._cut:
                time.sleep(0.001)
        self._sock = None

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


#: The watchdog looks at new deadlines at least this often (seconds): arming one never wakes
#: it, so an attempt pays no lock round-trip for its deadline; one may end this much late.
_TICK = 0.05
#: The watchdog's thread ends after this long with no deadline pending (seconds).
_IDLE_EXIT = 1.0
#: Released deadlines left in the heap beyond this many are swept out at once.
_SWEEP_AT = 4096


class _Watchdog:
    """Expires attempt deadlines on time: one daemon thread per client, started on demand and
    ending when idle. Arming appends to a deque and releasing marks the deadline done: neither
    takes a shared lock; the thread moves new deadlines into its heap every ``_TICK``.
    ``clock`` is injectable; :meth:`expire_due` is the logic, the thread only waits."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()  # guards the thread's start and end only
        self._new: deque[_Deadline] = deque()
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float) -> _Deadline:
        deadline = _Deadline(self._clock() + seconds)
        self._new.append(deadline)  # atomic; seen by the thread within _TICK
        if self._thread is None:
            self._start()
        return deadline

    def release(self, deadline: _Deadline) -> None:
        deadline.finish()

    def expire_due(self, now: float) -> float | None:
        """Expire every deadline due at ``now`` (from one thread at a time); return the
        seconds until the next one, or None when none is pending."""
        new, heap = self._new, self._heap
        while new:
            deadline = new.popleft()
            if not deadline.done:
                heapq.heappush(heap, (deadline.at, next(self._seq), deadline))
        while heap and (heap[0][2].done or heap[0][0] <= now):
            _, _, deadline = heapq.heappop(heap)
            deadline.expire()
        if len(heap) > _SWEEP_AT:
            heap[:] = [item for item in heap if not item[2].done]
            heapq.heapify(heap)
        return heap[0][0] - now if heap else None

    def _start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="pd_hlr-deadline", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        idle_since: float | None = None
        while True:
            now = self._clock()
            pause = self.expire_due(now)
            if pause is not None:
                idle_since = None
                time.sleep(min(pause, _TICK))
                continue
            idle_since = now if idle_since is None else idle_since
            if now - idle_since < _IDLE_EXIT:
                time.sleep(_TICK)
            elif not self._stay():
                return

    def _stay(self) -> bool:
        """Idle: end the thread, unless a deadline was armed meanwhile (then keep it, if no
        other thread took over)."""
        with self._cond:
            self._thread = None
        if not self._new:
            return False  # an arm() after this sees no thread and starts one
        with self._cond:
            if self._thread is not None:
                return False
            self._thread = threading.current_thread()
        return True


class _FinalResponse(http.client.HTTPResponse):
    """http.client's response, read past every interim ``1xx`` answer to the final one
    (http.client skips only ``100 Continue``; a ``103 Early Hints`` would be taken as the
    answer and the paid one behind it dropped). ``101`` switches protocols: final."""

    def begin(self) -> None:
        super().begin()
        while 100 <= self.status < 200 and self.status != 101:
            self.headers = self.msg = None  # type: ignore[assignment]  # begin() reads anew
            super().begin()


class _WatchedConnection:
    """Mixin: tell the current attempt's deadline which connection (socket) it runs on; say
    that connecting failed (nothing was sent) when the TLS handshake is cut off or times out,
    as for the TCP connect; note when the request has been sent; read past interim answers."""

    response_class: type[http.client.HTTPResponse] = _FinalResponse

    def connect(self) -> None:
        try:
            super().connect()  # type: ignore[misc]
        except ssl.SSLError:  # a certificate or protocol failure: a TLS error, as it is
            raise
        except TimeoutError as exc:  # the handshake timed out (the TCP connect is urllib3's)
            raise ConnectTimeoutError(self, f"TLS handshake timed out ({exc})") from exc
        except OSError as exc:  # reset or closed during the handshake: nothing was sent
            conn = cast(HTTPConnection, self)
            raise NewConnectionError(conn, f"connection lost while connecting: {exc!r}") from exc
        deadline: _Deadline | None = getattr(_attempt_local, "deadline", None)
        if deadline is not None:
            deadline.attach(self)  # type: ignore[arg-type]

    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline: _Deadline | None = getattr(_attempt_local, "deadline", None)
        if deadline is not None:
            deadline.attach(self)  # type: ignore[arg-type]
        super().request(*args, **kwargs)  # type: ignore[misc]
        _attempt_local.sent = True


class _HTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(HTTPAdapter):
    """requests' adapter with connections that a deadline can cut, for one thread's line: one
    URL with one set of TLS and proxy settings, so the connection pool, its TLS check and the
    URL to request are found once, not per request; and a lean response (no cookie jar, no
    text encoding: the transport keeps no cookies and reads bytes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._found: dict[str, tuple[Any, str]] = {}  # URL: (its urllib3 pool, URL to send)
        self._url = ""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if hasattr(manager, "pool_classes_by_scheme"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: Any, proxies: Any = None, cert: Any = None
    ) -> HTTPConnectionPool:
        """The pool for this request's URL, found and TLS-checked once (again if closed)."""
        url = str(request.url)
        found = self._found.get(url)
        if found is None or found[0].pool is None:  # new, or its pool was closed
            new = super().get_connection_with_tls_context(request, verify, proxies, cert)
            super().cert_verify(new, url, verify, cert)
            found = (new, super().request_url(request, proxies))
            self._found[url] = found
        self._url = found[1]
        return cast(HTTPConnectionPool, found[0])

    def close(self) -> None:
        """Close the pools found for this line too (urllib3 2.8's pool manager no longer
        closes a pool it forgets; one kept here would keep its connection open)."""
        found, self._found = self._found, {}
        for pool, _ in found.values():
            pool.close()
        super().close()

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        if not self._url:  # a requests that did not find the pool above: check as it does
            super().cert_verify(conn, url, verify, cert)
        # else: done once, when the pool was found

    def request_url(self, request: requests.PreparedRequest, proxies: Any) -> str:
        return self._url or super().request_url(request, proxies)

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = resp.status
        response.headers = CaseInsensitiveDict(resp.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = str(req.url)
        response.request = req
        response.connection = self
        return response


# ------------------------------------------------------------------------------- the seam
class Reply(NamedTuple):
    """An answer: its status and headers, and its body (the first ``max_answer_bytes`` of it
    when ``complete`` is false)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    complete: bool


class NoReply(NamedTuple):
    """An attempt without a complete answer: the exception (safe to chain: no request, no
    frames), and whether the attempt's deadline cut it off."""

    error: requests.RequestException
    expired: bool


class _Line(NamedTuple):
    """One thread's way to the API: its session (kept for closing), the session's adapter, the
    request headers (auth included) and the send settings, merged once; and its direct
    connection when no proxy is in the way (None: every request goes through the adapter)."""

    session: requests.Session
    adapter: HTTPAdapter
    headers: dict[str, str]
    settings: dict[str, Any]
    direct: _Direct | None

    def close(self) -> None:
        if self.direct is not None:
            self.direct.close()
        self.session.close()


# ------------------------------------------------------------------------ the direct line
#: Socket errors on sending that still leave an answer to read (the server may have answered
#: and closed): read it, as urllib3 does.
_SEND_ERRNOS = frozenset({errno.EPIPE, errno.ECONNRESET, errno.EPROTOTYPE})
#: Errors of a read that mean "no data within the read timeout".
_BLOCKING_ERRNOS = frozenset({errno.EAGAIN, errno.EWOULDBLOCK})


class _Head(http.client.HTTPConnection):
    """Builds a request head with http.client's own rules (Host, header checks) and keeps it
    instead of sending it: ``endheaders()`` hands the bytes to :meth:`send`."""

    head = b""

    def send(self, data: Any) -> None:
        self.head = bytes(data)


def _request_head(url: str, target: str, headers: Mapping[str, str]) -> bytes:
    """``POST <target> HTTP/1.1`` and ``headers`` (not Content-Length), without the blank
    line that ends a head: the Content-Length line and the blank line follow per request."""
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    probe = _Head(parts.hostname or "", parts.port or default)
    probe.default_port = default  # http.client omits the port when it is the default
    probe.putrequest("POST", target, skip_accept_encoding=True)
    for name, value in headers.items():
        if name.lower() != "content-length":
            probe.putheader(name, value)
    probe.endheaders()
    return probe.head[:-2]


class _Direct:
    """One thread's own keep-alive connection to the API when no proxy is in the way: the
    request head is built once, each request is one ``sendall`` and http.client parses the
    answer (the wire's speed from Python), with the pool's connection class for connecting
    (urllib3's TLS settings and checks, as requests configured them) and urllib3's decoders
    for an encoded body. Failures are raised as the requests exceptions the adapter path
    raises for the same event, so they are classified alike. Used by one thread only."""

    __slots__ = ("conn", "head", "pool", "stirred", "timeout", "url")

    def __init__(
        self, pool: HTTPConnectionPool, head: bytes, url: str, timeout: tuple[float, float]
    ) -> None:
        self.pool, self.head, self.url, self.timeout = pool, head, url, timeout
        self.conn: HTTPConnection | None = None
        self.stirred: Callable[[], bool] = bool  # the kept connection's idle check

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    def _connection(self, deadline: _Deadline) -> HTTPConnection:
        """The kept connection if the server has not closed it meanwhile, else a new one."""
        conn = self.conn
        if conn is not None and conn.sock is not None and not self.stirred():
            deadline.attach(conn)
            return conn
        self.close()  # dropped by the server while idle (or never opened)
        conn = cast(HTTPConnection, self.pool._new_conn())  # the pool's class and TLS settings
        conn.timeout = self.timeout[0]
        try:
            conn.connect()
        except (OSError, HTTPError, CertificateError) as exc:  # ssl errors are OSErrors
            conn.close()
            raise _connect_error(exc, conn) from exc
        except BaseException:
            conn.close()
            raise
        assert conn.sock is not None
        conn.sock.settimeout(self.timeout[1])
        self.conn, self.stirred = conn, _stirred(conn.sock)
        deadline.attach(conn)
        return conn

    def exchange(self, payload: bytes, deadline: _Deadline, limit: int) -> Reply:
        """Send one request on this line and read its answer (at most ``limit`` bytes)."""
        conn = self._connection(deadline)
        sock = conn.sock
        if sock is None:  # closed by Transport.close() on another thread meanwhile
            raise requests.ConnectionError(NewConnectionError(conn, "the connection was closed"))
        try:
            sock.sendall(b"%sContent-Length: %d\r\n\r\n%s" % (self.head, len(payload), payload))
        except OSError as exc:
            if exc.errno not in _SEND_ERRNOS:  # else the server may have answered: read it
                raise requests.ConnectionError(ProtocolError("Connection aborted.", exc)) from exc
        response = _FinalResponse(sock, method="POST")
        head = False  # read yet?
        try:
            response.begin()
            head = True
            reply = self._body(response, deadline, limit)
        except requests.RequestException:  # an OSError too: raised as it is
            response.close()
            raise
        except (OSError, http.client.HTTPException) as exc:
            response.close()
            raise (self._body_error(exc) if head else self._head_error(exc)) from exc
        except BaseException:
            response.close()
            raise
        if not reply.complete or response.will_close:
            self.close()
        return reply

    def _body(
        self, response: http.client.HTTPResponse, deadline: _Deadline, limit: int
    ) -> Reply:
        """The answer whose head ``response`` has read: its body, at most ``limit`` bytes."""
        headers = cast(Mapping[str, str], response.msg)  # case-insensitive .get()
        status = response.status
        if "Content-Encoding" in response.msg or not _plain_framing(response.msg):
            # decoded (or framed) by urllib3, as requests does
            body, complete, until_close = _decoded(response, limit)
            if until_close and deadline.expired:  # was the close the cut?
                raise http.client.IncompleteRead(body)
        elif response.length is not None:  # Content-Length: read it whole, or none
            if response.length > limit:
                return Reply(status, headers, b"", False)
            body, complete = response.read(), True  # IncompleteRead if cut short
        else:  # chunked, or until the server closes
            body, complete = _read_capped(response.read, limit)
            if not response.chunked and deadline.expired:  # was the close the cut?
                raise http.client.IncompleteRead(body)
        return Reply(status, headers, body, complete)

    def _head_error(self, exc: OSError | http.client.HTTPException) -> requests.RequestException:
        """What urllib3 + requests raise when reading an answer's head fails this way."""
        if isinstance(exc, TimeoutError) or getattr(exc, "errno", None) in _BLOCKING_ERRNOS:
            read = self.timeout[1]
            return requests.ReadTimeout(
                ReadTimeoutError(self.pool, self.url, f"Read timed out. (read timeout={read})")
            )
        # a TLS error after the request was sent may follow a paid answer: a lost connection
        return requests.ConnectionError(ProtocolError("Connection aborted.", exc))

    def _body_error(self, exc: OSError | http.client.HTTPException) -> requests.RequestException:
        """What requests' ``iter_content`` raises when reading a body fails this way."""
        if isinstance(exc, TimeoutError) or (
            isinstance(exc, ssl.SSLError) and "read operation timed out" in str(exc)
        ):
            return requests.ConnectionError(
                ReadTimeoutError(self.pool, self.url, "Read timed out.")
            )
        if isinstance(exc, ssl.SSLError):  # after the request was sent: a lost connection
            return requests.ConnectionError(ProtocolError("Connection broken.", exc))
        reason: Exception = exc
        if isinstance(exc, http.client.IncompleteRead):  # keep counts, not the partial body
            reason = ProtocolError(f"IncompleteRead({len(exc.partial)} bytes read)")
        return requests.exceptions.ChunkedEncodingError(
            ProtocolError(f"Connection broken: {reason!r}", reason)
        )


def _connect_error(
    exc: OSError | HTTPError | CertificateError, conn: HTTPConnection
) -> requests.RequestException:
    """What requests raises when opening a connection fails this way (nothing was sent)."""
    if isinstance(exc, ssl.SSLError | ssl.CertificateError | CertificateError):
        return requests.exceptions.SSLError(_U3SSLError(exc))
    if isinstance(exc, _U3SSLError):
        return requests.exceptions.SSLError(exc)
    if isinstance(exc, ConnectTimeoutError) and not isinstance(exc, NewConnectionError):
        return requests.ConnectTimeout(exc)
    if isinstance(exc, TimeoutError):  # e.g. the TLS handshake timed out
        return requests.ConnectTimeout(ConnectTimeoutError(str(exc)))
    if isinstance(exc, NewConnectionError):
        return requests.ConnectionError(exc)
    # e.g. reset during the TLS handshake: the request was not sent
    return requests.ConnectionError(NewConnectionError(conn, f"connection failed: {exc!r}"))


def _stirred(sock: socket.socket) -> Callable[[], bool]:
    """A check that an idle connection is readable: closed by the server (or written to out
    of turn), so not to be used again. urllib3's ``wait_for_read`` makes a poll object per
    call; this one is made once per connection."""
    if not hasattr(select, "poll"):  # Windows
        return lambda: wait_for_read(sock, 0.0)
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return lambda: bool(poller.poll(0))


def _read_capped(read: Callable[[int], bytes], limit: int) -> tuple[bytes, bool]:
    """(body, complete): read to the end; or, past ``limit`` bytes, stop with the first
    ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := read(64 * 1024):
        size += len(chunk)
        chunks.append(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], False
    return b"".join(chunks), True


def _plain_framing(msg: http.client.HTTPMessage) -> bool:
    """True when http.client and urllib3 read the body's framing alike: at most one
    ``Transfer-Encoding``, exactly ``chunked``, and at most one ``Content-Length``, digits."""
    encodings = msg.get_all("Transfer-Encoding") or []
    lengths = msg.get_all("Content-Length") or []
    return (
        len(encodings) <= 1
        and all(e.lower() == "chunked" for e in encodings)
        and len(lengths) <= 1
        and all(n.isdigit() for n in lengths)
    )


def _decoded(response: http.client.HTTPResponse, limit: int) -> tuple[bytes, bool, bool]:
    """(body, complete, delimited by the server's close): an encoded body (gzip, deflate…)
    decoded, or an unusually framed one read, by urllib3, at most ``limit`` bytes of it,
    failures raised as requests' adapter and ``iter_content`` raise them."""
    headers = HTTPHeaderDict()
    for name, value in response.msg.items():
        headers.add(name, value)  # repeated lines joined, as urllib3 does
    try:
        raw = _U3Response(
            body=response,
            headers=headers,
            status=response.status,
            version=response.version,
            reason=response.reason,
            preload_content=False,
            decode_content=True,
            original_response=response,
            enforce_content_length=True,
            request_method="POST",
        )
    except InvalidHeader as exc:  # conflicting Content-Lengths
        raise requests.exceptions.InvalidHeader(exc) from exc
    until_close = raw.length_remaining is None and not raw.chunked
    if response.length is None and not until_close and not raw.chunked:
        response.length = raw.length_remaining  # "38, 38": urllib3 parsed what http.client did not
    chunks = raw.stream(64 * 1024, decode_content=True)
    try:
        return (*_read_capped(lambda _: next(chunks, b""), limit), until_close)
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except ReadTimeoutError as exc:
        raise requests.ConnectionError(exc) from exc
    except _U3SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc


class Transport:
    """POSTs bodies to one URL over keep-alive connections, one session per thread.

    Args:
        url: the endpoint.
        token: the API token; None only for a transport that is never asked to post.
        timeout: ``(connect, read)`` seconds per socket operation.
        deadline: seconds one attempt may take in all (connect + the whole answer).
        max_answer_bytes: the most of an answer read (decoded).
        pool_size: connections kept per session.
        clock: monotonic seconds, for the deadlines.
        direct: when no proxy applies to ``url``, each thread sends on its own keep-alive
            connection (:class:`_Direct`); False sends every request through requests'
            adapter, the path a proxy takes.
    """

    def __init__(
        self,
        url: str,
        token: Secret | None,
        *,
        timeout: tuple[float, float] = (5.0, 30.0),
        deadline: float = 60.0,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        pool_size: int = 8,
        clock: Callable[[], float] = time.monotonic,
        direct: bool = True,
    ) -> None:
        self.url = url
        self.direct = direct
        self.timeout = timeout
        self._timeout = Timeout(connect=timeout[0], read=timeout[1])
        self.deadline = deadline
        self.max_answer_bytes = max_answer_bytes
        self.pool_size = pool_size
        self._token = token
        self._loopback = is_loopback_host(urlsplit(url).hostname or "")
        self._watchdog = _Watchdog(clock)
        self._local = threading.local()
        self._sessions_lock = threading.Lock()
        self._sessions: list[tuple[threading.Thread, _Line]] = []
        self._generation = 0

    def __repr__(self) -> str:
        return f"Transport({self.url!r})"

    def __reduce__(self) -> Any:
        raise TypeError("a Transport cannot be pickled (it holds the API token)")

    def post(self, payload: bytes) -> Reply | NoReply:
        """One attempt, bounded by ``deadline`` and ``max_answer_bytes``.

        The request is this thread's template (headers, auth, proxies and TLS settings merged
        once per session) with ``payload`` as its body: sent on the thread's direct line
        (:class:`_Direct`) when no proxy applies, else handed straight to the adapter. No
        per-request merging of session settings, no redirects, no cookies kept.
        """
        try:
            line = self._line()
        except requests.RequestException as exc:  # e.g. an unusable proxy setting
            _defuse(exc)
            return NoReply(exc, False)
        if line.direct is not None:
            return self._post_direct(line.direct, payload)
        request = requests.PreparedRequest()
        request.method, request.url, request.body = "POST", self.url, payload
        request.headers = {**line.headers, "Content-Length": str(len(payload))}  # type: ignore[assignment]
        deadline = self._watchdog.arm(self.deadline)
        _attempt_local.deadline, _attempt_local.sent = deadline, False
        response: requests.Response | None = None
        try:
            response = line.adapter.send(  # a urllib3 Timeout is used as it is
                request, stream=True, timeout=self._timeout, **line.settings  # type: ignore[arg-type]
            )
            body, complete = self._read(response)
        except requests.RequestException as exc:
            error = exc
            if isinstance(exc, requests.exceptions.SSLError) and _attempt_local.sent:
                # after the request was sent the answer may have been paid: a lost connection
                error = requests.ConnectionError(ProtocolError("Connection aborted.", exc))
            _defuse(error)
            return NoReply(error, deadline.expired)
        finally:
            _attempt_local.deadline = None
            self._watchdog.release(deadline)
            if response is not None:
                response.close()
        return Reply(response.status_code, response.headers, body, complete)

    def _post_direct(self, direct: _Direct, payload: bytes) -> Reply | NoReply:
        """One attempt on this thread's direct connection (see :class:`_Direct`)."""
        deadline = self._watchdog.arm(self.deadline)
        try:
            reply = direct.exchange(payload, deadline, self.max_answer_bytes)
        except requests.RequestException as exc:
            direct.close()
            _defuse(exc)
            return NoReply(exc, deadline.expired)
        except BaseException:
            direct.close()
            raise
        finally:
            self._watchdog.release(deadline)
        if deadline.expired:  # cut just after the answer was read: the socket is shut down
            direct.close()
        return reply

    def close(self) -> None:
        """Close every session and connection opened so far (new ones open lazily)."""
        with self._sessions_lock:
            lines, self._sessions = self._sessions, []
            self._generation += 1
        for _, line in lines:
            line.close()

    def close_dead_sessions(self) -> None:
        """Close the sessions and connections of threads that have ended (a finished run's
        workers)."""
        with self._sessions_lock:
            dead = [(t, line) for t, line in self._sessions if not t.is_alive()]
            self._sessions = [(t, line) for t, line in self._sessions if t.is_alive()]
        for _, line in dead:
            line.close()

    def _line(self) -> _Line:
        """This thread's keep-alive session and request template (created on first use)."""
        local = self._local
        line: _Line | None = getattr(local, "line", None)
        if line is not None and local.generation == self._generation:
            return line
        assert self._token is not None
        session = requests.Session()
        # max_retries=0: urllib3 must not retry anything by itself. Every retry decision is
        # made per failure by the retry policy, so each attempt passes the rate limiter, the
        # stop event and the stats; a POST is never silently resent.
        adapter = _Adapter(pool_connections=1, pool_maxsize=self.pool_size, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.auth = _BearerAuth(self._token)
        session.headers.update({"Accept": "application/json", "Content-Type": "application/json"})
        if self._loopback:
            session.trust_env = False  # never send sandbox traffic through an env proxy
        template = session.prepare_request(requests.Request("POST", self.url, data=b"{}"))
        env = session.merge_environment_settings(self.url, {}, None, None, None)
        settings = {name: env[name] for name in ("verify", "cert", "proxies")}
        headers = dict(template.headers)
        direct = None
        proxies = cast(Mapping[str, str], settings["proxies"])
        if self.direct and select_proxy(self.url, proxies) is None:
            pool = adapter.get_connection_with_tls_context(
                template, settings["verify"], settings["proxies"], settings["cert"]
            )
            head = _request_head(str(template.url), template.path_url, headers)
            direct = _Direct(pool, head, self.url, self.timeout)
        line = _Line(session, adapter, headers, settings, direct)
        with self._sessions_lock:
            self._sessions.append((threading.current_thread(), line))
            local.generation = self._generation
        local.line = line
        return line

    def _read(self, response: requests.Response) -> tuple[bytes, bool]:
        """(body, complete): the decoded body, or its first ``max_answer_bytes`` when longer."""
        limit = self.max_answer_bytes
        declared = response.headers.get("Content-Length", "")
        encoded = "Content-Encoding" in response.headers  # the decoded size is what counts
        if declared.isdigit() and int(declared) > limit and not encoded:
            return b"", False
        chunks = response.iter_content(64 * 1024)
        return _read_capped(lambda _: next(chunks, b""), limit)
