"""Tests of the Provero sandbox: real HTTP over 127.0.0.1, checked against the vendor's spec, and
its fault knobs (each one on the wire as a client would see it, and in the charge ledger).

Servers come from the one factory in ``conftest.py`` (``make_sandbox``; ``sb`` is a fresh one).
Time is never measured: latency, slow and trickled answers go through the server's ``pause``,
and its rate window through its ``clock``, which the tests replace."""

from __future__ import annotations

import dataclasses
import email.utils
import json
import socket
import ssl
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.client import HTTPConnection, RemoteDisconnected
from typing import Any

import phonenumbers
import pytest
import requests
from phonenumbers import carrier as pn_carrier

from pd_hlr import _spec, sandbox
from pd_hlr.sandbox import server as server_module

from .conftest import TOKEN
from .test_group_commit import until

AUTH = {"Authorization": f"Bearer {TOKEN}"}
NETWORK_KEYS = ["networkName", "networkPrefix", "countryName", "countryPrefix", "networkId"]
STATUS_KEYS = ["groupId", "groupName", "id", "name", "description"]
ERROR_KEYS = [*STATUS_KEYS, "permanent"]
SUMMARY_KEYS = ["to", "status", "live", "dead", "outOfNetwork", "currentNetwork", "originalNetwork"]
DETAILED_KEYS = ["to", "mccMnc", "imsi", "originalNetwork", "status", "error"]
ABSENT_KEYS = ["to", "mccMnc", "imsi", "originalNetwork", "status", "ported", "error"]
# Literal objects from the spec's example bodies.
SPEC_DELIVERED_STATUS = {
    "groupId": 3,
    "groupName": "DELIVERED",
    "id": 5,
    "name": "DELIVERED_TO_HANDSET",
    "description": "Message delivered to handset",
}
SPEC_ABSENT_STATUS = {
    "groupId": 1,
    "groupName": "Handset errors",
    "id": 27,
    "name": "UNDELIVERABLE_NOT_DELIVERED",
    "description": "Absent Subscriber",
}
SUMMARY_STATUS = {"Live", "Dead", "Out of network", "Unknown"}


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def post(
    server: sandbox.Sandbox,
    body: Any = None,
    *,
    session: requests.Session | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = 5.0,
) -> requests.Response:
    hdrs = {**AUTH, "Content-Type": "application/json", "Accept": "application/json"}
    if headers is not None:
        hdrs = {**{"Content-Type": "application/json"}, **headers}
    data = raw if raw is not None else json.dumps(body).encode()
    return (session or requests).post(server.endpoint, data=data, headers=hdrs, timeout=timeout)


def frozen(server: sandbox.Sandbox, start: float = 1000.0) -> list[float]:
    """Stop the server's clock (its rate window and log); move it with ``now[0] += s``."""
    now = [start]
    server._state.clock = lambda: now[0]
    return now


def recorded_pauses(server: sandbox.Sandbox) -> list[float]:
    """Make the server's pauses (latency, slow, trickle) instant; return the list of them."""
    pauses: list[float] = []

    def pause(seconds: float) -> bool:
        pauses.append(seconds)
        return False

    server._state.pause = pause
    return pauses


