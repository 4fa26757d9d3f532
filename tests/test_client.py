"""HLRClient, the error tree and the rate limiter, against the real sandbox over HTTP.

Backoff sleeps are recorded instead of slept (``client._sleep`` replaced), so retry tests are
fast. Every exception a test sees goes through ``check_no_leak``; an autouse fixture captures
all log records at DEBUG and checks none contains a token.
"""

from __future__ import annotations

import _thread
import contextlib
import itertools
import json
import logging
import pickle
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from decimal import Decimal
from email.utils import formatdate
from typing import Any

import pytest
import requests

from pd_hlr import sandbox
from pd_hlr.client import HLRClient
from pd_hlr.errors import (
    APIError,
    AuthenticationError,
    HLRError,
    InsufficientBalanceError,
    RateLimitError,
    TransportError,
    ValidationError,
    error_from_response,
    parse_retry_after,
)
from pd_hlr.ratelimit import RateLimiter

SECRET = "sk-live-" + secrets.token_hex(12)
WRONG = "sk-wrong-" + secrets.token_hex(12)
ENDPOINT = "/api/validate/phone"
NUMBERS = [f"+4479{i:08d}" for i in range(400)]


# ----------------------------------------------------------------------------- helpers
def check_no_leak(*objects: object) -> None:
    """No token in str/repr of the objects, nor in their formatted tracebacks (with locals)."""
    for obj in objects:
        texts = [str(obj), repr(obj)]
        if isinstance(obj, BaseException):
            texts.append("".join(traceback.format_exception(obj)))
            tb = traceback.TracebackException.from_exception(obj, capture_locals=True)
            texts.append("".join(tb.format()))
            if isinstance(obj, HLRError):
                texts.append(str(obj.body_excerpt))
                texts.extend(str(o) for o in obj.outcomes.values())
        for text in texts:
            assert SECRET not in text
            assert WRONG not in text


@pytest.fixture(autouse=True)
def _no_token_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    text = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    assert SECRET not in text
    assert WRONG not in text


@pytest.fixture
def serve() -> Iterator[Callable[..., Any]]:
    """Start sandboxes (token SECRET by default) that stop at teardown."""
    with contextlib.ExitStack() as stack:

        def start(**kwargs: Any) -> Any:
            kwargs.setdefault("token", SECRET)
            return stack.enter_context(sandbox.serve(**kwargs))

        yield start


@pytest.fixture
def new_client() -> Iterator[Callable[..., HLRClient]]:
    """Clients on a sandbox whose backoff sleeps are recorded in ``client.sleeps``."""
    clients: list[HLRClient] = []

    def build(sb: Any, **kwargs: Any) -> HLRClient:
        kwargs.setdefault("token", sb.token)
        client = HLRClient(base_url=sb.url, **kwargs)
        sleeps: list[float] = []
        client.sleeps = sleeps  # type: ignore[attr-defined]
        client._sleep = sleeps.append  # type: ignore[method-assign]
        clients.append(client)
        return client

    yield build
    for client in clients:
        check_no_leak(client, client.stats)
        client.close()


def raises(exc_type: type[BaseException], fn: Callable[[], object]) -> Any:
    with pytest.raises(exc_type) as info:
        fn()
    check_no_leak(info.value)
    return info.value


