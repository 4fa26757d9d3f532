"""Answer classification (``pd_hlr.classify``) and the retry policy (``pd_hlr.retry``), without
a server: answers as bytes, the policy's decisions, the circuit breaker, the README's table."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from decimal import Decimal
from email.utils import formatdate
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from urllib3.exceptions import NewConnectionError, ProtocolError

from pd_hlr import sandbox
from pd_hlr.classify import (
    KINDS,
    Answer,
    Failure,
    classify_answer,
    classify_exception,
    parse_retry_after,
    retry_table_markdown,
    same_number,
    too_large,
)
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
from pd_hlr.retry import CircuitBreaker, RetryPolicy

# the retry table moved from the README to the user guide (issue 25)
README = Path(__file__).resolve().parents[1] / "docs" / "guide" / "retry.md"
PHONE = "+441302778473"
BOM = b"\xef\xbb\xbf"


def body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def answer_body(phone: str = PHONE, **opts: Any) -> bytes:
    return body({"results": [sandbox.answer(phone, **opts)]})


# ----------------------------------------------------------------------------- status + shape
@pytest.mark.parametrize(
    ("status", "raw", "headers", "kind", "error_type"),
    [
        (401, '{"message": "Unauthenticated."}', {}, "auth", AuthenticationError),
        (403, "Forbidden", {}, "auth", AuthenticationError),
        (402, '{"message": "Insufficient balance for validation request."}', {}, "balance", None),
        (400, '{"required_amount": "0.006", "current_balance": "0"}', {}, "balance", None),
        (422, '{"message": "m", "errors": {"phone": ["m"]}}', {}, "validation", ValidationError),
        (400, '{"message": "m", "errors": {"phone": "m"}}', {}, "validation", ValidationError),
        (429, "", {"retry-after": "4"}, "throttled", RateLimitError),
        (500, "<html>oops</html>", {}, "server_error", APIError),
        (502, "", {}, "server_error", APIError),
        (
            503,
            '{"requestError": {"serviceException": {"code": "503"}}}',
            {},
            "server_error",
            APIError,
        ),
        (501, "", {}, "unexpected", APIError),
        (404, "not found", {}, "unexpected", APIError),
        (302, "", {}, "unexpected", APIError),
        (200, '{"results": [{"to": "+12"', {}, "malformed", APIError),
        (200, '{"results": []}', {}, "malformed", APIError),
        (200, '{"results": {"to": "+441302778473"}}', {}, "malformed", APIError),
        (200, '{"results": [{"status": "Live"}]}', {}, "incomplete_result", APIError),
        (200, '{"results": [{"to": 441302778473}]}', {}, "incomplete_result", APIError),
        (200, "<!DOCTYPE html><html><body>Sign in</body></html>", {}, "malformed", APIError),
        (200, "", {}, "malformed", APIError),
        (
            200,
            '{"results": [{"to": "+441302778473", "live": NaN}]}',
            {},
            "incomplete_result",
            APIError,
        ),
        (200, '{"message": "m", "errors": {"phone": ["m"]}}', {}, "validation", ValidationError),
        (200, '{"errors": {}}', {}, "malformed", APIError),
        (
            200,
            '{"requestError": {"serviceException": {"messageId": "x", "code": "400"}}}',
            {},
            "request_error",
            APIError,
        ),
    ],
)
def test_answers_map_to_kinds(
    status: int, raw: str, headers: dict[str, str], kind: str, error_type: type[HLRError] | None
) -> None:
    failure = classify_answer(status, raw.encode(), headers, phone=PHONE)
    assert isinstance(failure, Failure)
    assert failure.kind == kind and failure.error.kind == kind
    assert failure.error.status == status
    if error_type is not None:
        assert type(failure.error) is error_type
    if kind == "balance":
        assert isinstance(failure.error, InsufficientBalanceError)
    if kind == "throttled":
        assert failure.retry_after == failure.error.retry_after == 4.0
    if kind == "validation":
        assert failure.error.errors == {"phone": ["m"]}
    if kind == "malformed":
        assert failure.error.malformed and failure.possibly_charged


def test_the_402_message_prints_amounts_readably() -> None:
    raw = body({"required_amount": "0.0060000000", "current_balance": "0.0000000000"})
    failure = classify_answer(402, raw)
    assert isinstance(failure, Failure)
    err = failure.error
    assert isinstance(err, InsufficientBalanceError)
    assert err.required_amount == Decimal("0.006") and err.current_balance == Decimal(0)
    assert "costs 0.006, the balance is 0)" in str(err) and "E-" not in str(err)


def test_a_usable_200_is_the_result_object() -> None:
    got = classify_answer(200, answer_body(detailed=True), phone=PHONE)
    assert got == Answer(sandbox.answer(PHONE, detailed=True), 0)


def test_results_win_over_an_errors_object_beside_them() -> None:
    result = sandbox.answer(PHONE)
    for errors in ({}, [], None, {"phone": ["ignored: the result was paid for"]}):
        got = classify_answer(200, body({"results": [result], "errors": errors}), phone=PHONE)
        assert got == Answer(result, 0), errors


def test_quota_result_is_throttled_and_not_charged() -> None:
    error = {"groupId": 5, "id": 32, "name": "TRAFFIC_QUOTA_EXCEEDED"}
    raw = body({"results": [{"to": PHONE, "error": error}]})
    failure = classify_answer(200, raw, phone=PHONE)
    assert isinstance(failure, Failure) and failure.kind == "throttled"
    assert isinstance(failure.error, RateLimitError) and not failure.possibly_charged


def test_long_bodies_are_excerpted() -> None:
    failure = classify_answer(503, b"x" * 500_000)
    assert isinstance(failure, Failure)
    assert failure.error.body_excerpt is not None and len(failure.error.body_excerpt) <= 200


# ----------------------------------------------------------------------------- decoded once
@settings(max_examples=60, deadline=None)
@given(digits=st.integers(1_000_000, 9_999_999), detailed=st.booleans())
def test_a_byte_order_mark_is_tolerated(digits: int, detailed: bool) -> None:
    phone = f"+44740{digits}"
    plain = classify_answer(200, answer_body(phone, detailed=detailed), phone=phone)
    assert classify_answer(200, BOM + answer_body(phone, detailed=detailed), phone=phone) == plain
    assert isinstance(plain, Answer)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"results": [{"to": "+441302778473", "originalNetwork": "Telef\xf3nica"}]}',
        b"\xff\xfe{}",
        BOM + b"\xc3",
        b'{"results": [{"to": "+441302778473", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}",
        b'{"results": [{"to": "+441302778473", "x": ' + b"[" * 40 + b"]" * 40 + b"}]}",
        b'{"results": [{"to": "+441302778473", "n": 1' + b"0" * 5000 + b"}]}",
    ],
    ids=["latin-1", "utf-16-bom", "cut-multibyte", "deep-100000", "deep-40", "huge-int"],
)
def test_undecodable_or_too_deep_bodies_are_malformed(raw: bytes) -> None:
    failure = classify_answer(200, raw, phone=PHONE)
    assert isinstance(failure, Failure), failure
    assert failure.kind == "malformed" and failure.retry and failure.possibly_charged


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=st.integers(100, 599), raw=st.binary(max_size=300))
def test_no_body_ever_escapes_as_an_exception(status: int, raw: bytes) -> None:
    for candidate in (raw, b'{"results": [' + raw + b"]}", BOM + raw):
        got = classify_answer(status, candidate, {"Retry-After": "1"}, phone=PHONE)
        assert isinstance(got, Answer | Failure)
        if isinstance(got, Failure):
            assert got.kind in KINDS and isinstance(got.error, HLRError)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=20), cut=st.sampled_from(["\ud83d", "\ude00", "\udbff", "\udc00"]))
def test_lone_surrogates_are_replaced_so_the_result_can_be_encoded(text: str, cut: str) -> None:
    result = {"to": PHONE, "currentNetwork": text + cut, cut: [text, {"k": cut}]}
    raw = json.dumps({"results": [result]}).encode()  # ensure_ascii: "\ud83d" escapes
    got = classify_answer(200, raw, phone=PHONE)
    assert isinstance(got, Answer) and got.repaired == 3
    json.dumps(got.result, ensure_ascii=False).encode("utf-8")  # no UnicodeEncodeError
    assert got.result["currentNetwork"] == text + "\ufffd"
    # a proper pair (a whole emoji) is not touched
    whole = json.dumps({"results": [{"to": PHONE, "currentNetwork": "Vodafone 😀"}]}).encode()
    assert classify_answer(200, whole, phone=PHONE) == Answer(
        {"to": PHONE, "currentNetwork": "Vodafone 😀"}, 0
    )


# ----------------------------------------------------------------------------- the number asked
def _formats(e164: str) -> list[str]:
    num = phonenumbers.parse(e164)
    intl = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return [e164, intl, intl.replace(" ", "-"), "00" + e164[1:], e164[1:]]


@settings(max_examples=100, deadline=None)
@given(rest=st.integers(100_000, 999_999), position=st.integers(4, 12), delta=st.integers(1, 9))
def test_to_is_compared_by_its_digits(rest: int, position: int, delta: int) -> None:
    e164 = f"+447400{rest}"
    for shape in _formats(e164):
        assert same_number(e164, shape) and same_number(shape, e164), shape
        got = classify_answer(200, answer_body(shape, msisdn=False), phone=shape)
        assert isinstance(got, Answer)
    digit = str((int(e164[position]) + delta) % 10)
    other = e164[:position] + digit + e164[position + 1 :]
    assert not same_number(other, e164)
    failure = classify_answer(200, answer_body(other), phone=e164)
    assert isinstance(failure, Failure) and failure.kind == "wrong_number"
    assert not failure.retry and failure.possibly_charged
    assert other in str(failure.error) and e164 in str(failure.error)


def test_a_duplicated_country_code_sent_with_msisdn_false_matches() -> None:
    assert same_number("+447400123456", "+44447400123456")
    assert not same_number("+447400123456", "+45447400123456")
    assert not same_number("", PHONE) and not same_number("+", PHONE)


# ----------------------------------------------------------------------------- no answer at all
def test_transport_exceptions_map_to_kinds() -> None:
    refused = requests.ConnectionError(NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    reset = requests.ConnectionError(ProtocolError("Connection aborted."))
    cases = [
        (requests.exceptions.ConnectTimeout("slow connect"), False, "connect"),
        (refused, False, "connect"),
        (refused, True, "connect"),  # never sent: not charged, whatever the deadline
        (requests.exceptions.ProxyError("proxy"), False, "connect"),
        (requests.exceptions.SSLError("bad cert"), False, "tls"),
        (requests.ReadTimeout("slow read"), False, "timeout"),
        (reset, False, "connection_lost"),
        (reset, True, "timeout"),  # cut by our own deadline
        (requests.exceptions.ChunkedEncodingError("cut"), False, "connection_lost"),
        (requests.exceptions.ContentDecodingError("bad gzip"), False, "malformed"),
        (requests.exceptions.InvalidURL("x"), False, "unexpected"),
    ]
    for exc, expired, kind in cases:
        failure = classify_exception(exc, "Provero at https://api.example", expired=expired)
        assert failure.kind == kind, (exc, expired)
        assert isinstance(failure.error, TransportError) and failure.cause is exc
        assert "Provero at https://api.example" in str(failure.error)
    big = too_large(200, 1 << 20, "Provero")
    assert big.kind == "too_large" and big.possibly_charged and "1,048,576" in str(big.error)


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("86400") == 86400.0  # not silently capped (urllib3 caps at 6 h)
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    future = parse_retry_after(formatdate(time.time() + 30, usegmt=True))
    assert future is not None and 0 <= future <= 30  # 30 s ahead, read a moment later
    assert parse_retry_after(formatdate(time.time() - 30, usegmt=True)) == 0.0


# ----------------------------------------------------------------------------- the policy
@settings(max_examples=200, deadline=None)
@given(
    u=st.floats(0, 1, exclude_max=True),
    n=st.integers(1, 200),
    factor=st.floats(0, 10),
    cap=st.floats(0, 100),
)
def test_backoff_is_full_jitter_under_an_exponential_ceiling(
    u: float, n: int, factor: float, cap: float
) -> None:
    policy = RetryPolicy(backoff_factor=factor, backoff_max=cap, random=lambda: u)
    ceiling = min(cap, factor * 2 ** min(n - 1, 60))
    assert policy.backoff(n) == pytest.approx(u * ceiling)
    assert 0 <= policy.backoff(n) <= cap


def test_decide_retries_gives_up_and_stops() -> None:
    policy = RetryPolicy(max_retries=2, retry_after_max=60, random=lambda: 0.5)
    busy = Failure("server_error", APIError("503", status=503))
    assert [policy.decide(busy, n).action for n in (1, 2, 3)] == ["retry", "retry", "give_up"]
    assert policy.decide(busy, 2).delay == 0.5  # 0.5 * 0.5 * 2**1
    waited = Failure("server_error", APIError("503", status=503), retry_after=7.0)
    assert policy.decide(waited, 1).delay == 7.0  # Retry-After is waited exactly, no jitter
    wrong = Failure("wrong_number", APIError("other number", status=200))
    assert policy.decide(wrong, 1).action == "give_up"  # never retried
    auth = Failure("auth", AuthenticationError("no", status=401))
    assert policy.decide(auth, 1) == ("stop", 0.0, auth.error)


@pytest.mark.parametrize("status", [429, 503])
def test_a_retry_after_beyond_the_cap_stops_the_run(status: int) -> None:
    raw = b'{"message": "Too Many Attempts."}'
    failure = classify_answer(status, raw, {"Retry-After": "86400"})
    assert isinstance(failure, Failure) and failure.retry_after == 86400.0
    policy = RetryPolicy(retry_after_max=300)
    for attempt in (1, 6, 99):  # also on what would have been the last attempt
        decision = policy.decide(failure, attempt)
        assert decision.action == "stop"
        err = decision.error
        assert isinstance(err, ServiceUnavailableError) and err.stops_run
        assert err.resume_after == 86400.0 and err.kind == failure.kind and err.status == status
        assert "24.0 h" in str(err) and "Resume after" in str(err)
    assert policy.decide(dataclasses.replace(failure, retry_after=300.0), 1).action == "retry"


def test_bad_policies_are_refused() -> None:
    for bad in ({"max_retries": -1}, {"breaker_threshold": 0}, {"backoff_max": -1}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)


# ----------------------------------------------------------------------------- circuit breaker
def _trips_reference(events: list[str | None], threshold: int) -> list[bool]:
    """Independent model: trip when ``threshold`` consecutive events are the same counting
    kind; None (success) and non-counting kinds break the run."""
    out, last, streak = [], None, 0
    for kind in events:
        if kind is None or not KINDS[kind].breaker:
            last, streak = None, 0
        elif kind == last:
            streak += 1
        else:
            last, streak = kind, 1
        out.append(streak >= threshold)
    return out


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(
        st.sampled_from([None, "connect", "timeout", "server_error", "throttled", "validation"]),
        max_size=80,
    ),
    threshold=st.integers(1, 6),
)
def test_breaker_trips_on_consecutive_failures_of_one_kind(
    events: list[str | None], threshold: int
) -> None:
    breaker = CircuitBreaker(threshold)
    got = []
    for kind in events:
        if kind is None:
            breaker.success()
            got.append(False)
            continue
        tripped = breaker.record(Failure(kind, TransportError(f"{kind} failed")))
        got.append(tripped is not None)
        if tripped is not None:
            assert isinstance(tripped, ServiceUnavailableError) and tripped.kind == kind
            assert tripped.stops_run and " attempts in a row failed" in str(tripped)
    assert got == _trips_reference(events, threshold)


# ----------------------------------------------------------------------------- README
def test_readme_retry_table_is_generated_from_the_policy() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- retry-table:start.*?-->\n(.*?)\n<!-- retry-table:end -->", text, re.S)
    assert match, f"{README} lacks the retry-table markers"
    assert match.group(1).strip() == retry_table_markdown()


def test_kinds_table_says_what_it_does() -> None:
    for kind in KINDS.values():
        assert kind.retried.startswith("yes") == kind.retry, kind.name
        assert not (kind.possibly_charged and not kind.breaker), kind.name


def test_the_resume_time_is_read_from_the_injected_wall_clock() -> None:
    from datetime import UTC, datetime

    policy = RetryPolicy(now=lambda: datetime(2030, 1, 1, 23, 30, tzinfo=UTC))
    slow = Failure("throttled", RateLimitError("slow down", status=429), retry_after=3600.0)
    decision = policy.decide(slow, attempt=1)
    assert decision.action == "stop" and decision.error is not None
    assert "Resume after 2030-01-02 00:30 UTC" in str(decision.error)
    assert "wait 60 min before" in str(decision.error)


def test_the_wall_clock_is_neither_shown_nor_compared() -> None:
    from datetime import UTC, datetime

    policy = RetryPolicy(now=lambda: datetime(2030, 1, 1, tzinfo=UTC))
    assert policy == RetryPolicy() and "now" not in repr(policy)
