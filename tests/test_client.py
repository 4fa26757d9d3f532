"""HLRClient against the real sandbox over HTTP: every fault comes from a sandbox knob, and what
was paid comes from the sandbox's charge ledger (``sb.stats().charged``).

Backoff sleeps are recorded instead of slept (``client._sleep`` replaced), so retry tests are
fast; calls that could hang run under :func:`bounded`. Every exception a test sees goes through
``check_no_leak``; an autouse fixture captures all log records at DEBUG and checks none holds a
token. The ``issue 13 row N`` sections are that issue's table, one test (or more) per row.
"""

from __future__ import annotations

import json
import logging
import pickle
import secrets
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pd_hlr  # noqa: F401  (registers df.hlr)
from pd_hlr import sandbox
from pd_hlr.cache import HLRCache
from pd_hlr.client import HLRClient
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
from pd_hlr.pipeline import api_namespace
from pd_hlr.retry import RetryPolicy
from pd_hlr.settings import LookupOptions
from pd_hlr.transport import _Watchdog

from .conftest import bounded

Faults = sandbox.Faults
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
            texts.extend(repr(getattr(obj, name, None)) for name in ("object", "args"))
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
def server(make_sandbox: Callable[..., sandbox.Sandbox]) -> Callable[..., sandbox.Sandbox]:
    """Sandboxes whose token is SECRET (the conftest factory)."""

    def start(**kwargs: Any) -> sandbox.Sandbox:
        kwargs.setdefault("token", SECRET)
        return make_sandbox(**kwargs)

    return start


@pytest.fixture
def new_client(client_for: Callable[..., Any]) -> Iterator[Callable[..., HLRClient]]:
    """Clients on a sandbox whose backoff sleeps are recorded in ``client.sleeps``."""
    clients: list[HLRClient] = []

    def build(sb: Any, **kwargs: Any) -> HLRClient:
        client = client_for(sb, **kwargs)
        sleeps: list[float] = []
        client.sleeps = sleeps  # type: ignore[attr-defined]
        client._sleep = sleeps.append  # type: ignore[method-assign]
        clients.append(client)
        return client

    yield build
    for client in clients:
        check_no_leak(client, client.stats)


def raises(exc_type: type[BaseException], fn: Callable[[], object]) -> Any:
    with pytest.raises(exc_type) as info:
        bounded(fn)
    check_no_leak(info.value)
    return info.value


def validate(numbers: list[str], client: HLRClient, cache: Path, **kw: Any) -> pd.DataFrame:
    frame = pd.DataFrame({"id": range(len(numbers)), "phone": numbers})
    return bounded(
        lambda: frame.hlr.validate("phone", client=client, cache=str(cache), progress=False, **kw)
    )


def cached(cache: Path, client: HLRClient, numbers: list[str], detailed: bool = False) -> set:
    """The numbers the cache folder holds an answer for (temporary ones included)."""
    options = LookupOptions(detailed=detailed).key()
    found = HLRCache(cache).get(numbers, options, api_namespace(client), include_temporary=True)
    return set(found.index)


# ----------------------------------------------------------------------------- construction
def test_repr_and_missing_token(server: Callable[..., Any]) -> None:
    sb = server()
    client = HLRClient(base_url=sb.url)
    assert "token=None" in repr(client)
    err = raises(AuthenticationError, lambda: client.lookup(NUMBERS[0]))
    assert "PROVERO_API_TOKEN" in str(err)
    assert isinstance(err, PermissionError)
    err = raises(AuthenticationError, lambda: client.lookup_many(NUMBERS[:3]))
    assert err.pending == NUMBERS[:3]
    assert sb.stats().requests == 0