def result_of(resp: requests.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert list(body) == ["results"]
    assert isinstance(body["results"], list) and len(body["results"]) == 1
    return body["results"][0]


# ------------------------------------------------------------------ sample numbers by outcome


def _uk_mobiles() -> Iterator[str]:
    for i in range(200_000):
        phone = f"+44740{i * 7919 % 10_000_000:07d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(phone)):
            yield phone


def _find(pred: Callable[[dict[str, Any], dict[str, Any]], bool], skip: int = 0) -> str:
    for phone in _uk_mobiles():
        full = sandbox.answer(phone, detailed=True, route="detailed", roaming=True)
        if pred(sandbox.answer(phone), full):
            if skip == 0:
                return phone
            skip -= 1
    raise AssertionError("no sample number found")


@pytest.fixture(scope="module")
def numbers() -> dict[str, str]:
    return {
        "plain": _find(lambda s, f: s["live"] and not f["ported"] and not f["roaming"]),
        "ported": _find(lambda s, f: s["live"] and f["ported"]),
        "roaming": _find(lambda s, f: s["live"] and f["roaming"]),
        "dead": _find(lambda s, f: s["dead"]),
        "absent": _find(lambda s, f: s["dead"] and f["error"]["id"] == 27),
        "oon": _find(lambda s, f: s["outOfNetwork"]),
        "temporary": _find(lambda s, f: s["status"] == "Unknown"),
    }


# ------------------------------------------------------------------------------ shape checks


def check_network(net: dict[str, Any]) -> None:
    assert list(net) == NETWORK_KEYS
    assert all(isinstance(v, str) for v in net.values())
    assert net["networkId"] == ""
    assert net["countryPrefix"].isdigit()


def check_error(err: dict[str, Any]) -> None:
    assert list(err) == ERROR_KEYS
    assert isinstance(err["groupId"], int) and isinstance(err["id"], int)
    assert isinstance(err["permanent"], bool)
    row = _spec.ErrorCode(
        err["id"],
        err["name"],
        err["groupId"],
        err["groupName"],
        err["description"],
        err["permanent"],
    )
    assert row in (*_spec.ERROR_CODES, _spec.EXAMPLE_OK_ERROR, _spec.EXAMPLE_ABSENT_ERROR)


def check_summary(res: dict[str, Any], phone: str) -> None:
    assert list(res) == SUMMARY_KEYS
    assert res["to"] == phone
    assert res["status"] in SUMMARY_STATUS
    flags = (res["live"], res["dead"], res["outOfNetwork"])
    assert all(isinstance(f, bool) for f in flags)
    expected = {
        "Live": (True, False, False),
        "Dead": (False, True, False),
        "Out of network": (False, False, True),
        "Unknown": (False, False, False),
    }[res["status"]]
    assert flags == expected
    assert isinstance(res["currentNetwork"], str) and isinstance(res["originalNetwork"], str)


# ------------------------------------------------------------------------------ 200 answers


def test_summary_is_the_default_shape(sb, http, numbers):
    phone = numbers["plain"]
    res = result_of(post(sb, {"phone": phone}, session=http))
    check_summary(res, phone)
    assert res["status"] == "Live"
    carrier_name = pn_carrier.name_for_number(phonenumbers.parse(phone), "en")
    assert carrier_name
    assert res["currentNetwork"] == res["originalNetwork"] == carrier_name
    assert res == sandbox.answer(phone)


def test_summary_of_every_outcome(sb, http, numbers):
    expected_status = {
        "plain": "Live",
        "ported": "Live",
        "roaming": "Live",
        "dead": "Dead",
        "absent": "Dead",
        "oon": "Out of network",
        "temporary": "Unknown",
    }
    for kind, phone in numbers.items():
        res = result_of(post(sb, {"phone": phone}, session=http))
        check_summary(res, phone)
        assert res["status"] == expected_status[kind], kind
        assert res == sandbox.answer(phone)


def test_summary_current_network_is_the_ported_to_network(sb, http, numbers):
    phone = numbers["ported"]
    res = result_of(post(sb, {"phone": phone}, session=http))
    full = sandbox.answer(phone, detailed=True, route="detailed")
    assert res["originalNetwork"] == full["originalNetwork"]["networkName"]
    assert res["currentNetwork"] == full["portedNetwork"]["networkName"]
    assert res["currentNetwork"] != res["originalNetwork"]


def test_detailed_route_standard(sb, http, numbers):
    phone = numbers["plain"]
    body = {"phone": phone, "detailed": True, "route": "standard"}
    res = result_of(post(sb, body, session=http))
    assert list(res) == DETAILED_KEYS
    assert res["to"] == phone
    assert res["imsi"] == ""
    assert res["mccMnc"].startswith("234") and len(res["mccMnc"]) == 5 and res["mccMnc"].isdigit()
    check_network(res["originalNetwork"])
    net = res["originalNetwork"]
    assert net["countryName"] == "United Kingdom" and net["countryPrefix"] == "44"
    assert net["networkName"] == pn_carrier.name_for_number(phonenumbers.parse(phone), "en")
    assert phone[3:].startswith(net["networkPrefix"]) and net["networkPrefix"]
    assert res["status"] == SPEC_DELIVERED_STATUS
    check_error(res["error"])
    assert (res["error"]["groupId"], res["error"]["id"], res["error"]["groupName"]) == (0, 0, "Ok")
    assert res["error"]["permanent"] is False
    assert res == sandbox.answer(phone, detailed=True, route="standard")
    # route omitted is the same as standard
    assert result_of(post(sb, {"phone": phone, "detailed": True}, session=http)) == res


def test_detailed_route_detailed_without_roaming(sb, http, numbers):
    phone = numbers["ported"]
    res = result_of(post(sb, {"phone": phone, "detailed": True, "route": "detailed"}, session=http))
    assert list(res) == [*DETAILED_KEYS, "ported", "portedNetwork"]
    assert "roaming" not in res and "roamingNetwork" not in res
    assert res["ported"] is True
    check_network(res["portedNetwork"])
    assert res["portedNetwork"]["countryPrefix"] == res["originalNetwork"]["countryPrefix"]
    assert res["portedNetwork"]["networkName"] != res["originalNetwork"]["networkName"]
    assert res["mccMnc"].startswith("234")
    assert res == sandbox.answer(phone, detailed=True, route="detailed")

    plain = numbers["plain"]
    res = result_of(post(sb, {"phone": plain, "detailed": True, "route": "detailed"}, session=http))
    assert list(res) == [*DETAILED_KEYS, "ported"]
    assert res["ported"] is False


def test_detailed_route_detailed_with_roaming(sb, http, numbers):
    phone = numbers["roaming"]
    body = {"phone": phone, "roaming": True, "route": "detailed", "detailed": "true"}
    res = result_of(post(sb, body, session=http))
    assert list(res)[:6] == DETAILED_KEYS
    assert res["roaming"] is True
    check_network(res["roamingNetwork"])
    assert res["roamingNetwork"]["countryPrefix"] != "44"
    assert res["roamingNetwork"]["networkName"]
    assert isinstance(res["ported"], bool)
    assert ("portedNetwork" in res) == res["ported"]
    assert res == sandbox.answer(phone, roaming=True, route="detailed", detailed=True)

    plain = numbers["plain"]
    res = result_of(post(sb, {**body, "phone": plain}, session=http))
    assert list(res) == [*DETAILED_KEYS, "roaming", "ported"]
    assert res["roaming"] is False and res["ported"] is False


def test_roaming_without_route_detailed_has_no_ported(sb, http, numbers):
    phone = numbers["roaming"]
    res = result_of(post(sb, {"phone": phone, "roaming": "1", "detailed": 1}, session=http))
    assert list(res) == [*DETAILED_KEYS, "roaming", "roamingNetwork"]


def test_spec_example_request(sb, http):
    body = {
        "phone": "+441302778473",
        "roaming": True,
        "msisdn": True,
        "route": "standard",
        "detailed": "true",
    }
    res = result_of(post(sb, body, session=http))
    assert res["to"] == "+441302778473"
    assert res["originalNetwork"]["countryName"] == "United Kingdom"
    assert "roaming" in res
    assert res == sandbox.answer("+441302778473", roaming=True, route="standard", detailed=True)


@pytest.mark.parametrize("route", ["standard", "detailed"])
def test_invalid_absent_shape_for_dead_numbers(sb, http, numbers, route):
    phone = numbers["absent"]
    res = result_of(post(sb, {"phone": phone, "detailed": True, "route": route}, session=http))
    assert list(res) == ABSENT_KEYS
    assert res["status"] == SPEC_ABSENT_STATUS
    assert res["ported"] is False
    assert res["error"] == {**SPEC_ABSENT_STATUS, "permanent": False}
    check_network(res["originalNetwork"])
    assert res["imsi"] == ""

    dead = numbers["dead"]
    res = result_of(post(sb, {"phone": dead, "detailed": True, "route": route}, session=http))
    assert list(res) == ABSENT_KEYS
    assert res["status"] == SPEC_ABSENT_STATUS
    check_error(res["error"])
    res = result_of(post(sb, {"phone": dead, "detailed": True, "roaming": True}, session=http))
    assert list(res) == [*ABSENT_KEYS, "roaming"] and res["roaming"] is False


def test_out_of_network_and_temporary_detailed(sb, http, numbers):
    res = result_of(post(sb, {"phone": numbers["oon"], "detailed": True}, session=http))
    assert list(res) == ABSENT_KEYS
    check_error(res["error"])
    assert res["error"]["permanent"] is True
    assert res["status"] == {k: res["error"][k] for k in STATUS_KEYS}

    res = result_of(post(sb, {"phone": numbers["temporary"], "detailed": True}, session=http))
    assert list(res) == ABSENT_KEYS
    check_error(res["error"])
    assert res["error"]["permanent"] is False


def test_answers_spread_over_documented_codes():
    phones = [p for _, p in zip(range(1500), _uk_mobiles())]
    answers = [sandbox.answer(p, detailed=True, route="detailed", roaming=True) for p in phones]
    summaries = [sandbox.answer(p) for p in phones]
    for a, s in zip(answers, summaries):
        check_error(a["error"])
        check_summary(s, a["to"])
        assert s["live"] == (a["status"] == SPEC_DELIVERED_STATUS)
    n = len(phones)
    live = sum(s["live"] for s in summaries) / n
    dead = sum(s["dead"] for s in summaries) / n
    oon = sum(s["outOfNetwork"] for s in summaries) / n
    temp = sum(s["status"] == "Unknown" for s in summaries) / n
    assert 0.74 < live < 0.86 and 0.08 < dead < 0.16 and 0.03 < oon < 0.09 and 0.005 < temp < 0.04
    ported = sum(a["ported"] for a in answers if a["status"] == SPEC_DELIVERED_STATUS)
    roaming = sum(a["roaming"] for a in answers)
    assert 0.10 < ported / (live * n) < 0.20 and 0.02 < roaming / (live * n) < 0.09
    names = {a["error"]["name"] for a in answers}
    assert len(names) >= 10
    assert any(not a["error"]["permanent"] and a["error"]["id"] != 0 for a in answers)


def test_carrier_names_come_from_phonenumbers():
    for phone in [p for _, p in zip(range(200), _uk_mobiles())]:
        expected = pn_carrier.name_for_number(phonenumbers.parse(phone), "en")
        res = sandbox.answer(phone, detailed=True)
        assert res["originalNetwork"]["networkName"] == expected
        assert res["originalNetwork"]["countryName"] == "United Kingdom"
    us = sandbox.answer("+14155552671", detailed=True)
    assert us["originalNetwork"]["countryName"] == "United States"
    assert us["originalNetwork"]["countryPrefix"] == "1"
    assert us["mccMnc"].startswith("310") and len(us["mccMnc"]) == 6
    de = sandbox.answer("+4915112345678", detailed=True)
    assert de["originalNetwork"]["networkName"] == "T-Mobile"
    assert de["originalNetwork"]["countryName"] == "Germany"


# ------------------------------------------------------------------------------ options


@pytest.mark.parametrize("form", [True, "true", "1", 1, "TRUE"])
def test_true_forms(sb, http, numbers, form):
    phone = numbers["roaming"]
    res = result_of(post(sb, {"phone": phone, "detailed": form, "roaming": form}, session=http))
    assert "mccMnc" in res and res["roaming"] is True
    res = result_of(post(sb, {"phone": phone, "msisdn": form}, session=http))
    assert res == sandbox.answer(phone)


@pytest.mark.parametrize("form", [False, "false", "0", 0, None])
def test_false_forms(sb, http, numbers, form):
    phone = numbers["roaming"]
    res = result_of(post(sb, {"phone": phone, "detailed": form, "roaming": form}, session=http))
    assert list(res) == SUMMARY_KEYS
    res = result_of(post(sb, {"phone": phone, "detailed": True, "roaming": form}, session=http))
    assert "roaming" not in res


@pytest.mark.parametrize("field", ["detailed", "roaming", "msisdn"])
@pytest.mark.parametrize("value", ["yes", 2, [], {}])
def test_bad_boolean_is_a_validation_error(sb, http, field, value):
    resp = post(sb, {"phone": "+447400123456", field: value}, session=http)
    assert resp.status_code == 422
    msg = f"The {field} field must be true or false."
    assert resp.json() == {"message": msg, "errors": {field: [msg]}}


def test_route_case_and_unknown_values(sb, http, numbers):
    phone = numbers["plain"]
    res = result_of(post(sb, {"phone": phone, "detailed": True, "route": "DETAILED"}, session=http))
    assert "ported" in res
    res = result_of(post(sb, {"phone": phone, "detailed": True, "route": "premium"}, session=http))
    assert "ported" not in res
    resp = post(sb, {"phone": phone, "route": 5}, session=http)
    assert resp.status_code == 422 and resp.json()["errors"] == {
        "route": ["The route field must be a string."]
    }


def test_msisdn_true_rejects_duplicated_country_code(sb, http):
    phone = "+44441302778473"  # 15 characters: passes the length rule
    res = result_of(post(sb, {"phone": phone, "detailed": True}, session=http))
    assert list(res) == ABSENT_KEYS
    assert res["to"] == phone
    assert res["error"] == {
        "groupId": 2,
        "groupName": "Undeliverable",
        "id": 9,
        "name": "UNDELIVERABLE_NOT_DELIVERED",
        "description": "Wrong number length or format.",
        "permanent": True,
    }
    summary = result_of(post(sb, {"phone": phone, "msisdn": "1"}, session=http))
    assert summary["dead"] is True and summary["status"] == "Dead"


def test_msisdn_false_accepts_duplicated_country_code(sb, http):
    phone = "+44441302778473"
    res = result_of(post(sb, {"phone": phone, "detailed": True, "msisdn": False}, session=http))
    canonical = sandbox.answer("+441302778473", detailed=True)
    assert res["to"] == phone
    assert {k: v for k, v in res.items() if k != "to"} == {
        k: v for k, v in canonical.items() if k != "to"
    }
    assert res["originalNetwork"]["countryName"] == "United Kingdom"
    summary = result_of(post(sb, {"phone": phone, "msisdn": "false"}, session=http))
    assert summary == {**sandbox.answer("+441302778473"), "to": phone}


def test_msisdn_unknown_country_code(sb, http):
    res = result_of(post(sb, {"phone": "+999123456789", "detailed": True}, session=http))
    assert (res["error"]["groupId"], res["error"]["id"], res["error"]["name"]) == (
        2,
        31,
        "REGION_PREFIX_UNRECOGNIZED",
    )
    assert res["error"]["permanent"] is True
    res = result_of(post(sb, {"phone": "447400123456xx", "detailed": True}, session=http))
    assert res["error"]["name"] == "UNDELIVERABLE_NOT_DELIVERED"


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}],
)
def test_401(make_sandbox, headers):
    server = make_sandbox()
    resp = post(server, {"phone": "+447400123456"}, headers=headers)
    assert resp.status_code == 401
    assert resp.json() == {"message": "Unauthenticated."}
    assert TOKEN not in resp.text
    stats = server.stats()
    assert stats.total_charged == 0 and stats.status_counts == {401: 1}


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"+447400123456"', b"\xff\xfe", b"42"])
def test_400_request_error(sb, http, raw):
    resp = post(sb, raw=raw, session=http)
    assert resp.status_code == 400
    body = resp.json()
    assert list(body) == ["requestError"]
    assert list(body["requestError"]) == ["serviceException"]
    exc = body["requestError"]["serviceException"]
    assert list(exc) == ["messageId", "code"]
    assert isinstance(exc["messageId"], str) and exc["messageId"]
    assert exc["code"] == "400"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "The phone field is required."),
        ({"phone": ""}, "The phone field is required."),
        ({"phone": None}, "The phone field is required."),
        ({"phone": "   "}, "The phone field is required."),
        ({"roaming": True}, "The phone field is required."),
        ({"phone": "+4474001234567"}, None),  # 14
        ({"phone": "+44740012345678"}, None),  # 15
        ({"phone": "+447400123456789"}, "The phone field must not be greater than 15 characters."),
        ({"phone": "+44 7400 123 456"}, "The phone field must not be greater than 15 characters."),
        ({"phone": "+447400123"}, None),  # 10
        ({"phone": "+44740012"}, "The phone field must be at least 10 characters."),
        ({"phone": "123"}, "The phone field must be at least 10 characters."),
    ],
)
def test_422_validation(make_sandbox, body, message):
    server = make_sandbox()
    resp = post(server, body)
    if message is None:
        assert resp.status_code == 200
        assert server.stats().total_charged == 1
        return
    assert resp.status_code == 422
    assert resp.json() == {"message": message, "errors": {"phone": [message]}}
    assert message in _spec.VALIDATION_MESSAGES
    assert server.stats().total_charged == 0