def max_in_window(times: list[float], width: float = 1.0) -> int:
    """Most timestamps in any closed window of ``width`` seconds."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] < t - width:
            start += 1
        best = max(best, end - start + 1)
    return best


# ----------------------------------------------------------------------------- construction
def test_repr_and_missing_token(serve: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROVERO_API_TOKEN", raising=False)
    sb = serve()
    client = HLRClient(base_url=sb.url)
    assert "token=None" in repr(client)
    err = raises(AuthenticationError, lambda: client.lookup(NUMBERS[0]))
    assert "PROVERO_API_TOKEN" in str(err)
    assert isinstance(err, PermissionError)
    err = raises(AuthenticationError, lambda: client.lookup_many(NUMBERS[:3]))
    assert err.pending == NUMBERS[:3]
    assert sb.stats().requests == 0


def test_token_and_base_url_from_env(
    serve: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = serve()
    monkeypatch.setenv("PROVERO_API_TOKEN", f"  {SECRET}\n")  # stray whitespace is stripped
    monkeypatch.setenv("PROVERO_BASE_URL", sb.url + "/")
    with HLRClient() as client:
        assert client.base_url == sb.url
        assert client.lookup(NUMBERS[0])["to"] == NUMBERS[0]
        assert SECRET not in repr(client) and "token=***" in repr(client)
        check_no_leak(client, vars(client))
    monkeypatch.delenv("PROVERO_BASE_URL")
    assert HLRClient().base_url == "https://api.provero.io"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8787", "http://127.5.0.1", "http://[::1]:9000", "http://localhost:1"],
)
def test_plain_http_allowed_on_loopback(url: str) -> None:
    assert HLRClient(token="t", base_url=url).url == url + ENDPOINT


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://api.provero.io", "unencrypted"),
        ("http://10.0.0.1:8787", "unencrypted"),
        ("http://localhost.example.com", "unencrypted"),
        ("ftp://api.provero.io", "https://"),
        ("api.provero.io", "https://"),
        ("https://user:pw@api.provero.io", "credentials"),
    ],
)
def test_bad_base_url_refused(url: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        HLRClient(token="t", base_url=url)


def test_token_with_control_characters_refused_without_echo() -> None:
    with pytest.raises(ValueError) as info:
        HLRClient(token=SECRET + "\nX-Evil: 1", base_url="http://127.0.0.1:1")
    check_no_leak(info.value)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        HLRClient(token="t", timeout=0)
    with pytest.raises(ValueError):
        HLRClient(token="t", workers=0)
    with pytest.raises(ValueError):
        HLRClient(token="t", max_retries=-1)
    client = HLRClient(token="t", base_url="http://127.0.0.1:1")
    with pytest.raises(TypeError):
        client.lookup(441302778473)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client.lookup("+441302778473", detailed="false")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- happy path
def test_lookup_returns_the_result_object(serve: Callable[..., Any], new_client: Any) -> None:
    sb = serve()
    client = new_client(sb)
    phone = "+441302778473"
    summary = client.lookup(phone)
    assert summary == sandbox.answer(phone)
    assert isinstance(summary["status"], str)
    detailed = client.lookup(phone, detailed=True, roaming=True, route="detailed", msisdn=True)
    assert detailed == sandbox.answer(phone, detailed=True, roaming=True, route="detailed")
    assert "roaming" in detailed and "ported" in detailed
    assert client.stats.requests == 2 and client.stats.retries == 0


def test_options_serialised_as_documented() -> None:
    client = HLRClient(token="t", base_url="http://127.0.0.1:1")
    opts = client._options(detailed=True, roaming=None, route="standard", msisdn=False)
    assert json.loads(client._payload("+441302778473", opts)) == {
        "phone": "+441302778473",
        "detailed": True,
        "route": "standard",
        "msisdn": False,
    }
    assert json.loads(client._payload("+441302778473", client._options())) == {
        "phone": "+441302778473"
    }


def test_lookup_many_dedups_and_calls_back_from_workers(
    serve: Callable[..., Any], new_client: Any
) -> None:
    sb = serve(latency=0.005)
    client = new_client(sb, workers=4)
    numbers = NUMBERS[:40] + NUMBERS[:10]
    seen: dict[str, Any] = {}
    threads: set[str] = set()

    def on_result(number: str, outcome: Any) -> None:
        assert number not in seen
        seen[number] = outcome
        threads.add(threading.current_thread().name)

    out = client.lookup_many(numbers, detailed=True, on_result=on_result)
    assert list(out) == NUMBERS[:40]
    assert seen == out
    assert all(out[n] == sandbox.answer(n, detailed=True) for n in NUMBERS[:40])
    assert set(sb.stats().received.values()) == {1}
    assert threads and all(name.startswith("pd_hlr") for name in threads)
    # worker sessions are closed when the run ends; the client stays usable
    assert all(t.is_alive() for t, _ in client._sessions)
    assert client.lookup(NUMBERS[0], detailed=True) == out[NUMBERS[0]]
    client.close()
    assert client._sessions == []
    assert client.lookup(NUMBERS[1], detailed=True) == out[NUMBERS[1]]
    assert client.lookup_many([]) == {}


def test_per_number_failures_do_not_stop_the_others(
    serve: Callable[..., Any], new_client: Any
) -> None:
    sb = serve()
    client = new_client(sb, workers=4)
    bad = ["+4479", "+44790000000000000", ""]
    out = client.lookup_many(NUMBERS[:20] + bad)
    for number in bad:
        assert isinstance(out[number], ValidationError), number
        check_no_leak(out[number])
    assert all(isinstance(out[n], dict) for n in NUMBERS[:20])
    assert client.stats.retries == 0


# ----------------------------------------------------------------------------- error classes
def test_401_wrong_token_is_not_retried(serve: Callable[..., Any], new_client: Any) -> None:
    sb = serve()
    client = new_client(sb, token=WRONG)
    err = raises(AuthenticationError, lambda: client.lookup(NUMBERS[0]))
    assert err.status == 401 and "Unauthenticated." in str(err)
    assert sb.stats().requests == 1 and client.sleeps == []


def test_402_has_decimal_amounts_and_is_not_retried(
    serve: Callable[..., Any], new_client: Any
) -> None:
    sb = serve(balance=0)
    client = new_client(sb)
    err = raises(InsufficientBalanceError, lambda: client.lookup(NUMBERS[0]))
    assert err.status == 402
    assert err.required_amount == Decimal("0.0060000000")
    assert err.current_balance == Decimal("0")
    assert sb.stats().requests == 1 and client.sleeps == []


@pytest.mark.parametrize(
    ("phone", "message"),
    [
        ("", "The phone field is required."),
        ("+4479", "The phone field must be at least 10 characters."),
        ("+4479000000000000", "The phone field must not be greater than 15 characters."),
    ],
)
def test_validation_error_from_422(
    serve: Callable[..., Any], new_client: Any, phone: str, message: str
) -> None:
    sb = serve()
    client = new_client(sb)
    err = raises(ValidationError, lambda: client.lookup(phone))
    assert isinstance(err, ValueError)
    assert err.status == 422 and err.errors == {"phone": [message]}
    assert message in str(err)
    assert sb.stats().requests == 1 and sb.stats().total_charged == 0


def test_400_request_error_body_maps_to_api_error(serve: Callable[..., Any]) -> None:
    # The client always sends a JSON object, so capture the sandbox's real 400 with a raw post.
    sb = serve()
    response = requests.post(
        sb.url + ENDPOINT,
        data=b"{not json",
        headers={"Authorization": f"Bearer {sb.token}", "Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 400
    err = error_from_response(response.status_code, response.content, response.headers)
    assert isinstance(err, APIError) and err.code == "400" and not err.malformed
    assert err.status == 400 and err.message_id
    check_no_leak(err)


def test_500_retried_with_capped_full_jitter_then_api_error(
    serve: Callable[..., Any], new_client: Any
) -> None:
    sb = serve(faults=sandbox.Faults(error_500=1.0))
    client = new_client(sb, max_retries=6, backoff_factor=0.5, backoff_max=4.0)
    err = raises(APIError, lambda: client.lookup(NUMBERS[0]))
    assert err.status == 500 and err.attempts == 7 and err.body_excerpt
    assert "HTTP 500" in str(err) and "gave up after 7 attempts" in str(err)
    assert sb.stats().requests == 7 and sb.stats().total_charged == 0
    assert len(client.sleeps) == 6 and client.stats.retries == 6
    for n, delay in enumerate(client.sleeps, start=1):
        assert 0.0 <= delay <= min(4.0, 0.5 * 2 ** (n - 1))
    assert client.stats.possibly_charged == 0


def test_backoff_is_exponential_full_jitter() -> None:
    client = HLRClient(token="t", base_url="http://127.0.0.1:1", backoff_factor=1.0, backoff_max=8)
    client._random.seed(1)
    for n, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0), (500, 8.0)]:
        draws = [client._backoff(n, None) for _ in range(300)]
        assert min(draws) >= 0 and max(draws) <= ceiling
        assert max(draws) > 0.8 * ceiling  # jitter spans the whole range
    assert client._backoff(3, 2.5) == 2.5  # Retry-After wins, no jitter
    assert client._backoff(3, 10_000.0) == client.retry_after_max


def test_503_then_success(serve: Callable[..., Any], new_client: Any) -> None:
    sb = serve(faults=sandbox.Faults(error_503=0.5), seed=3)
    client = new_client(sb, max_retries=20)
    out = client.lookup_many(NUMBERS[:30])
    assert all(isinstance(v, dict) for v in out.values())
    stats = sb.stats()
    assert client.stats.retries == stats.status_counts.get(503, 0) > 0
    assert client.stats.requests == stats.requests
    assert client.stats.possibly_charged == 0 and stats.total_charged == 30


def test_429_retry_after_seconds(serve: Callable[..., Any], new_client: Any) -> None:
    sb = serve(faults=sandbox.Faults(rate_429=1.0, retry_after=2))
    client = new_client(sb, max_retries=2)
    err = raises(RateLimitError, lambda: client.lookup(NUMBERS[0]))
    assert err.status == 429 and err.retry_after == 2.0 and err.attempts == 3
    assert client.sleeps == [2.0, 2.0]
    assert client.stats.throttled == 3 and sb.stats().requests == 3


def test_429_retry_after_http_date(serve: Callable[..., Any], new_client: Any) -> None:
    sb = serve(faults=sandbox.Faults(rate_429=1.0, retry_after=3, retry_after_http_date=True))
    client = new_client(sb, max_retries=1)
    err = raises(RateLimitError, lambda: client.lookup(NUMBERS[0]))
    assert err.retry_after is not None and 1.0 <= err.retry_after <= 4.0
    assert len(client.sleeps) == 1 and 1.0 <= client.sleeps[0] <= 4.0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    future = parse_retry_after(formatdate(time.time() + 30, usegmt=True))
    assert future is not None and 28 <= future <= 31
    assert parse_retry_after(formatdate(time.time() - 30, usegmt=True)) == 0.0


def test_429_then_success(serve: Callable[..., Any], new_client: Any) -> None:
    sb = serve(faults=sandbox.Faults(rate_429=0.4, retry_after=1), seed=5)
    client = new_client(sb, max_retries=20, workers=4)
    out = client.lookup_many(NUMBERS[:25])
    assert all(isinstance(v, dict) for v in out.values())
    assert client.stats.throttled == sb.stats().status_counts.get(429, 0) > 0
    assert set(client.sleeps) == {1.0}


def test_traffic_quota_result_is_a_rate_limit_error(
    serve: Callable[..., Any], new_client: Any
) -> None:
    sb = serve(faults=sandbox.Faults(quota=1.0))
    client = new_client(sb, max_retries=2)
    err = raises(RateLimitError, lambda: client.lookup(NUMBERS[0]))
    assert err.status == 200 and "TRAFFIC_QUOTA_EXCEEDED" in str(err)
    assert sb.stats().requests == 3 and len(client.sleeps) == 2
    assert client.stats.throttled == 3 and client.stats.possibly_charged == 0


# ----------------------------------------------------------------------------- possibly charged
def test_dropped_connection_counts_as_possibly_charged(
    serve: Callable[..., Any], new_client: Any
) -> None:
    sb = serve(faults=sandbox.Faults(drop=1.0))
    client = new_client(sb, max_retries=2)
    err = raises(TransportError, lambda: client.lookup(NUMBERS[0]))
    assert isinstance(err, ConnectionError) and err.status is None and err.attempts == 3
    assert sb.stats().requests == 3
    assert client.stats.possibly_charged == 3
    assert client.stats.possibly_charged_numbers == {NUMBERS[0]}


def test_read_timeout_counts_as_possibly_charged(
    serve: Callable[..., Any], new_client: Any
) -> None:
    sb = serve(faults=sandbox.Faults(slow=1.0, slow_seconds=0.6))
    client = new_client(sb, max_retries=1, timeout=(2, 0.15))
    err = raises(TransportError, lambda: client.lookup(NUMBERS[1]))
    assert "read timeout" in str(err)
    assert client.stats.possibly_charged == 2
    assert client.stats.possibly_charged_numbers == {NUMBERS[1]}
    assert sb.stats().charged == {NUMBERS[1]: 2}  # the server really did charge both


def test_truncated_200_counts_as_possibly_charged(
    serve: Callable[..., Any], new_client: Any
) -> None:
    sb = serve(faults=sandbox.Faults(truncated=1.0))
    client = new_client(sb, max_retries=2)
    err = raises(APIError, lambda: client.lookup(NUMBERS[2]))
    assert err.status == 200 and err.malformed and err.attempts == 3
    assert client.stats.possibly_charged == 3
    assert sb.stats().charged == {NUMBERS[2]: 3}


def test_connection_refused_is_retried_and_not_charged(new_client: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    class Dead:
        url = f"http://127.0.0.1:{port}"
        token = SECRET

    client = new_client(Dead, max_retries=3, timeout=(0.5, 0.5))
    err = raises(TransportError, lambda: client.lookup(NUMBERS[0]))
    assert "could not connect" in str(err) and err.attempts == 4
    assert len(client.sleeps) == 3 and client.stats.possibly_charged == 0


def test_every_double_charge_is_reported(serve: Callable[..., Any], new_client: Any) -> None:
    faults = sandbox.Faults(
        error_500=0.1, error_503=0.1, rate_429=0.1, retry_after=1, drop=0.1, truncated=0.1
    )
    sb = serve(faults=faults, seed=11)
    client = new_client(sb, max_retries=30, workers=6)
    out = client.lookup_many(NUMBERS[:120])
    assert all(isinstance(v, dict) for v in out.values())
    stats = sb.stats()
    assert set(stats.charged) == set(NUMBERS[:120])
    twice = {n for n, times in stats.charged.items() if times > 1}
    assert twice  # the seed produced some truncated answers
    assert twice <= client.stats.possibly_charged_numbers
    assert client.stats.requests == stats.requests
    faults_seen = stats.fault_counts.get("drop", 0) + stats.fault_counts.get("truncated", 0)
    assert client.stats.possibly_charged == faults_seen


# ----------------------------------------------------------------------------- stopping a run
def test_402_mid_run_stops_all_workers_and_loses_nothing(
    serve: Callable[..., Any], new_client: Any
) -> None:
    sb = serve(balance=30, latency=0.01)
    client = new_client(sb, workers=8)
    delivered: dict[str, Any] = {}
    lock = threading.Lock()

    def on_result(number: str, outcome: Any) -> None:
        with lock:
            delivered[number] = outcome

    numbers = NUMBERS[:100]
    err = raises(InsufficientBalanceError, lambda: client.lookup_many(numbers, on_result=on_result))
    stats = sb.stats()
    charged = set(stats.charged)
    assert len(charged) == 30 and stats.balance == 0
    assert charged == set(err.outcomes) == set(delivered)
    assert all(isinstance(v, dict) for v in err.outcomes.values())
    assert err.pending == [n for n in numbers if n not in charged]
    # after the first 402, only requests already in flight reached the server
    log = sb.log()
    first_402 = min(r.t for r in log if r.status == 402)
    late = [r for r in log if r.t > first_402]
    assert len(late) <= 7 and all(r.status == 402 for r in late)
    assert stats.requests <= 30 + 8


def test_401_stops_all_workers(serve: Callable[..., Any], new_client: Any) -> None:
    sb = serve(latency=0.01)
    client = new_client(sb, token=WRONG, workers=8)
    calls: list[str] = []
    err = raises(
        AuthenticationError,
        lambda: client.lookup_many(NUMBERS[:200], on_result=lambda n, o: calls.append(n)),
    )
    assert err.status == 401 and err.outcomes == {} and calls == []
    assert err.pending == NUMBERS[:200]
    assert sb.stats().requests <= 8


def test_stop_cuts_backoff_sleeps_short(serve: Callable[..., Any]) -> None:
    # Real sleeps here: workers backing off from 503s (up to 20 s each) must wake on the 402.
    sb = serve(balance=6, faults=sandbox.Faults(error_503=0.5), seed=2)
    with HLRClient(token=sb.token, base_url=sb.url, workers=8, backoff_factor=20.0) as client:
        started = time.monotonic()
        err = raises(InsufficientBalanceError, lambda: client.lookup_many(NUMBERS[:60]))
        elapsed = time.monotonic() - started
    assert client.stats.retries > 0
    assert len(err.outcomes) == 6 and len(err.pending) == 54
    assert elapsed < 3.0


def test_keyboard_interrupt_stops_the_pool(serve: Callable[..., Any], new_client: Any) -> None:
    sb = serve(latency=0.02)
    client = new_client(sb, workers=4)
    delivered: list[str] = []
    lock = threading.Lock()

    def on_result(number: str, outcome: Any) -> None:
        with lock:
            delivered.append(number)
            if len(delivered) == 10:
                _thread.interrupt_main()

    with pytest.raises(KeyboardInterrupt):
        client.lookup_many(NUMBERS[:300], on_result=on_result)
    stats = sb.stats()
    assert set(stats.charged) == set(delivered)  # every answered number was delivered
    assert len(delivered) < 60


def test_failing_callback_stops_the_run(serve: Callable[..., Any], new_client: Any) -> None:
    sb = serve(latency=0.005)
    client = new_client(sb, workers=4)

    def on_result(number: str, outcome: Any) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        client.lookup_many(NUMBERS[:200], on_result=on_result)
    assert sb.stats().requests < 20


# ----------------------------------------------------------------------------- rate limit
def test_rate_limit_holds_over_every_window(serve: Callable[..., Any], new_client: Any) -> None:
    limit = 20
    sb = serve(rate_limit=limit)  # the sandbox would answer 429 to any excess
    client = new_client(sb, rate_limit=limit, workers=8)
    sent: list[float] = []
    acquire = client._limiter.acquire
    client._limiter.acquire = lambda: (acquire(), sent.append(time.monotonic()))[0]
    out = client.lookup_many(NUMBERS[:50])
    assert all(isinstance(v, dict) for v in out.values())
    times = sorted(r.t for r in sb.log())
    assert len(times) == len(sent) == 50 and client.stats.throttled == 0
    assert max_in_window(times) <= limit + 1  # as the server saw them
    assert max_in_window(sent) <= limit  # as the client sent them (3% headroom)
    assert (len(times) - 1) / (times[-1] - times[0]) >= 0.95 * limit


def test_rate_limiter_with_a_fake_clock() -> None:
    limiter = RateLimiter(10.0)
    now = [100.0]
    limiter._clock = lambda: now[0]  # type: ignore[method-assign]
    limiter._sleep = lambda s: now.__setitem__(0, now[0] + s)  # type: ignore[method-assign]
    sent = []
    for _ in range(25):
        limiter.acquire()
        sent.append(now[0])
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(sent)}
    assert gaps == {0.1}
    assert max_in_window(sent) == 11
    now[0] += 5.0  # idle: no debt carried over, but no burst beyond 1 either
    assert limiter.acquire() == 0.0
    assert limiter.reserve() == pytest.approx(0.1)

    bursty = RateLimiter(10.0, burst=3)
    bursty._clock = lambda: 0.0  # type: ignore[method-assign]
    assert [bursty.reserve() for _ in range(4)] == pytest.approx([0, 0, 0, 0.1])
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_rate_limiter_is_thread_safe() -> None:
    limiter = RateLimiter(400.0)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == 200
    assert (stamps[-1] - stamps[0]) >= 199 / 400 * 0.98


# ----------------------------------------------------------------------------- mapping function
@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (200, '{"results": [{"to": "+1234567890", "status": "Live"}]}', {}, None),
        (401, '{"message": "Unauthenticated."}', {}, AuthenticationError),
        (403, "Forbidden", {}, AuthenticationError),
        (402, '{"message": "Insufficient balance for validation request."}', {}, None),
        (400, '{"required_amount": "0.006", "current_balance": "0"}', {}, None),
        (422, '{"message": "m", "errors": {"phone": ["m"]}}', {}, ValidationError),
        (400, '{"message": "m", "errors": {"phone": "m"}}', {}, ValidationError),
        (429, "", {"retry-after": "4"}, RateLimitError),
        (500, "<html>oops</html>", {}, APIError),
        (502, "", {}, APIError),
        (200, '{"results": [{"to": "+12"', {}, APIError),
        (200, '{"results": []}', {}, APIError),
        (404, "not found", {}, APIError),
        (
            200,
            '{"requestError": {"serviceException": {"messageId": "x", "code": "400"}}}',
            {},
            APIError,
        ),
    ],
)
def test_error_from_response_mapping(
    status: int, body: str, headers: dict[str, str], expected: type[HLRError] | None
) -> None:
    err = error_from_response(status, body, headers)
    if "required_amount" in body or status == 402:
        assert isinstance(err, InsufficientBalanceError)
        return
    if expected is None:
        assert err is None
        return
    assert type(err) is expected and err.status == status
    if expected is RateLimitError:
        assert err.retry_after == 4.0
    if expected is ValidationError:
        assert err.errors == {"phone": ["m"]}


def test_quota_result_mapping_and_long_excerpt() -> None:
    quota = {
        "results": [
            {
                "to": "+441302778473",
                "error": {"groupId": 5, "id": 32, "name": "TRAFFIC_QUOTA_EXCEEDED"},
            }
        ]
    }
    err = error_from_response(200, json.dumps(quota))
    assert isinstance(err, RateLimitError) and err.retry_after is None
    err = error_from_response(503, "x" * 5000)
    assert err is not None and err.body_excerpt is not None and len(err.body_excerpt) <= 200


def test_errors_pickle_with_their_attributes() -> None:
    err = InsufficientBalanceError("top up", required_amount=Decimal("0.006"))
    err.pending = ["+1"]
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is InsufficientBalanceError and str(copy) == "top up"
    assert copy.required_amount == Decimal("0.006") and copy.pending == ["+1"]
    transport = pickle.loads(pickle.dumps(TransportError("reset", status=None)))
    assert isinstance(transport, ConnectionError) and str(transport) == "reset"
    assert issubclass(AuthenticationError, PermissionError)
    assert issubclass(ValidationError, ValueError)