def test_token_and_base_url_from_env(
    server: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = server()
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


def test_bad_arguments() -> None:
    for bad in (
        {"timeout": 0},
        {"workers": 0},
        {"max_retries": -1},
        {"deadline": 0},
        {"deadline": "60"},
        {"max_answer_bytes": 100},
    ):
        with pytest.raises(ValueError):
            HLRClient(token="t", **bad)
    client = HLRClient(token="t", base_url="http://127.0.0.1:1")
    with pytest.raises(TypeError):
        client.lookup(441302778473)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client.lookup("+441302778473", detailed="false")  # type: ignore[arg-type]


def test_retry_policy_and_its_shortcuts() -> None:
    policy = RetryPolicy(max_retries=2, breaker_threshold=7)
    client = HLRClient(token="t", retry=policy, backoff_factor=0.1)
    assert client.retry == RetryPolicy(max_retries=2, breaker_threshold=7, backoff_factor=0.1)
    assert client.max_retries == 2 and HLRClient(token="t").retry == RetryPolicy()


# ----------------------------------------------------------------------------- happy path
def test_lookup_returns_the_result_object(server: Callable[..., Any], new_client: Any) -> None:
    sb = server()
    client = new_client(sb)
    phone = "+441302778473"
    summary = client.lookup(phone)
    assert summary == sandbox.answer(phone)
    assert isinstance(summary["status"], str)
    detailed = client.lookup(phone, detailed=True, roaming=True, route="detailed", msisdn=True)
    assert detailed == sandbox.answer(phone, detailed=True, roaming=True, route="detailed")
    assert "roaming" in detailed and "ported" in detailed
    assert client.stats.requests == 2 and client.stats.retries == 0
    assert client.stats.failures == {} and sb.stats().charged == {phone: 2}


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
    server: Callable[..., Any], new_client: Any
) -> None:
    sb = server(latency=0.005)
    client = new_client(sb, workers=4)
    numbers = NUMBERS[:40] + NUMBERS[:10]
    seen: dict[str, Any] = {}
    threads: set[str] = set()

    def on_result(number: str, outcome: Any) -> None:
        assert number not in seen
        seen[number] = outcome
        threads.add(threading.current_thread().name)

    out = bounded(lambda: client.lookup_many(numbers, detailed=True, on_result=on_result))
    assert list(out) == NUMBERS[:40]
    assert seen == out
    assert all(out[n] == sandbox.answer(n, detailed=True) for n in NUMBERS[:40])
    assert set(sb.stats().received.values()) == {1}
    assert threads and all(name.startswith("pd_hlr") for name in threads)
    # worker sessions are closed when the run ends; the client stays usable
    assert all(t.is_alive() for t, _ in client._transport._sessions)
    assert client.lookup(NUMBERS[0], detailed=True) == out[NUMBERS[0]]
    client.close()
    assert client._transport._sessions == []
    assert client.lookup(NUMBERS[1], detailed=True) == out[NUMBERS[1]]
    assert client.lookup_many([]) == {}


def test_per_number_failures_do_not_stop_the_others(
    server: Callable[..., Any], new_client: Any
) -> None:
    sb = server()
    client = new_client(sb, workers=4)
    bad = ["+4479", "+44790000000000000", ""]
    out = bounded(lambda: client.lookup_many(NUMBERS[:20] + bad))
    for number in bad:
        assert isinstance(out[number], ValidationError), number
        assert out[number].kind == "validation"
        check_no_leak(out[number])
    assert all(isinstance(out[n], dict) for n in NUMBERS[:20])
    assert client.stats.retries == 0 and client.stats.failures == {"validation": 3}


# ----------------------------------------------------------------------------- error classes
def test_401_wrong_token_is_not_retried(server: Callable[..., Any], new_client: Any) -> None:
    sb = server()
    client = new_client(sb, token=WRONG)
    err = raises(AuthenticationError, lambda: client.lookup(NUMBERS[0]))
    assert err.status == 401 and "Unauthenticated." in str(err)
    assert sb.stats().requests == 1 and client.sleeps == []


def test_402_has_readable_amounts_and_is_not_retried(
    server: Callable[..., Any], new_client: Any
) -> None:
    sb = server(balance=0)
    client = new_client(sb)
    err = raises(InsufficientBalanceError, lambda: client.lookup(NUMBERS[0]))
    assert err.status == 402
    assert err.required_amount == Decimal("0.0060000000")
    assert err.current_balance == Decimal("0")
    assert "a lookup costs 0.006, the balance is 0)" in str(err) and "E-10" not in str(err)
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
    server: Callable[..., Any], new_client: Any, phone: str, message: str
) -> None:
    sb = server()
    client = new_client(sb)
    err = raises(ValidationError, lambda: client.lookup(phone))
    assert isinstance(err, ValueError)
    assert err.status == 422 and err.errors == {"phone": [message]}
    assert sb.stats().requests == 1 and client.sleeps == []
    assert client.stats.possibly_charged == 0


# ----------------------------------------------------------------------------- retried faults
def test_503_then_success(server: Callable[..., Any], new_client: Any) -> None:
    sb = server(faults=Faults(error_503=0.5), seed=3)
    client = new_client(sb, max_retries=20)
    out = bounded(lambda: client.lookup_many(NUMBERS[:30]))
    assert all(isinstance(v, dict) for v in out.values())
    stats = sb.stats()
    assert client.stats.retries == stats.status_counts.get(503, 0) > 0
    assert client.stats.failures == {"server_error": stats.status_counts[503]}
    assert client.stats.requests == stats.requests
    assert client.stats.possibly_charged == 0 and stats.total_charged == 30


