"""The run report and the estimate: checked against the sandbox's ledger, saved with the data."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pd_hlr
from pd_hlr import sandbox
from pd_hlr.report import Estimate, RunReport, money
from pd_hlr.settings import DEFAULT_PRICE, is_loopback_host

from .conftest import TOKEN

NUMBERS = [f"+4474006{i:05d}" for i in range(0, 400, 10)]


def _run(server: Any, client: Any, cache: Any, **kwargs: Any) -> pd.DataFrame:
    frame = pd.DataFrame({"phone": [*NUMBERS, "junk", None, NUMBERS[0]]})
    return frame.hlr.validate("phone", client=client, cache=cache, **kwargs)


def test_report_matches_the_sandbox_ledger(make_sandbox: Any, client_for: Any, tmp_path: Path):
    server = make_sandbox(faults=sandbox.Faults(error_500=0.3, truncated=0.15), seed=11)
    client = client_for(server, max_retries=1, workers=4, backoff_factor=0)
    out = _run(server, client, tmp_path / "c")
    report, stats = out.hlr.report(), server.stats()
    sources = out["hlr_source"].value_counts()
    assert (report.rows, report.missing, report.invalid, report.distinct) == (43, 1, 1, 40)
    assert report.looked_up == len(set(out.loc[out["hlr_source"] == "api", "hlr_number"]))
    # failed counts distinct numbers; NUMBERS[0] is on two rows
    errors = out.loc[out["hlr_source"] == "error", "hlr_number"]
    assert report.failed == errors.nunique() > 0 and sources["error"] == errors.size
    assert report.looked_up + report.failed == 40 and report.cached == 0
    assert report.requests == stats.requests and report.retries == stats.requests - 40
    # a truncated answer is charged but never arrives: every charge is an answer received
    # or an attempt the client counted as possibly charged
    assert report.possibly_charged > 0
    assert stats.total_charged == report.looked_up + report.possibly_charged
    assert report.spend == DEFAULT_PRICE * report.looked_up
    assert report.spend_max == DEFAULT_PRICE * stats.total_charged
    assert report.api_host == "127.0.0.1" and report.sandbox is True
    assert report.stopped is None and report.duration > 0
    assert pd.Timestamp(report.started_at).tzinfo is not None

    server.reset_stats()
    again = _run(server, client, tmp_path / "c", retry_temporary=False).hlr.report()
    assert again.cached == report.looked_up  # only what was answered is cached
    assert again.looked_up + again.failed == report.failed
    assert again.requests == server.stats().requests  # this run's counts, not the client's


def test_report_when_validate_makes_the_client(
    make_sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = make_sandbox(faults=sandbox.Faults(truncated=0.1), seed=5)
    monkeypatch.setenv("PROVERO_API_TOKEN", TOKEN)
    monkeypatch.setenv("PROVERO_BASE_URL", server.url)
    out = _run(server, None, False, workers=8)
    report, stats = out.hlr.report(), server.stats()
    assert report.possibly_charged > 0 and report.requests == stats.requests
    assert stats.total_charged == report.looked_up + report.possibly_charged


def test_failed_attempts_by_kind(make_sandbox: Any, client_for: Any) -> None:
    server = make_sandbox(faults=sandbox.Faults(error_500=0.3, truncated=0.2), seed=3)
    out = _run(server, client_for(server, max_retries=2, backoff_factor=0), False)
    report = out.hlr.report()
    assert len(report.failures) >= 2  # two kinds of failure were injected
    assert sum(report.failures.values()) == sum(server.stats().fault_counts.values())


def test_stopped_run_report_is_on_the_error(make_sandbox: Any, client_for: Any) -> None:
    server = make_sandbox(balance=7)
    with pytest.raises(pd_hlr.InsufficientBalanceError) as info:
        _run(server, client_for(server, workers=2), False)
    report = info.value.report
    assert isinstance(report, RunReport)
    assert (report.looked_up, report.not_looked_up, report.stopped) == (
        7, 33, "InsufficientBalanceError"
    )
    assert "stopped by InsufficientBalanceError: 33 numbers not looked up" in str(report)


def test_report_is_saved_in_parquet_with_the_sandbox_flag(
    sb: Any, client_for: Any, tmp_path: Path
) -> None:
    out = _run(sb, client_for(sb), False)
    path = tmp_path / "enriched.parquet"
    out.hlr.to_parquet(path)
    info = json.loads(pq.read_schema(path).metadata[b"pd_hlr"])
    saved = info["report"]
    assert saved["sandbox"] is True and saved["api_host"] == "127.0.0.1"
    assert saved["looked_up"] == 40 and saved["spend"] == str(DEFAULT_PRICE * 40)
    assert RunReport.from_dict(saved) == out.hlr.report()
    assert pd.read_parquet(path).hlr.report() == out.hlr.report()


def test_a_frame_without_a_report_says_why() -> None:
    with pytest.raises(AttributeError, match=r"not the output of df\.hlr\.validate"):
        pd.DataFrame({"a": [1]}).hlr.report()


# --- the values themselves --------------------------------------------------------------------
reports = st.builds(
    RunReport,
    rows=st.integers(0, 10**9),
    distinct=st.integers(0, 10**9),
    cached=st.integers(0, 10**9),
    looked_up=st.integers(0, 10**9),
    failed=st.integers(0, 10**6),
    not_looked_up=st.integers(0, 10**6),
    failures=st.dictionaries(st.text(min_size=1, max_size=12), st.integers(1, 10**6)),
    possibly_charged=st.integers(0, 10**6),
    limit_signals=st.integers(0, 10**6),
    rate=st.none() | st.floats(0.5, 1e5, allow_nan=False),
    rate_peak=st.none() | st.floats(0, 1e5, allow_nan=False),
    price=st.decimals(0, 100, places=10, allow_nan=False),
    duration=st.floats(0, 1e6, allow_nan=False),
    api_host=st.text(max_size=30),
    sandbox=st.booleans(),
    stopped=st.none() | st.sampled_from(["InsufficientBalanceError", "AuthenticationError"]),
)


@given(reports)
def test_report_round_trips_through_json(report: RunReport) -> None:
    data = json.loads(json.dumps(report.to_dict()))  # JSON-safe without a default=
    assert RunReport.from_dict(data) == report
    assert Decimal(data["spend"]) == report.price * report.looked_up
    assert Decimal(data["spend_max"]) == report.price * (report.looked_up + report.possibly_charged)


@given(reports)
def test_report_reads_as_text_and_html(report: RunReport) -> None:
    text, page = str(report), report._repr_html_()
    assert f"{report.looked_up:,} looked up" in text and f"{report.cached:,} cached" in text
    assert ("SANDBOX" in text) == report.sandbox == ("SANDBOX" in page)
    assert ("stopped by" in text) == bool(report.stopped)
    assert repr(report).startswith("<RunReport\npd-hlr run:")
    assert "<script" not in page


def test_from_dict_ignores_unknown_keys_and_fills_defaults() -> None:
    got = RunReport.from_dict({"rows": 1, "distinct": 1, "cached": 1, "looked_up": 0, "new": 3})
    assert got == RunReport(rows=1, distinct=1, cached=1, looked_up=0)


def test_estimate_reads_well() -> None:
    est = Estimate(20_000, 10, 5, 0, 13_508, 8_358, 5_150, Decimal("0.006"))
    assert repr(est) == (
        "<Estimate: 20,000 rows: 10 missing, 5 invalid, 0 skipped; 13,508 distinct numbers, "
        "8,358 cached, 5,150 to look up ≈ 30.900 at 0.006 each>"
    )
    page = est._repr_html_()
    assert "5,150" in page and "30.900 at 0.006 per lookup" in page
    assert json.loads(json.dumps(est.to_dict(), default=str))["cost"] == "30.900"


@pytest.mark.parametrize(
    ("amount", "text"),
    [("0", "0.00"), ("0.006", "0.006"), ("30.9", "30.90"), ("1234.56789", "1,234.5679")],
)
def test_money(amount: str, text: str) -> None:
    assert money(Decimal(amount)) == text


@pytest.mark.parametrize(
    ("price", "amounts", "texts"),
    [
        ("0.006", ["0", "14.274", "30.9", "1234.5"], ["0.000", "14.274", "30.900", "1,234.500"]),
        ("0.01", ["0", "0.12", "7"], ["0.00", "0.12", "7.00"]),
        ("0.0055", ["0", "1.1"], ["0.0000", "1.1000"]),
        ("1", ["3"], ["3.00"]),
    ],
)
def test_money_shows_every_amount_of_a_run_with_the_prices_decimals(
    price: str, amounts: list[str], texts: list[str]
) -> None:
    """Issue 25: "0.00", "14.274" and "14.2740" in one run. One rule: the price's decimals."""
    assert [money(Decimal(a), Decimal(price)) for a in amounts] == texts


def test_report_counts_read_as_english_for_one() -> None:
    one = RunReport(rows=1, distinct=1, cached=0, looked_up=1, requests=1, retries=1,
                    price=Decimal("0.006"))
    text = str(one)
    assert "1 row (" in text and "1 distinct number:" in text
    assert "1 request, 1 retry," in text and "spend ≈ 0.006 at 0.006" in text
    many = str(RunReport(rows=2, distinct=2, cached=0, looked_up=2, requests=2,
                         price=Decimal("0.006")))
    assert "2 rows (" in many and "2 distinct numbers:" in many and "0 retries" in many


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("LOCALHOST", True), ("api.provero.io", False), ("10.0.0.1", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
