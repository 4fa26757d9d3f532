"""The direct line and the adapter path give the same reply, or fail the same way, for every
shape of answer a server can send: a scripted HTTP server on 127.0.0.1 (as urllib3's
``dummyserver``) sends each raw answer, and each is posted through ``Transport(direct=True)``
and ``Transport(direct=False)``. The sandbox's fault knobs are checked on both paths in
``test_transport_paths.py``; these are the wire-level shapes the spec's sandbox does not send
(a broken gzip body, a short Content-Length, a close-delimited or chunked body, a garbled
status line, a refused port) and keep-alive reuse."""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pd_hlr.classify import classify_exception
from pd_hlr.transport import NoReply, Reply, Secret, Transport, _request_head

BODY = b'{"results": [{"to": "+441302778473"}]}'
PATH = "/api/validate/phone"


def _answer(
    body: bytes, *, headers: tuple[str, ...] = (), length: int | None = None, status: str = "200 OK"
) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", *headers]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _chunked(body: bytes) -> bytes:
    half = len(body) // 2
    parts = [body[:half], body[half:]]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    return _answer(chunks + b"0\r\n\r\n", headers=("Transfer-Encoding: chunked",))


#: name: (the raw answer, whether the server closes the connection after sending it)
SHAPES: dict[str, tuple[bytes, bool]] = {
    "ok": (_answer(BODY, length=len(BODY)), False),
    "connection_close": (
        _answer(BODY, length=len(BODY), headers=("Connection: close",)),
        True,
    ),
    "chunked": (_chunked(BODY), False),
    "until_close": (_answer(BODY), True),
    "gzip": (
        _answer(gzip.compress(BODY), length=len(gzip.compress(BODY)),
                headers=("Content-Encoding: gzip",)),
        False,
    ),
    "broken_gzip": (
        _answer(b"not gzip at all", length=15, headers=("Content-Encoding: gzip",)),
        False,
    ),
    "short_body": (_answer(BODY[:10], length=len(BODY)), True),
    "broken_chunks": (_answer(b"5\r\nabc", headers=("Transfer-Encoding: chunked",)), True),
    "garbled_status": (b"HTTQ/9 what\r\n\r\n", True),
    "no_answer": (b"", True),
    "declared_too_large": (_answer(b"x" * 10, length=5_000_000), True),
    "too_large_chunked": (_chunked(b"x" * 3000), False),
    "status_503": (_answer(b"{}", length=2, status="503 Service Unavailable"), False),
}