def test_429_retry_after_seconds(server: Callable[..., Any], new_client: Any) -> None:
    sb = server(faults=Faults(rate_429=1.0, retry_after=2))
    client = new_client(sb, max_retries=2)
    err = raises(RateLimitError, lambda: client.lookup(NUMBERS[0]))
    assert err.status == 429 and err.retry_after == 2.0 and err.attempts == 3
    assert client.sleeps == [2.0, 2.0]
    assert client.stats.throttled == 3 and sb.stats().requests == 3


def test_429_retry_after_http_date(server: Callable[..., Any], new_client: Any) -> None:
    sb = server(faults=Faults(rate_429=1.0, retry_after=3, retry_after_http_date=True))
    client = new_client(sb, max_retries=1)
    err = raises(RateLimitError, lambda: client.lookup(NUMBERS[0]))
    # an HTTP-date 3 s ahead (rounded up to the second), read a moment later: in [0, 4]
    assert err.retry_after is not None and 0.0 <= err.retry_after <= 4.0
    assert len(client.sleeps) == 1 and 0.0 <= client.sleeps[0] <= 4.0


def test_429_then_success(server: Callable[..., Any], new_client: Any) -> None:
    sb = server(faults=Faults(rate_429=0.4, retry_after=1), seed=5)
    client = new_client(sb, max_retries=20, workers=4)
    out = bounded(lambda: client.lookup_many(NUMBERS[:25]))
    assert all(isinstance(v, dict) for v in out.values())
    assert client.stats.throttled == sb.stats().status_counts.get(429, 0) > 0
    assert set(client.sleeps) == {1.0}


def test_traffic_quota_result_is_a_rate_limit_error(
    server: Callable[..., Any], new_client: Any
) -> None:
    sb = server(faults=Faults(quota=1.0))
    client = new_client(sb, max_retries=2)
    err = raises(RateLimitError, lambda: client.lookup(NUMBERS[0]))
    assert err.status == 200 and "TRAFFIC_QUOTA_EXCEEDED" in str(err)
    assert sb.stats().requests == 3 and len(client.sleeps) == 2
    assert client.stats.throttled == 3 and client.stats.possibly_charged == 0
    assert sb.stats().charged == {}


# ----------------------------------------------------------------------------- possibly charged
def test_dropped_connection_counts_as_possibly_charged(
    server: Callable[..., Any], new_client: Any
) -> None:
    sb = server(faults=Faults(drop=1.0))
    client = new_client(sb, max_retries=2)
    err = raises(TransportError, lambda: client.lookup(NUMBERS[0]))
    assert isinstance(err, ConnectionError) and err.status is None and err.attempts == 3
    assert err.kind == "connection_lost"
    assert sb.stats().requests == 3
    assert client.stats.possibly_charged == 3
    assert client.stats.possibly_charged_numbers == {NUMBERS[0]}


def test_read_timeout_counts_as_possibly_charged(
    server: Callable[..., Any], new_client: Any
) -> None:
    sb = server(faults=Faults(slow=1.0, slow_seconds=0.6))
    client = new_client(sb, max_retries=1, timeout=(2, 0.15))
    err = raises(TransportError, lambda: client.lookup(NUMBERS[1]))
    assert "read timeout" in str(err) and err.kind == "timeout"
    assert client.stats.possibly_charged == 2
    assert client.stats.possibly_charged_numbers == {NUMBERS[1]}
    assert sb.stats().charged == {NUMBERS[1]: 2}  # the server really did charge both


def test_truncated_200_counts_as_possibly_charged(
    server: Callable[..., Any], new_client: Any
) -> None:
    sb = server(faults=Faults(truncated=1.0))
    client = new_client(sb, max_retries=2)
    err = raises(APIError, lambda: client.lookup(NUMBERS[2]))
    assert err.status == 200 and err.malformed and err.attempts == 3
    assert client.stats.possibly_charged == 3
    assert sb.stats().charged == {NUMBERS[2]: 3}