def test_422_empty_body_and_non_string_phone(sb, http):
    resp = post(sb, raw=b"", session=http)
    assert resp.status_code == 422
    assert resp.json()["errors"] == {"phone": ["The phone field is required."]}
    resp = post(sb, {"phone": 447400123456}, session=http)
    assert resp.status_code == 422
    assert resp.json()["errors"] == {"phone": ["The phone field must be a string."]}


def test_402_balance_exhaustion_and_top_up(make_sandbox, numbers):
    server = make_sandbox(balance=2)
    with requests.Session() as s:
        for phone in (numbers["plain"], numbers["dead"]):
            assert post(server, {"phone": phone}, session=s).status_code == 200
        resp = post(server, {"phone": numbers["oon"]}, session=s)
        assert resp.status_code == 402
        assert resp.json() == {
            "message": "Insufficient balance for validation request.",
            "service": "phone",
            "required_amount": "0.0060000000",
            "current_balance": "0.0000000000",
        }
        stats = server.stats()
        assert stats.balance == 0
        assert stats.charged == {numbers["plain"]: 1, numbers["dead"]: 1}
        assert stats.status_counts == {200: 2, 402: 1}
        assert stats.received == {numbers["plain"]: 1, numbers["dead"]: 1, numbers["oon"]: 1}

        server.configure(balance=1)
        assert post(server, {"phone": numbers["oon"]}, session=s).status_code == 200
        assert post(server, {"phone": numbers["oon"]}, session=s).status_code == 402
        # validation errors are answered (not charged) even without balance
        assert post(server, {"phone": "123"}, session=s).status_code == 422
        server.configure(balance=None)
        assert post(server, {"phone": numbers["oon"]}, session=s).status_code == 200
        stats = server.stats()
        assert stats.balance is None and stats.total_charged == 4
        assert stats.charged[numbers["oon"]] == 2