class Scripted:
    """A server that answers each request on a connection with the next raw answer of its
    script, then keeps the connection or closes it; it counts the connections it accepted."""

    def __init__(self, script: list[tuple[bytes, bool]]) -> None:
        self.script = list(script)
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed = threading.Event()  # set each time the server closes a connection
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def _serve(self) -> None:
        while self.script:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while self.script:
                    request = self._read_request(conn)
                    if request is None:
                        break
                    self.requests.append(request)
                    raw, close = self.script.pop(0)
                    conn.sendall(raw)
                    if close:
                        break
            self.closed.set()

    @staticmethod
    def _read_request(conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += conn.recv(65536)
        return head + b"\r\n\r\n" + body

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    servers: list[Scripted] = []

    def start(*script: tuple[bytes, bool]) -> Scripted:
        servers.append(Scripted(list(script)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _outcome(reply: Reply | NoReply) -> tuple[Any, ...]:
    """What the client would act on: status, completeness and body; or the failure's kind."""
    if isinstance(reply, NoReply):
        failure = classify_exception(reply.error, "the scripted server", expired=reply.expired)
        return ("failed", failure.kind, type(reply.error).__name__)
    return (reply.status, reply.complete, reply.body)


def _transport(url: str, direct: bool) -> Transport:
    return Transport(url, Secret("test-token-123"), max_answer_bytes=2048, direct=direct)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_answer_shape_gives_the_same_outcome_on_both_paths(
    shape: str, scripted: Callable[..., Scripted]
) -> None:
    outcomes = {}
    for direct in (True, False):
        server = scripted(SHAPES[shape])
        transport = _transport(server.url, direct)
        try:
            outcomes[direct] = _outcome(transport.post(b'{"phone": "+441302778473"}'))
        finally:
            transport.close()
        assert len(server.requests) == 1
    assert outcomes[True] == outcomes[False]


EXPECTED = {
    "ok": (200, True, BODY),
    "chunked": (200, True, BODY),
    "until_close": (200, True, BODY),
    "gzip": (200, True, BODY),
    "connection_close": (200, True, BODY),
    "status_503": (503, True, b"{}"),
    "declared_too_large": (200, False, b""),
    "broken_gzip": ("failed", "malformed", "ContentDecodingError"),
    "short_body": ("failed", "connection_lost", "ChunkedEncodingError"),
    "broken_chunks": ("failed", "connection_lost", "ChunkedEncodingError"),
    "garbled_status": ("failed", "connection_lost", "ConnectionError"),
    "no_answer": ("failed", "connection_lost", "ConnectionError"),
}


@pytest.mark.parametrize("shape", sorted(EXPECTED))
def test_the_direct_line_reads_each_shape_as_written(
    shape: str, scripted: Callable[..., Scripted]
) -> None:
    """The outcomes themselves (not only that both paths agree)."""
    server = scripted(SHAPES[shape])
    transport = _transport(server.url, direct=True)
    try:
        assert _outcome(transport.post(b"{}")) == EXPECTED[shape]
    finally:
        transport.close()


def test_a_chunked_answer_over_the_limit_is_cut_at_the_limit(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted(SHAPES["too_large_chunked"])
    transport = _transport(server.url, direct=True)
    try:
        status, complete, body = _outcome(transport.post(b"{}"))
    finally:
        transport.close()
    assert (status, complete, body) == (200, False, b"x" * 2048)


def test_a_refused_connection_is_a_connect_failure_on_both_paths() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed when the block ends: nothing listens there
    for direct in (True, False):
        transport = _transport(f"http://127.0.0.1:{port}{PATH}", direct)
        try:
            outcome = _outcome(transport.post(b"{}"))
        finally:
            transport.close()
        assert outcome[:2] == ("failed", "connect"), (direct, outcome)


def test_one_thread_keeps_one_connection_for_its_requests(
    scripted: Callable[..., Scripted],
) -> None:
    ok = SHAPES["ok"]
    server = scripted(*[ok] * 5)
    transport = _transport(server.url, direct=True)
    try:
        assert [_outcome(transport.post(b"{}"))[0] for _ in range(5)] == [200] * 5
    finally:
        transport.close()
    assert server.connections == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_not_failed(
    scripted: Callable[..., Scripted],
) -> None:
    """The server answers (keep-alive) and then closes the idle connection: the next request
    goes on a new connection, with no failure (a POST on a dead connection may be charged)."""
    body = SHAPES["ok"][0]
    server = scripted((body, True), (body, False))  # closes after the first answer
    transport = _transport(server.url, direct=True)
    try:
        assert _outcome(transport.post(b"{}")) == (200, True, BODY)
        assert server.closed.wait(10)
        assert _outcome(transport.post(b"{}")) == (200, True, BODY)
    finally:
        transport.close()
    assert server.connections == 2 and len(server.requests) == 2


def test_connection_close_answers_open_a_new_connection_each(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted(*[SHAPES["connection_close"]] * 3)
    transport = _transport(server.url, direct=True)
    try:
        assert [_outcome(transport.post(b"{}"))[0] for _ in range(3)] == [200] * 3
    finally:
        transport.close()
    assert server.connections == 3


def test_both_paths_send_the_same_request(scripted: Callable[..., Scripted]) -> None:
    """Same request line, headers (token included) and body: only the order may differ."""
    seen = []
    server = scripted(SHAPES["connection_close"], SHAPES["connection_close"])
    for direct in (True, False):
        transport = _transport(server.url, direct)
        try:
            transport.post(b'{"phone": "+441302778473"}')
        finally:
            transport.close()
        head, _, body = server.requests[-1].partition(b"\r\n\r\n")
        first, *headers = head.split(b"\r\n")
        seen.append((first, sorted(h.lower() for h in headers), body))
    assert seen[0] == seen[1]
    first, headers, body = seen[0]
    assert first == f"POST {PATH} HTTP/1.1".encode()
    assert b"authorization: bearer test-token-123" in headers
    assert f"host: 127.0.0.1:{server.port}".encode() in headers
    assert b"content-length: 26" in headers and body == b'{"phone": "+441302778473"}'


@pytest.mark.parametrize(
    ("env", "direct"),
    [
        ({}, True),
        ({"HTTPS_PROXY": "http://127.0.0.1:9"}, False),
        ({"ALL_PROXY": "http://127.0.0.1:9"}, False),
        ({"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "api.provero.io"}, True),
        ({"HTTP_PROXY": "http://127.0.0.1:9"}, True),  # for http:// URLs only
    ],
)
def test_a_proxy_that_applies_to_the_url_takes_the_adapter_path(
    env: dict[str, str], direct: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The direct line never bypasses a proxy the environment sets for the API's URL."""
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    transport = Transport(f"https://api.provero.io{PATH}", Secret("test-token-123"))
    try:
        assert (transport._line().direct is not None) is direct
        assert Transport(transport.url, Secret("x" * 12), direct=False)._line().direct is None
    finally:
        transport.close()


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://api.provero.io", "api.provero.io"),
        ("https://api.provero.io:443", "api.provero.io"),
        ("https://API.Provero.io:8443", "api.provero.io:8443"),
        ("http://127.0.0.1", "127.0.0.1"),
        ("http://127.0.0.1:80", "127.0.0.1"),
        ("http://127.0.0.1:8787", "127.0.0.1:8787"),
        ("http://localhost:8787", "localhost:8787"),
        ("http://[::1]:8787", "[::1]:8787"),
        ("https://[::1]", "[::1]"),
    ],
)
def test_the_host_header_names_the_port_only_when_it_is_not_the_scheme_default(
    url: str, host: str
) -> None:
    """RFC 9110 §7.2: Host is the URI's host and, unless it is the scheme's default, port."""
    head = _request_head(url + PATH, PATH, {"Accept": "application/json"})
    assert head == (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n".encode()
    )