def test_connection_refused_is_retried_and_not_charged(
    server: Callable[..., Any], new_client: Any
) -> None:
    sb = server(faults=Faults(unreachable=True))
    client = new_client(sb, max_retries=3, timeout=(0.5, 0.5))
    err = raises(TransportError, lambda: client.lookup(NUMBERS[0]))
    assert "could not connect" in str(err) and err.attempts == 4 and err.kind == "connect"
    assert len(client.sleeps) == 3 and client.stats.possibly_charged == 0
    assert sb.stats().requests == 0
    sb.configure(faults=Faults())  # reachable again, on the same URL
    assert client.lookup(NUMBERS[0]) == sandbox.answer(NUMBERS[0])


def test_every_double_charge_is_reported(server: Callable[..., Any], new_client: Any) -> None:
    faults = Faults(
        error_500=0.1, error_503=0.1, rate_429=0.1, retry_after=1, drop=0.1, truncated=0.1
    )
    sb = server(faults=faults, seed=11)
    # adaptive=False: 10 % random 429s at any rate would pace this run down to ~10/s (the
    # adaptive pace has its own tests in test_adaptive.py); this test is about the money
    client = new_client(sb, max_retries=30, workers=6, adaptive=False)
    out = bounded(lambda: client.lookup_many(NUMBERS[:120]))
    assert all(isinstance(v, dict) for v in out.values())
    stats = sb.stats()
    assert set(stats.charged) == set(NUMBERS[:120])
    twice = {n for n, times in stats.charged.items() if times > 1}
    assert twice  # the seed produced some truncated answers
    assert twice <= client.stats.possibly_charged_numbers
    assert client.stats.requests == stats.requests
    faults_seen = stats.fault_counts.get("drop", 0) + stats.fault_counts.get("truncated", 0)
    assert client.stats.possibly_charged == faults_seen


# ----------------------------------------------------------------------------- issue 13 row 3
@pytest.mark.parametrize("fault", ["bad_utf8", "deep_nesting", "html_200"])
def test_row3_an_unreadable_200_is_one_malformed_failure(
    server: Callable[..., Any], new_client: Any, fault: str
) -> None:
    sb = server(faults=Faults(**{fault: 1.0}))
    client = new_client(sb, max_retries=2)
    err = raises(APIError, lambda: client.lookup(NUMBERS[3]))
    assert err.kind == "malformed" and err.malformed and err.status == 200 and err.attempts == 3
    assert client.stats.failures == {"malformed": 3}
    assert client.stats.possibly_charged_numbers == {NUMBERS[3]}
    # what the service billed: the API's answers (broken on the way) yes, a portal's page no
    assert sb.stats().charged == ({} if fault == "html_200" else {NUMBERS[3]: 3})


@pytest.mark.parametrize("fault", ["bad_utf8", "deep_nesting"])
def test_row3_validate_survives_an_unreadable_200_and_caches_nothing_of_it(
    server: Callable[..., Any], new_client: Any, tmp_path: Path, fault: str
) -> None:
    sb = server(faults=Faults(**{fault: 1.0}))
    client = new_client(sb, max_retries=2)
    numbers = NUMBERS[:5]
    out = validate(numbers, client, tmp_path)
    assert out["hlr_source"].eq("error").all() and out["id"].tolist() == list(range(5))
    assert out["hlr_error"].str.contains("unusable body").all()
    assert sb.stats().charged == {n: 3 for n in numbers}  # every attempt was billed ...
    assert client.stats.possibly_charged_numbers == set(numbers)  # ... and each is reported
    assert cached(tmp_path, client, numbers) == set()  # nothing unreadable reached the cache
    sb.configure(faults=Faults())  # the service heals: one more (paid) lookup each, now cached
    out = validate(numbers, client, tmp_path)
    assert out["hlr_source"].eq("api").all()
    assert cached(tmp_path, client, numbers) == set(numbers)
    assert sb.stats().charged == {n: 4 for n in numbers}


# ----------------------------------------------------------------------------- issue 13 row 5
def test_row5_an_answer_for_another_number_is_an_error_never_cached(
    server: Callable[..., Any], new_client: Any, tmp_path: Path
) -> None:
    sb = server(faults=Faults(wrong_to=1.0))
    client = new_client(sb, max_retries=5)
    err = raises(APIError, lambda: client.lookup(NUMBERS[5]))
    assert err.kind == "wrong_number" and err.attempts == 1 and client.sleeps == []  # not retried
    assert NUMBERS[5] in str(err)
    numbers = NUMBERS[6:12]
    out = validate(numbers, client, tmp_path)
    assert out["hlr_source"].eq("error").all() and out["to"].isna().all()
    assert cached(tmp_path, client, numbers) == set()
    assert sb.stats().charged == {n: 1 for n in [NUMBERS[5], *numbers]}  # paid once each
    assert client.stats.possibly_charged_numbers == {NUMBERS[5], *numbers}