def test_402_custom_price(make_sandbox):
    server = make_sandbox(balance=0, price="0.0125")
    resp = post(server, {"phone": "+447400123456"})
    assert resp.status_code == 402
    assert resp.json()["required_amount"] == "0.0125000000"
    assert resp.json()["current_balance"] == "0.0000000000"


def test_concurrent_requests_cannot_overdraw(make_sandbox):
    server = make_sandbox(balance=7)
    codes: list[int] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        with requests.Session() as s:
            for i in range(6):
                r = post(server, {"phone": f"+4474001{k:02d}{i:03d}"}, session=s)
                with lock:
                    codes.append(r.status_code)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(codes).count(200) == 7 and codes.count(402) == 41
    stats = server.stats()
    assert stats.total_charged == 7 and stats.balance == 0 and stats.requests == 48


def test_rate_limit_429(make_sandbox):
    server = make_sandbox(rate_limit=5)
    now = frozen(server)
    with requests.Session() as s:
        codes = []
        for i in range(9):
            r = post(server, {"phone": f"+4474001230{i:02d}"}, session=s)
            codes.append(r.status_code)
            if r.status_code == 429:
                assert r.json() == {"message": "Too Many Attempts."}
                assert r.headers["Retry-After"] == "1"  # the window's oldest slot frees in 1 s
        assert codes == [200] * 5 + [429] * 4
        stats = server.stats()
        assert stats.total_charged == 5
        assert stats.fault_counts == {"rate_limit": 4}
        now[0] += 0.5
        assert post(server, {"phone": "+447400123000"}, session=s).status_code == 429
        now[0] += 0.5  # a second after the first five: the window is free again
        assert post(server, {"phone": "+447400123000"}, session=s).status_code == 200


def test_rate_limit_can_be_changed_live(make_sandbox):
    server = make_sandbox(rate_limit=1)
    frozen(server)
    with requests.Session() as s:
        assert post(server, {"phone": "+447400123001"}, session=s).status_code == 200
        assert post(server, {"phone": "+447400123002"}, session=s).status_code == 429
        server.configure(rate_limit=None)
        assert post(server, {"phone": "+447400123003"}, session=s).status_code == 200


# ------------------------------------------------------------------------------ faults


def test_fault_500_and_503(make_sandbox):
    for code, faults in (
        (500, sandbox.Faults(error_500=1.0)),
        (503, sandbox.Faults(error_503=1.0)),
    ):
        server = make_sandbox(faults=faults, balance=5)
        resp = post(server, {"phone": "+447400123456"})
        assert resp.status_code == code
        assert resp.json() == {
            "requestError": {
                "serviceException": {
                    "messageId": resp.json()["requestError"]["serviceException"]["messageId"],
                    "code": str(code),
                }
            }
        }
        stats = server.stats()
        assert stats.total_charged == 0 and stats.balance == 5
        assert stats.fault_counts == {f"error_{code}": 1}
        assert server.log()[-1].fault == f"error_{code}" and server.log()[-1].charged is False


