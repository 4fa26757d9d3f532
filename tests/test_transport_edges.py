"""Edge shapes of answer found by a review of the direct line: each is posted (a scripted raw
answer, ``Scripted`` from ``test_transport_direct``) through ``Transport(direct=True)`` and
``Transport(direct=False)``, and both must read it as urllib3 frames it: no paid answer lost,
no raw exception out of ``post``, a TLS error after sending counted as possibly charged, an
interim ``103`` skipped."""

from __future__ import annotations

import gzip
import os
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

import pytest

from pd_hlr.classify import classify_exception
from pd_hlr.transport import NoReply, Secret, Transport
from tests import test_transport_direct as _direct_tests
from tests.test_transport_direct import BODY, PATH, Scripted, _answer, _outcome

scripted = _direct_tests.scripted  # the fixture: a scripted raw-socket server


def _post_both(
    scripted: Callable[..., Scripted], raw: bytes, close: bool, spare: bool = False, **kw: object
) -> dict:
    """The outcome of one post on each path (``spare``: the server keeps the connection open
    after its answer, waiting for a next request)."""
    outcomes = {}
    for direct in (True, False):
        server = scripted(*[(raw, close)] * (2 if spare else 1))
        transport = Transport(
            server.url, Secret("test-token-123"), max_answer_bytes=2048, direct=direct, **kw
        )
        try:
            try:
                outcomes[direct] = _outcome(transport.post(b"{}"))
            except Exception as exc:  # a raw escape is the bug
                outcomes[direct] = ("raised", type(exc).__module__, type(exc).__name__)
        finally:
            transport.close()
    return outcomes


def test_a_gzip_answer_with_conflicting_content_lengths_is_a_noreply_not_a_raw_raise(
    scripted: Callable[..., Scripted],
) -> None:
    """urllib3's HTTPResponse (built in ``_decoded``) raises urllib3's InvalidHeader from its
    constructor; the adapter path turns it into requests' InvalidHeader (a NoReply); the direct
    line lets it escape ``Transport.post`` (a worker's raw exception stops the whole run)."""
    packed = gzip.compress(BODY)
    raw = _answer(
        packed,
        headers=("Content-Encoding: gzip", f"Content-Length: {len(packed)}, {len(packed) + 1}"),
    )
    outcomes = _post_both(scripted, raw, True)
    assert outcomes[False][0] == "failed"  # the reference: a NoReply, classified
    assert outcomes[True] == outcomes[False]


@pytest.mark.parametrize(
    "te", ["chunked ", "gzip, chunked", "Chunked,chunked"], ids=["trailing_space", "list", "twice"]
)
def test_a_chunked_answer_urllib3_reads_as_chunked_is_read_alike(
    scripted: Callable[..., Scripted], te: str
) -> None:
    """http.client takes ``Transfer-Encoding`` as chunked only when it is exactly ``chunked``
    (case aside); urllib3 (the adapter path) when ``chunked`` is one of its comma-separated,
    stripped items. The direct line reads such a body as close-delimited, framing included."""
    chunks = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
    raw = _answer(chunks, headers=(f"Transfer-Encoding: {te}",))
    outcomes = _post_both(scripted, raw, True)
    assert outcomes[True] == outcomes[False]


def test_a_kept_alive_chunked_answer_with_a_trailing_space_is_not_lost(
    scripted: Callable[..., Scripted],
) -> None:
    """The same with the connection kept open (what a keep-alive server does): the direct
    line waits for a close that never comes, and the paid answer ends as a read timeout."""
    chunks = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
    raw = _answer(chunks, headers=("Transfer-Encoding: chunked ",))
    outcomes = _post_both(scripted, raw, False, spare=True, timeout=(1.0, 1.0))
    assert outcomes[False] == (200, True, BODY)
    assert outcomes[True] == outcomes[False]


def test_a_kept_alive_answer_with_a_repeated_content_length_is_not_lost(
    scripted: Callable[..., Scripted],
) -> None:
    """Pre-existing on both paths (not a difference): ``Content-Length: 38, 38`` (a proxy
    that folded a duplicated header). urllib3 parses the one value but reads through
    http.client, which cannot parse it and reads until the server closes; a keep-alive server
    never does, and the paid answer ends as a read timeout ('connection_lost': retried, so
    paid again). The direct line could read it (urllib3's length is known)."""
    raw = _answer(BODY, headers=(f"Content-Length: {len(BODY)}, {len(BODY)}",))
    server = scripted((raw, False), (raw, False))  # keeps the connection open
    transport = Transport(server.url, Secret("test-token-123"), timeout=(1.0, 1.0))
    try:
        outcome = _outcome(transport.post(b"{}"))
    finally:
        transport.close()
    assert outcome == (200, True, BODY)


def test_an_answer_gzipped_twice_with_two_content_encoding_lines_is_decoded_twice(
    scripted: Callable[..., Scripted],
) -> None:
    """Two ``Content-Encoding: gzip`` lines (an app and a proxy both compressed): urllib3 reads
    them as ``gzip, gzip`` and decodes twice; ``_decoded`` builds its headers with ``dict()``,
    keeps one line, decodes once, and the paid answer is 'malformed' (retried: paid again)."""
    packed = gzip.compress(gzip.compress(BODY))
    raw = _answer(
        packed,
        length=len(packed),
        headers=("Content-Encoding: gzip", "Content-Encoding: gzip"),
    )
    outcomes = _post_both(scripted, raw, True)
    assert outcomes[False] == (200, True, BODY)
    assert outcomes[True] == outcomes[False]