# ----------------------------------------------------------------------------- issue 13 row 6
def test_row6_results_win_over_an_empty_errors_object(
    server: Callable[..., Any], new_client: Any, tmp_path: Path
) -> None:
    sb = server(faults=Faults(errors_beside_results=1.0))
    client = new_client(sb)
    numbers = NUMBERS[12:18]
    out = validate(numbers, client, tmp_path)
    assert out["hlr_source"].eq("api").all()
    assert out["to"].tolist() == numbers
    assert cached(tmp_path, client, numbers) == set(numbers)
    assert sb.stats().charged == {n: 1 for n in numbers}
    assert client.stats.possibly_charged == 0 and client.stats.failures == {}


# ----------------------------------------------------------------------------- issue 13 row 7
@pytest.mark.parametrize(
    "faults", [Faults(trickle=1.0), Faults(slow=1.0, slow_seconds=30)], ids=["trickle", "silent"]
)
def test_row7_the_deadline_bounds_the_whole_attempt(
    server: Callable[..., Any], new_client: Any, faults: Faults
) -> None:
    sb = server(faults=faults)
    # socket timeouts far beyond the deadline: only the deadline can end these attempts
    client = new_client(sb, max_retries=1, timeout=(30, 30), deadline=0.5)
    err = raises(TransportError, lambda: client.lookup(NUMBERS[20]))
    assert err.kind == "timeout" and err.attempts == 2 and "deadline" in str(err)
    assert sb.stats().charged == {NUMBERS[20]: 2}
    assert client.stats.possibly_charged_numbers == {NUMBERS[20]}


def test_row7_the_watchdog_expires_due_deadlines_only() -> None:
    now = [0.0]
    dog = _Watchdog(clock=lambda: now[0])
    dog._thread = threading.current_thread()  # keep its thread from starting: drive it by hand
    early, late, done = dog.arm(1.0), dog.arm(5.0), dog.arm(0.5)
    dog.release(done)
    now[0] = 2.0
    with dog._cond:
        assert dog.expire_due(now[0]) == pytest.approx(3.0)
    assert (early.expired, late.expired, done.expired) == (True, False, False)
    dog.release(early)
    dog.release(late)
    with dog._cond:
        assert dog.expire_due(100.0) is None  # nothing in flight: nothing left to expire
    assert not late.expired


def test_row7_an_idle_watchdog_ends_unless_a_deadline_was_armed_meanwhile() -> None:
    me = threading.current_thread()
    dog = _Watchdog(clock=lambda: 0.0)
    dog._thread = me  # driven by hand, as above
    assert dog._stay() is False and dog._thread is None  # idle: the thread ends
    dog._thread = me
    armed = dog.arm(1.0)  # armed while the thread decides to end: it stays
    assert dog._stay() is True and dog._thread is me
    assert dog.expire_due(0.5) == pytest.approx(0.5) and not armed.expired
    assert dog.expire_due(1.0) is None and armed.expired


# ----------------------------------------------------------------------------- issue 13 row 8
@pytest.mark.parametrize("fault", ["endless", "gzip_bomb", "huge"])
def test_row8_an_answer_too_large_fails_fast(
    server: Callable[..., Any], new_client: Any, fault: str
) -> None:
    sb = server(faults=Faults(**{fault: 1.0}))
    client = new_client(sb, max_retries=1)
    err = raises(APIError, lambda: client.lookup(NUMBERS[21]))
    assert err.kind == "too_large" and err.attempts == 2 and "max_answer_bytes" in str(err)
    assert sb.stats().charged == {NUMBERS[21]: 2}
    assert client.stats.possibly_charged_numbers == {NUMBERS[21]}


def test_row8_a_huge_answer_never_reaches_the_cache(
    server: Callable[..., Any], new_client: Any, tmp_path: Path
) -> None:
    sb = server(faults=Faults(huge=1.0))
    client = new_client(sb, max_retries=1)
    numbers = NUMBERS[22:25]
    out = validate(numbers, client, tmp_path)
    assert out["hlr_source"].eq("error").all()
    assert cached(tmp_path, client, numbers) == set()
    assert sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file()) < 1_000_000