def test_fault_429_seconds_and_http_date(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(rate_429=1.0, retry_after=3.0))
    resp = post(server, {"phone": "+447400123456"})
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "3"
    assert server.stats().total_charged == 0

    faults = sandbox.Faults(rate_429=1.0, retry_after=2.0, retry_after_http_date=True)
    server = make_sandbox(faults=faults)
    before = datetime.now(UTC).replace(microsecond=0)
    resp = post(server, {"phone": "+447400123456"})
    assert resp.status_code == 429
    when = email.utils.parsedate_to_datetime(resp.headers["Retry-After"])
    assert resp.headers["Retry-After"].endswith("GMT")
    delta = (when - before).total_seconds()
    assert 2 <= delta <= 60  # at least the 2 s asked; the upper bound only catches nonsense
    stats = server.stats()
    assert stats.total_charged == 0 and stats.fault_counts == {"rate_429": 1}


def test_fault_drop(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(drop=1.0))
    with pytest.raises(requests.ConnectionError):
        post(server, {"phone": "+447400123456"})
    stats = server.stats()
    assert stats.requests == 1
    assert stats.received == {"+447400123456": 1}
    assert stats.total_charged == 0
    assert stats.fault_counts == {"drop": 1} and stats.status_counts == {0: 1}


def test_fault_truncated(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(truncated=1.0), balance=3)
    resp = post(server, {"phone": "+447400123456", "detailed": True})
    assert resp.status_code == 200
    with pytest.raises(ValueError):
        resp.json()
    full = json.dumps(
        {"results": [sandbox.answer("+447400123456", detailed=True)]}, separators=(",", ":")
    ).encode()
    assert resp.content == full[: len(full) // 2]
    assert int(resp.headers["Content-Length"]) == len(resp.content)
    stats = server.stats()
    assert stats.charged == {"+447400123456": 1} and stats.balance == 2
    assert stats.fault_counts == {"truncated": 1}


def test_fault_temporary(make_sandbox, numbers):
    server = make_sandbox(faults=sandbox.Faults(temporary=1.0), balance=10)
    temp_names = {e.name for e in _spec.ERROR_CODES if not e.permanent}
    for phone in (numbers["plain"], numbers["dead"]):
        res = result_of(post(server, {"phone": phone, "detailed": True, "route": "detailed"}))
        assert list(res) == ABSENT_KEYS
        check_error(res["error"])
        assert res["error"]["permanent"] is False and res["error"]["id"] != 0
        assert res["error"]["name"] in temp_names
        summary = result_of(post(server, {"phone": phone}))
        check_summary(summary, phone)
        assert summary["status"] == "Unknown"
    stats = server.stats()
    assert stats.total_charged == 4 and stats.balance == 6
    assert stats.fault_counts == {"temporary": 4}


def test_fault_quota(make_sandbox, numbers):
    server = make_sandbox(faults=sandbox.Faults(quota=1.0), balance=1)
    phone = numbers["plain"]
    res = result_of(post(server, {"phone": phone, "detailed": True}))
    assert list(res) == ABSENT_KEYS
    err = res["error"]
    assert (err["groupId"], err["id"], err["name"]) == _spec.TRAFFIC_QUOTA_EXCEEDED
    assert err["permanent"] is False
    summary = result_of(post(server, {"phone": phone}))
    assert summary["status"] == "Unknown" and summary["live"] is False
    assert summary["error"]["name"] == "TRAFFIC_QUOTA_EXCEEDED"
    stats = server.stats()
    assert stats.total_charged == 0 and stats.balance == 1
    assert stats.fault_counts == {"quota": 2}


def test_faults_are_reproducible_with_a_seed(make_sandbox):
    def run(seed: int) -> list[int]:
        server = make_sandbox(faults=sandbox.Faults(error_500=0.3, error_503=0.3), seed=seed)
        with requests.Session() as s:
            return [
                post(server, {"phone": "+447400123456"}, session=s).status_code for _ in range(30)
            ]

    first, second, other = run(7), run(7), run(8)
    assert first == second
    assert set(first) == {200, 500, 503}
    assert first != other


def test_faults_validate_probabilities():
    with pytest.raises(ValueError):
        sandbox.Faults(drop=1.5)
    with pytest.raises(ValueError):
        sandbox.Faults(error_500=-0.1)


# ------------------------------------------------------------------------------ server


def test_determinism_across_restarts(make_sandbox, numbers):
    bodies = [
        {"phone": p, **opts}
        for p in numbers.values()
        for opts in ({}, {"detailed": True, "route": "detailed", "roaming": True})
    ]
    first = make_sandbox(seed=1)
    answers = [result_of(post(first, b)) for b in bodies]
    first.close()
    second = make_sandbox(seed=99, port=0)
    assert [result_of(post(second, b)) for b in bodies] == answers
    assert answers[1] == sandbox.answer(
        bodies[1]["phone"], detailed=True, route="detailed", roaming=True
    )


def test_answer_is_deterministic_in_a_fresh_process():
    import subprocess
    import sys

    code = (
        "import json; from pd_hlr import sandbox; "
        "print(json.dumps(sandbox.answer('+447400123456', detailed=True, route='detailed')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert json.loads(out) == sandbox.answer("+447400123456", detailed=True, route="detailed")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "10.0.0.1", "::", "example.com", ""])
def test_refuses_non_loopback_hosts(host):
    with pytest.raises(ValueError, match="loopback"):
        sandbox.serve(host=host)


def test_loopback_hosts(make_sandbox):
    server = make_sandbox(host="localhost")
    assert server.url.startswith("http://127.0.0.1:")
    assert server.host == "127.0.0.1"
    assert server._server.server_address[0] == "127.0.0.1"


def test_keep_alive_and_content_length_everywhere(sb):
    conn = HTTPConnection("127.0.0.1", sb.port, timeout=5)
    requests_ = [
        ("POST", _spec.ENDPOINT_PATH, {"phone": "+447400123456"}, AUTH, 200),
        ("POST", _spec.ENDPOINT_PATH, {"phone": "+447400123456"}, {}, 401),
        ("POST", _spec.ENDPOINT_PATH, {"phone": "1"}, AUTH, 422),
        ("POST", "/nope", {}, AUTH, 404),
        ("GET", _spec.ENDPOINT_PATH, None, AUTH, 405),
        ("POST", _spec.ENDPOINT_PATH, {"phone": "+447400123456", "detailed": 1}, AUTH, 200),
    ]
    conn.connect()
    sock = conn.sock
    for method, path, body, headers, status in requests_:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(
            method, path, body=data, headers={**headers, "Content-Type": "application/json"}
        )
        resp = conn.getresponse()
        payload = resp.read()
        assert resp.status == status
        assert int(resp.getheader("Content-Length")) == len(payload)
        assert resp.getheader("Content-Type") == "application/json"
        json.loads(payload)
        assert conn.sock is sock  # same TCP connection throughout
    conn.close()


def test_stats_log_and_reset(make_sandbox):
    server = make_sandbox()
    with requests.Session() as s:
        post(server, {"phone": "+447400123456"}, session=s)
        post(server, {"phone": "+447400123456"}, session=s)
        post(server, {"phone": "123"}, session=s)
        post(server, {"phone": "+447400123456"}, session=s, headers={})
    stats = server.stats()
    assert stats.requests == 4
    assert stats.charged == {"+447400123456": 2}
    assert stats.received == {"+447400123456": 3, "123": 1}
    assert stats.status_counts == {200: 2, 422: 1, 401: 1}
    assert stats.total_charged == 2 and stats.balance is None
    log = server.log()
    assert [(r.phone, r.status, r.charged) for r in log] == [
        ("+447400123456", 200, True),
        ("+447400123456", 200, True),
        ("123", 422, False),
        ("+447400123456", 401, False),
    ]
    assert all(isinstance(r.t, float) for r in log) and log[0].t <= log[-1].t
    with pytest.raises(Exception):  # noqa: B017 - frozen dataclass
        stats.requests = 5  # type: ignore[misc]
    server.reset_stats()
    assert server.stats().requests == 0 and server.log() == []


def test_close_stops_serving_and_open_connections(make_sandbox):
    server = make_sandbox()
    s = requests.Session()
    assert post(server, {"phone": "+447400123456"}, session=s).status_code == 200
    port = server.port
    server.close()
    assert not server._thread.is_alive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    with pytest.raises(requests.ConnectionError):
        post(server, {"phone": "+447400123456"}, session=s)
    s.close()
    server.close()  # idempotent


def test_close_after_exception_in_block():
    with pytest.raises(RuntimeError), sandbox.serve(token=TOKEN) as server:
        raise RuntimeError("boom")
    assert not server._thread.is_alive()


def test_chunked_body_is_refused_and_connection_closed(make_sandbox):
    server = make_sandbox()
    body = b'{"phone": "+447400123456"}'
    # The whole request goes out in one write: the server may answer and close as soon as it
    # sees the chunked header, and a client still sending chunks would get a broken pipe.
    request = (
        (
            f"POST {_spec.ENDPOINT_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {AUTH['Authorization']}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):  # the server closes the connection: read to EOF
            reply += chunk
    head, _, payload = reply.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0].split()[1] == "411"
    assert "Connection: close" in lines
    assert json.loads(payload)["requestError"]["serviceException"]["code"] == "411"
    assert server.stats().status_counts == {411: 1} and server.stats().total_charged == 0


def test_latency_is_added(make_sandbox):
    server = make_sandbox(latency=0.15)
    pauses = recorded_pauses(server)
    assert post(server, {"phone": "+447400123456"}).status_code == 200
    assert pauses == [0.15]
    server.configure(latency=0.0)
    assert post(server, {"phone": "+447400123456"}).status_code == 200
    assert pauses == [0.15]


def test_fault_slow_charges_then_answers(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(slow=1.0, slow_seconds=30))
    pauses = recorded_pauses(server)
    res = result_of(post(server, {"phone": "+447400123456"}))
    assert res == sandbox.answer("+447400123456") and pauses == [30]
    stats = server.stats()
    assert stats.charged == {"+447400123456": 1} and stats.fault_counts == {"slow": 1}


def test_a_slow_answer_charges_even_when_the_client_gives_up(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(slow=1.0, slow_seconds=30))
    with pytest.raises(requests.ReadTimeout):
        post(server, {"phone": "+447400123456"}, timeout=0.2)
    assert server.stats().charged == {"+447400123456": 1}


# ------------------------------------------------------------------------------ hostile answers
PHONE = "+447400123456"
#: What the real service would not bill: the request never got an answer computed for it.
NOT_CHARGED = {"drop", "error_500", "error_503", "rate_429", "html_200", "quota"}
PROBABILITIES = [
    f.name for f in dataclasses.fields(sandbox.Faults) if f.metadata["probability"]
]


def head_only(server: sandbox.Sandbox, body: dict[str, Any]) -> tuple[int | None, dict]:
    """Send one request; read the status line and headers only (None: no answer at all)."""
    conn = HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(
            "POST",
            _spec.ENDPOINT_PATH,
            body=json.dumps(body).encode(),
            headers={**AUTH, "Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders())
    except (ConnectionError, RemoteDisconnected):
        return None, {}
    finally:
        conn.close()


@pytest.mark.parametrize("name", PROBABILITIES)
def test_every_knob_fires_and_is_charged_as_the_service_would(make_sandbox, name):
    server = make_sandbox(faults=sandbox.Faults(**{name: 1.0}, slow_seconds=0), balance=5)
    recorded_pauses(server)
    status, _ = head_only(server, {"phone": PHONE})
    expected = {"drop": None, "error_500": 500, "error_503": 503, "rate_429": 429}
    assert status == expected.get(name, 200)
    stats = server.stats()
    assert stats.fault_counts == {name: 1}
    assert stats.charged == ({} if name in NOT_CHARGED else {PHONE: 1})
    assert stats.balance == (5 if name in NOT_CHARGED else 4)
    assert len(server.log()) == 1 and server.log()[0].fault == name


def test_every_knob_documents_itself():
    for f in dataclasses.fields(sandbox.Faults):
        assert f.metadata["help"], f.name
        if f.metadata["probability"]:
            assert f.type == "float" and f.default == 0.0
            charged = "(not charged)" if f.name in NOT_CHARGED else "(charged)"
            assert f.metadata["help"].endswith(charged), f.name
            assert f.name in (sandbox.Faults.__doc__ or ""), f.name
    with pytest.raises(ValueError):
        sandbox.Faults(huge=2.0)


def test_html_200_is_a_portal_page(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(html_200=1.0))
    resp = post(server, {"phone": PHONE})
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "text/html"
    assert resp.text.startswith("<!DOCTYPE html>")
    assert server.stats().charged == {}


def test_wrong_to_is_the_answer_of_another_number(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(wrong_to=1.0))
    res = result_of(post(server, {"phone": PHONE, "detailed": True}))
    assert res["to"] != PHONE and len(res["to"]) == len(PHONE)
    assert res == sandbox.answer(res["to"], detailed=True)
    assert server.stats().charged == {PHONE: 1}


def test_errors_beside_results(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(errors_beside_results=1.0))
    body = post(server, {"phone": PHONE}).json()
    assert body == {"results": [sandbox.answer(PHONE)], "errors": {}}


def test_bom_bad_utf8_and_surrogate_bytes(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(bom=1.0))
    raw = post(server, {"phone": PHONE}).content
    assert raw.startswith(b"\xef\xbb\xbf")
    assert json.loads(raw[3:]) == {"results": [sandbox.answer(PHONE)]}

    server = make_sandbox(faults=sandbox.Faults(bad_utf8=1.0))
    raw = post(server, {"phone": PHONE, "detailed": True}).content
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    res = json.loads(raw.decode("latin-1"))["results"][0]
    assert res["originalNetwork"]["networkName"] == "Telefónica"
    expected = sandbox.answer(PHONE, detailed=True)
    expected["originalNetwork"]["networkName"] = "Telefónica"
    assert res == expected

    server = make_sandbox(faults=sandbox.Faults(surrogate=1.0))
    raw = post(server, {"phone": PHONE}).content
    assert b"\\ud83d" in raw
    name = json.loads(raw)["results"][0]["originalNetwork"]
    with pytest.raises(UnicodeEncodeError):
        name.encode("utf-8")


def test_deep_nesting_defeats_a_naive_parser(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(deep_nesting=1.0))
    raw = post(server, {"phone": PHONE}).content
    with pytest.raises(RecursionError):
        json.loads(raw)
    assert raw.count(b"[") > 100_000 and server.stats().charged == {PHONE: 1}


def test_trickle_sends_the_answer_one_byte_per_pause(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(trickle=1.0))
    pauses = recorded_pauses(server)
    resp = post(server, {"phone": PHONE})
    assert resp.json() == {"results": [sandbox.answer(PHONE)]}
    assert pauses == [server_module.TRICKLE_SECONDS] * (len(resp.content) - 1)


def _raw_request(server: sandbox.Sandbox) -> bytes:
    body = json.dumps({"phone": PHONE}).encode()
    return (
        f"POST {_spec.ENDPOINT_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {AUTH['Authorization']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _read_at_least(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    return data


def test_endless_body_never_ends(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(endless=1.0))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_raw_request(server))
        data = _read_at_least(sock, 8 << 20)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head and len(body) >= (8 << 20) - len(head)
    assert b'{"results":[{"to":"+447400123456"' in body[:200]
    assert server.stats().charged == {PHONE: 1}


def test_huge_body_announces_100_mb(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(huge=1.0))
    status, headers = head_only(server, {"phone": PHONE})
    assert status == 200 and int(headers["Content-Length"]) == server_module.HUGE_BYTES
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_raw_request(server))
        data = _read_at_least(sock, 4 << 20)
    assert len(data) >= 4 << 20 and b'{"results":[{"to":"+447400123456"' in data[:400]


def test_gzip_bomb_inflates_far_beyond_its_size(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(gzip_bomb=1.0))
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(_raw_request(server))
        data = _read_at_least(sock, 64 << 10)
        head = data.partition(b"\r\n\r\n")[0].decode()
        length = int(head.split("Content-Length: ")[1].split("\r\n")[0])
        data += _read_at_least(sock, len(head) + 4 + length - len(data))
    assert "Content-Encoding: gzip" in head and length < 2 << 20
    wire = data.partition(b"\r\n\r\n")[2]
    inflate = zlib.decompressobj(wbits=31)
    out = inflate.decompress(wire[:4096], 1 << 20)
    assert out.startswith(b'{"results":[{"to":"+447400123456"')
    total, rest = len(out), wire  # inflate 64 MiB of it, in bounded steps, then stop
    inflate = zlib.decompressobj(wbits=31)
    while total < (64 << 20):
        piece = inflate.decompress(rest, 1 << 20)
        rest = inflate.unconsumed_tail
        if inflate.eof:
            rest, inflate = inflate.unused_data, zlib.decompressobj(wbits=31)
        total += len(piece)
    assert total >= 64 << 20 and server.stats().charged == {PHONE: 1}


def test_unreachable_refuses_connections_until_cleared(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(unreachable=True))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    server.configure(faults=sandbox.Faults())
    assert result_of(post(server, {"phone": PHONE})) == sandbox.answer(PHONE)
    server.configure(faults=sandbox.Faults(unreachable=True))
    with pytest.raises(requests.ConnectionError):
        post(server, {"phone": PHONE})
    assert server.stats().requests == 1
    server.close()  # closing an unreachable sandbox is fine too


def test_stats_repr_stays_short(make_sandbox):
    stats = sandbox.SandboxStats(
        5000,
        {f"+4474{i:08d}": 1 + i % 3 // 2 for i in range(4000)},
        {f"+4474{i:08d}": 1 for i in range(4000)},
        {200: 4900, 503: 100},
        {"error_503": 100},
        None,
    )
    text = repr(stats)
    assert len(text) < 200 and "charged=5333 for 4000 numbers (1333 twice or more)" in text
    assert "+4474" not in text


def test_importing_the_sandbox_does_not_load_phonenumbers_tables():
    code = (
        "import sys; from pd_hlr.sandbox import Faults, serve; import pd_hlr.sandbox; "
        "heavy = [m for m in sys.modules if m.startswith(('phonenumbers.geocoder', "
        "'phonenumbers.carrierdata'))]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip() == "[]"


def test_the_precedence_order_names_every_knob_once():
    assert sorted(server_module._ORDER) == sorted(PROBABILITIES)


# ------------------------------------------------------------------ keep-alive: hangup, counts
def _exchange(sock: socket.socket, server: sandbox.Sandbox) -> tuple[bytes, bytes]:
    """Send one request on ``sock``; (head, body) of the answer, read by its Content-Length."""
    sock.sendall(_raw_request(server))
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(h for h in head.split(b"\r\n") if h.startswith(b"Content-Length:"))[15:])
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


def test_keep_alive_connections_are_counted(make_sandbox):
    server = make_sandbox()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for _ in range(3):
            head, _ = _exchange(sock, server)
            assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" not in head
        assert (server.stats().connections, server.stats().closed) == (1, 0)
    until(lambda: server.stats().closed == 1)  # the client closed: the server closes too
    assert server.stats().connections == 1 and server.stats().requests == 3
    server.reset_stats()
    assert (server.stats().connections, server.stats().closed) == (0, 0)


@pytest.mark.parametrize("announced", [False, True], ids=["silent", "announced"])
def test_hangup_answers_then_closes_the_keep_alive_connection(make_sandbox, announced):
    server = make_sandbox(faults=sandbox.Faults(hangup=1.0, hangup_announced=announced))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        head, body = _exchange(sock, server)
        assert head.startswith(b"HTTP/1.1 200")
        assert (b"Connection: close" in head) is announced
        assert json.loads(body)["results"][0] == sandbox.answer(PHONE)
        assert sock.recv(1) == b""  # then the server closed the connection
    until(lambda: server.stats().closed == 1)
    stats = server.stats()
    assert stats.charged == {PHONE: 1} and stats.fault_counts == {"hangup": 1}
    assert stats.connections == 1


# ------------------------------------------------------------------------------------- TLS
def test_tls_serves_https_with_the_given_certificate(make_sandbox, tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = make_sandbox(ssl_context=context)
    assert server.url.startswith("https://127.0.0.1:")
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with requests.Session() as s:
        s.trust_env = False  # REQUESTS_CA_BUNDLE from the environment would win over s.verify
        s.verify = str(bundle)
        for _ in range(2):
            assert result_of(post(server, {"phone": PHONE}, session=s)) == sandbox.answer(PHONE)
        with pytest.raises(requests.exceptions.SSLError):  # an untrusted certificate
            s.post(server.endpoint, json={"phone": PHONE}, headers=AUTH, verify=True, timeout=5)
        with pytest.raises(requests.ConnectionError):  # plain HTTP to the TLS port
            requests.post(server.endpoint.replace("https", "http", 1), json={}, timeout=5)
    stats = server.stats()
    assert stats.charged == {PHONE: 2} and stats.requests == 2
    assert stats.connections == 3  # one kept alive for both answers, two refused


def _dechunk(body: bytes) -> list[bytes]:
    """The chunks of a complete chunked body."""
    parts: list[bytes] = []
    while True:
        size, _, body = body.partition(b"\r\n")
        if int(size, 16) == 0:
            return parts
        parts.append(body[: int(size, 16)])
        body = body[int(size, 16) + 2 :]


@pytest.mark.parametrize("faults", [("gzip",), ("chunked",), ("gzip", "chunked")])
def test_gzip_and_chunked_answers_are_the_answer_on_a_kept_connection(make_sandbox, faults):
    server = make_sandbox(faults=sandbox.Faults(**{name: 1.0 for name in faults}))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for _ in range(2):  # the connection stays open after each
            if "chunked" in faults:
                sock.sendall(_raw_request(server))
                data = b""
                while not data.endswith(b"0\r\n\r\n"):
                    data += sock.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                parts = _dechunk(body)
                assert len(parts) == 3 and b"Transfer-Encoding: chunked" in head
                body = b"".join(parts)
            else:
                head, body = _exchange(sock, server)
            assert (b"Content-Encoding: gzip" in head) is ("gzip" in faults)
            if "gzip" in faults:
                body = zlib.decompress(body, 31)
            assert json.loads(body)["results"][0] == sandbox.answer(PHONE)
    stats = server.stats()
    assert stats.charged == {PHONE: 2} and stats.connections == 1
    assert stats.fault_counts == {name: 2 for name in faults}


def test_a_delivery_fault_overrides_the_wire_shapes(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(huge=1.0, gzip=1.0, chunked=1.0, hangup=1.0))
    status, headers = head_only(server, {"phone": PHONE})
    assert status == 200 and int(headers["Content-Length"]) == server_module.HUGE_BYTES
    assert "Content-Encoding" not in headers
    assert server.stats().fault_counts == {"huge": 1}


@pytest.mark.parametrize("keep_alive", [False, True])
@pytest.mark.parametrize("how", ["trickle", "endless", "gzip_bomb", "huge"])
def test_delivery_faults_say_connection_close_unless_told_otherwise(make_sandbox, how, keep_alive):
    faults = sandbox.Faults(**{how: 1.0}, delivery_keep_alive=keep_alive)
    server = make_sandbox(faults=faults)
    recorded_pauses(server)  # a trickle is sent at once
    status, headers = head_only(server, {"phone": PHONE})
    assert status == 200
    assert (headers.get("Connection") == "close") is not keep_alive
    assert server.stats().charged == {PHONE: 1}
    if how == "trickle":  # the server closes after it all the same
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(_raw_request(server))
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data.endswith(b"}]}") and data.startswith(b"HTTP/1.1 200")


def test_tls_stall_handshake_holds_the_handshake_until_cleared(make_sandbox):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_side)
    client_side = ssl.create_default_context()
    ca.configure_trust(client_side)
    faults = sandbox.Faults(stall_handshake=True, slow_seconds=30)
    server = make_sandbox(ssl_context=server_side, faults=faults)
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=0.3) as sock,
        pytest.raises(TimeoutError),  # the server never answers the ClientHello
    ):
        client_side.wrap_socket(sock, server_hostname="127.0.0.1")
    server.configure(faults=sandbox.Faults())
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
        client_side.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        head, body = _exchange(tls, server)
    assert head.startswith(b"HTTP/1.1 200") and json.loads(body)["results"][0]["to"] == PHONE
    assert server.stats().requests == 1 and server.stats().connections == 2


def test_reset_on_connect_resets_each_connection_until_cleared(make_sandbox):
    server = make_sandbox(faults=sandbox.Faults(reset_on_connect=True))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_raw_request(server))
        with pytest.raises(ConnectionResetError):  # RST, not an orderly close
            while sock.recv(65536):
                pass
    until(lambda: server.stats().closed == 1)
    assert server.stats().requests == 0 and server.stats().connections == 1
    server.configure(faults=sandbox.Faults())
    assert result_of(post(server, {"phone": PHONE}))["to"] == PHONE