def test_a_gzipped_chunked_answer_leaves_the_connection_ready_for_the_next(
    scripted: Callable[..., Scripted],
) -> None:
    packed = gzip.compress(BODY)
    chunks = b"%x\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (len(packed), packed)
    raw = _answer(chunks, headers=("Content-Encoding: gzip", "Transfer-Encoding: chunked"))
    plain = _answer(BODY, length=len(BODY))
    server = scripted((raw, False), (plain, False), (raw, False))
    transport = Transport(server.url, Secret("test-token-123"), direct=True)
    try:
        outcomes = [_outcome(transport.post(b"{}")) for _ in range(3)]
    finally:
        transport.close()
    assert outcomes == [(200, True, BODY)] * 3
    assert server.connections == 1


def test_the_host_header_names_the_host_connected_to() -> None:
    """An internationalised host: requests connects (and sends SNI) to its IDNA 2008 / UTS 46
    form, which the adapter path also sends as Host; ``_request_head`` re-encodes the raw URL
    with Python's IDNA 2003 codec (``ß`` becomes ``ss``): another host's name."""
    transport = Transport("https://straße.example/api", Secret("test-token-123"))
    try:
        direct = transport._line().direct
        assert direct is not None
        host = next(
            line for line in direct.head.split(b"\r\n") if line.lower().startswith(b"host:")
        )
        assert host == f"Host: {direct.pool.host}".encode()
    finally:
        transport.close()


def test_a_gzip_answer_cut_by_the_deadline_is_not_complete(
    scripted: Callable[..., Scripted],
) -> None:
    """A close-delimited gzip answer trickled past the deadline: the watchdog's shutdown looks
    like the server's close to urllib3's decoder, and ``_decoded`` does not ask whether the
    deadline cut it (the plain close-delimited branch does): the truncated answer comes back
    as a complete 200 instead of a NoReply(expired)."""
    packed = gzip.compress(BODY * 20)
    raw = _answer(packed[: len(packed) // 2], headers=("Content-Encoding: gzip",))
    server = scripted((raw, False), (raw, False))  # keeps the connection open
    transport = Transport(
        server.url, Secret("test-token-123"), deadline=0.5, timeout=(5.0, 5.0), direct=True
    )
    try:
        reply = transport.post(b"{}")
    finally:
        transport.close()
    assert isinstance(reply, NoReply) and reply.expired, _outcome(reply)


class TLSServer:
    """A TLS server on 127.0.0.1 (a trustme certificate) whose ``handle`` serves each
    connection."""

    def __init__(self, context: ssl.SSLContext, handle: Callable[[ssl.SSLSocket], None]) -> None:
        self.context, self.handle = context, handle
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as tls:
                    self.handle(tls)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


def test_a_tls_error_after_the_request_was_sent_counts_as_possibly_charged(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request went out whole, then the answer's TLS record is corrupt (a middlebox, a
    crashed TLS terminator): the lookup may have been billed, so the failure is a lost
    connection (possibly charged), not a TLS error (never sent), on both paths."""
    import requests.adapters

    from pd_hlr.classify import KINDS

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", str(bundle))
    got = []

    def handle(tls: Any) -> None:
        got.append(Scripted._read_request(tls))
        raw = socket.socket(fileno=os.dup(tls.fileno()))  # the TCP socket under the TLS one
        raw.sendall(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)  # an application record, bad MAC
        raw.close()
        threading.Event().wait(0.5)

    server = TLSServer(context, handle)
    kinds = {}
    for direct in (True, False):
        transport = Transport(
            f"https://127.0.0.1:{server.port}{PATH}", Secret("test-token-123"), direct=direct
        )
        try:
            reply = transport.post(b"{}")
        finally:
            transport.close()
        assert got and got[-1].endswith(b"\r\n\r\n{}")  # the whole request arrived
        assert isinstance(reply, NoReply)
        failure = classify_exception(reply.error, "the TLS server", expired=reply.expired)
        kinds["direct" if direct else "adapter"] = failure.kind
    server.close()
    assert kinds == {"direct": "connection_lost", "adapter": "connection_lost"}
    assert KINDS["connection_lost"].possibly_charged


def test_an_interim_103_answer_is_skipped_for_the_final_one(
    scripted: Callable[..., Scripted],
) -> None:
    """Pre-existing on both paths: http.client skips only ``100 Continue``; a ``103 Early
    Hints`` (RFC 8297, sent by some CDNs/gateways) is taken as the final answer with an empty
    body, so the paid 200 behind it is dropped and the attempt is classified 'unexpected'
    (never retried, *not* possibly charged)."""
    raw = b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n" + _answer(
        BODY, length=len(BODY)
    )
    outcomes = _post_both(scripted, raw, True)
    assert outcomes[True] == outcomes[False] == (200, True, BODY)