# ----------------------------------------------------------------------------- issue 13 row 10
def test_row10_a_byte_order_mark_is_read_once_and_paid_once(
    server: Callable[..., Any], new_client: Any, tmp_path: Path
) -> None:
    sb = server(faults=Faults(bom=1.0))
    client = new_client(sb)
    assert client.lookup(NUMBERS[30], detailed=True) == sandbox.answer(NUMBERS[30], detailed=True)
    numbers = NUMBERS[31:36]
    out = validate(numbers, client, tmp_path)
    assert out["hlr_source"].eq("api").all()
    assert cached(tmp_path, client, numbers) == set(numbers)
    assert sb.stats().charged == {n: 1 for n in [NUMBERS[30], *numbers]}
    assert client.stats.requests == 6 and client.stats.possibly_charged == 0


# ----------------------------------------------------------------------------- surrogates
def test_lone_surrogates_are_repaired_before_the_cache_sees_them(
    server: Callable[..., Any], new_client: Any, tmp_path: Path
) -> None:
    sb = server(faults=Faults(surrogate=1.0))
    client = new_client(sb)
    result = client.lookup(NUMBERS[40], detailed=True)
    assert result["originalNetwork"]["networkName"] == "Vodafone \ufffd"
    assert client.stats.repaired == 1 and client.stats.possibly_charged == 0
    numbers = NUMBERS[41:44]
    out = validate(numbers, client, tmp_path)
    assert out["hlr_source"].eq("api").all()
    assert out["original_network"].eq("Vodafone \ufffd").all()
    assert cached(tmp_path, client, numbers) == set(numbers)
    again = validate(numbers, client, tmp_path)  # the cache stays readable
    assert again["hlr_source"].eq("cache").all()
    assert sb.stats().charged == {n: 1 for n in [NUMBERS[40], *numbers]}


# ----------------------------------------------------------------------------- issue 13 row 12
def test_row12_a_day_long_retry_after_stops_the_run(
    server: Callable[..., Any], new_client: Any
) -> None:
    sb = server(faults=Faults(rate_429=1.0, retry_after=86400))
    client = new_client(sb)
    err = raises(ServiceUnavailableError, lambda: client.lookup(NUMBERS[50]))
    assert err.resume_after == 86400.0 and err.kind == "throttled" and err.stops_run
    assert "Resume after" in str(err) and client.sleeps == [] and sb.stats().requests == 1

    sb.configure(faults=Faults())
    delivered: list[str] = []
    lock = threading.Lock()

    def on_result(number: str, outcome: Any) -> None:
        with lock:
            delivered.append(number)
            if len(delivered) == 10:
                sb.configure(faults=Faults(rate_429=1.0, retry_after=86400))

    numbers = NUMBERS[51:151]
    err = raises(
        ServiceUnavailableError,
        lambda: client.lookup_many(numbers, on_result=on_result),
    )
    assert set(err.outcomes) == set(delivered) == set(sb.stats().charged) - {NUMBERS[50]}
    assert all(isinstance(v, dict) for v in err.outcomes.values())
    assert err.pending == [n for n in numbers if n not in err.outcomes]
    assert client.sleeps == []  # nobody waited a day


def test_row12_validate_keeps_everything_answered_and_resumes(
    server: Callable[..., Any], new_client: Any, tmp_path: Path
) -> None:
    sb = server()
    client = new_client(sb, workers=4)
    first = NUMBERS[160:170]
    validate(first, client, tmp_path)
    sb.configure(faults=Faults(rate_429=1.0, retry_after=86400))
    numbers = NUMBERS[160:190]
    with pytest.raises(ServiceUnavailableError) as info:
        validate(numbers, client, tmp_path)
    err = info.value
    check_no_leak(err)
    assert err.partial is not None and len(err.partial) == len(numbers)
    assert err.partial["hlr_source"].eq("cache").sum() == 10
    assert err.remaining == 20 and err.looked_up == 0
    sb.configure(faults=Faults())
    out = validate(numbers, client, tmp_path)
    assert out["hlr_source"].value_counts().to_dict() == {"api": 20, "cache": 10}
    assert sb.stats().charged == {n: 1 for n in numbers}  # nothing paid twice, nothing lost


# ----------------------------------------------------------------------------- issue 13 row 14
@pytest.mark.parametrize(
    ("before", "after"),
    [("", "\u2019"), ("\u201c", ""), ("", "\nX-Evil: 1"), ("", "\x00"), ("a\x85b", "")],
    ids=["smart-quote", "smart-open-quote", "header-injection", "nul", "c1-control"],
)
def test_row14_a_token_that_cannot_be_sent_is_refused_without_echo(before: str, after: str) -> None:
    with pytest.raises(ValueError, match="token") as info:
        HLRClient(token=before + SECRET + after, base_url="http://127.0.0.1:1")
    check_no_leak(info.value)
    assert (before + after).strip() not in str(info.value)


def test_row14_a_latin1_token_is_sent(server: Callable[..., Any], new_client: Any) -> None:
    token = "caf\xe9-" + secrets.token_hex(8)
    sb = server(token=token)
    assert new_client(sb).lookup(NUMBERS[60])["to"] == NUMBERS[60]


def test_row14_neither_the_token_nor_the_client_pickles(server: Callable[..., Any]) -> None:
    client = HLRClient(token=SECRET, base_url=server().url)
    for obj in (client, client._token):
        with pytest.raises(TypeError, match="cannot be pickled") as info:
            pickle.dumps(obj)
        check_no_leak(info.value)


def test_row14_every_exception_leaving_the_client_is_scrubbed(
    server: Callable[..., Any], new_client: Any
) -> None:
    sb = server()
    client = new_client(sb, workers=2)
    header = "Bearer " + SECRET + "\u2019"

    def on_result(number: str, outcome: Any) -> None:
        try:
            header.encode("latin-1")  # what http.client does with a header value
        except UnicodeEncodeError as exc:
            raise RuntimeError(f"could not send {header!r}") from exc

    err = raises(RuntimeError, lambda: client.lookup_many(NUMBERS[61:64], on_result=on_result))
    cause = err.__cause__
    assert isinstance(cause, UnicodeEncodeError)
    assert SECRET not in cause.object and "***" in cause.object
    check_no_leak(cause)


# ----------------------------------------------------------------------------- issue 13 row 16
def test_row16_an_unreachable_api_stops_the_run_after_a_bounded_number_of_attempts(
    server: Callable[..., Any], new_client: Any
) -> None:
    sb = server(faults=Faults(unreachable=True))
    workers = 8
    client = new_client(sb, workers=workers, retry=RetryPolicy(breaker_threshold=20))
    numbers = NUMBERS[:300]
    err = raises(ServiceUnavailableError, lambda: client.lookup_many(numbers))
    assert err.kind == "connect" and err.stops_run and "20 attempts in a row" in str(err)
    assert client.stats.requests <= 20 + workers - 1  # the streak, plus those already in flight
    assert sb.stats().requests == 0 and client.stats.possibly_charged == 0
    assert all(isinstance(v, TransportError) for v in err.outcomes.values())
    assert set(err.outcomes) | set(err.pending) == set(numbers)


@pytest.mark.parametrize(
    ("faults", "path", "kind"),
    [(Faults(error_503=1.0), "", "server_error"), (Faults(), "/v2", "unexpected")],
    ids=["always-503", "wrong-base-url"],
)
def test_row16_a_dead_api_stops_the_run(
    server: Callable[..., Any],
    new_client: Any,
    faults: Faults,
    path: str,
    kind: str,
) -> None:
    sb = server(faults=faults)

    class Moved:
        url = sb.url + path
        token = SECRET

    client = new_client(Moved, workers=4, retry=RetryPolicy(breaker_threshold=10))
    err = raises(ServiceUnavailableError, lambda: client.lookup_many(NUMBERS[:300]))
    assert err.kind == kind
    stats = sb.stats()
    assert stats.requests == client.stats.requests <= 10 + 4 - 1
    assert stats.total_charged == 0


def test_row16_validate_stops_cleanly_with_the_partial_frame(
    server: Callable[..., Any], new_client: Any, tmp_path: Path
) -> None:
    sb = server(faults=Faults(unreachable=True))
    client = new_client(sb, workers=4, retry=RetryPolicy(breaker_threshold=8))
    with pytest.raises(ServiceUnavailableError) as info:
        validate(NUMBERS[:200], client, tmp_path)
    err = info.value
    assert err.partial is not None and len(err.partial) == 200
    assert err.partial["hlr_source"].eq("error").all()
    assert client.stats.requests <= 8 + 3
    assert err.looked_up == 0 and err.remaining is not None


def test_row16_a_breaker_stop_lets_only_in_flight_requests_through(
    server: Callable[..., Any], new_client: Any
) -> None:
    sb = server(faults=Faults(drop=1.0), latency=0.01)
    client = new_client(sb, workers=6, retry=RetryPolicy(breaker_threshold=12))
    err = raises(ServiceUnavailableError, lambda: client.lookup_many(NUMBERS[:200]))
    assert err.kind == "connection_lost"
    assert sb.stats().requests == client.stats.requests <= 12 + 6 - 1
    assert sb.stats().total_charged == 0  # dropped before any answer was computed


# ----------------------------------------------------------------------------- issue 13 row 17
def test_row17_one_warning_per_failure_kind_per_run(
    server: Callable[..., Any], new_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    faults = Faults(drop=0.2, truncated=0.2, error_503=0.2, wrong_to=0.05)
    sb = server(faults=faults, seed=8)
    client = new_client(sb, workers=4, max_retries=30)
    for first in (100, 160):
        caplog.clear()
        numbers = NUMBERS[first : first + 60]
        out = bounded(lambda numbers=numbers: client.lookup_many(numbers))
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        said = [k for k in ("dropped", "unusable", "to is not") if any(k in w for w in warnings)]
        assert len(warnings) == len(said) >= 2, warnings
        assert not any(n in w for w in warnings for n in NUMBERS)  # the detail is at DEBUG
        debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
        assert any(n in d for d in debug for n in numbers)
        assert any(isinstance(v, APIError) and v.kind == "wrong_number" for v in out.values())
    stats = sb.stats()
    failures = client.stats.failures
    assert failures["connection_lost"] == stats.fault_counts["drop"]
    assert failures["server_error"] == stats.fault_counts["error_503"]
    assert failures["wrong_number"] == stats.fault_counts["wrong_to"]
    assert failures["malformed"] == stats.fault_counts["truncated"]


# ----------------------------------------------------------------------------- stopping a run
def test_402_mid_run_stops_all_workers_and_loses_nothing(
    server: Callable[..., Any], new_client: Any
) -> None:
    sb = server(balance=30, latency=0.01)
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


def test_401_stops_all_workers(server: Callable[..., Any], new_client: Any) -> None:
    sb = server(latency=0.01)
    client = new_client(sb, token=WRONG, workers=8)
    calls: list[str] = []
    err = raises(
        AuthenticationError,
        lambda: client.lookup_many(NUMBERS[:200], on_result=lambda n, o: calls.append(n)),
    )
    assert err.status == 401 and err.outcomes == {} and calls == []
    assert err.pending == NUMBERS[:200]
    assert sb.stats().requests <= 8


def test_a_stop_cuts_backoff_sleeps_short(server: Callable[..., Any], client_for: Any) -> None:
    # Real (interruptible) sleeps: workers backing off from 503s for up to 1000 s each must
    # wake on the 402. Were they not woken, bounded() would report a hang.
    sb = server(balance=6, faults=Faults(error_503=0.5), seed=2)
    client = client_for(sb, workers=8, backoff_factor=1000.0, backoff_max=1000.0)
    err = raises(InsufficientBalanceError, lambda: client.lookup_many(NUMBERS[:60]))
    assert client.stats.retries > 0
    assert len(err.outcomes) == 6 and len(err.pending) == 54


def test_keyboard_interrupt_stops_the_pool(server: Callable[..., Any], new_client: Any) -> None:
    sb = server(latency=0.02)
    client = new_client(sb, workers=4)
    delivered: list[str] = []
    lock = threading.Lock()

    def on_result(number: str, outcome: Any) -> None:
        with lock:
            delivered.append(number)
            if len(delivered) == 10:  # a real SIGINT to the main thread, as Ctrl-C sends
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        client.lookup_many(NUMBERS[:300], on_result=on_result)
    stats = sb.stats()
    assert set(stats.charged) == set(delivered)  # every answered number was delivered
    assert len(delivered) < 60


def test_failing_callback_stops_the_run(server: Callable[..., Any], new_client: Any) -> None:
    sb = server(latency=0.005)
    client = new_client(sb, workers=4)

    def on_result(number: str, outcome: Any) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        bounded(lambda: client.lookup_many(NUMBERS[:200], on_result=on_result))
    assert sb.stats().requests < 20


def test_row17_single_lookups_warn_once_per_kind_and_verdicts_never(
    server: Callable[..., Any], new_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sb = server(faults=Faults(drop=1.0))
    client = new_client(sb, max_retries=1)
    for number in NUMBERS[200:205]:
        raises(TransportError, lambda number=number: client.lookup(number))
    sb.configure(faults=Faults())
    for junk in ("+4479", "", "+4479000000000000"):
        raises(ValidationError, lambda junk=junk: client.lookup(junk))
    sb.configure(faults=Faults(drop=1.0))
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "dropped" in warnings[0]
    client.reset_stats()
    raises(TransportError, lambda: client.lookup(NUMBERS[205]))
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 2
