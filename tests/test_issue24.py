"""Issue 24 (round two of never pay twice / lose nothing / leak nothing), rows 1-4, 9, 10, 12.

Every test runs against the real sandbox over HTTP, with faults from its knobs, and asserts what
was charged (the sandbox's ledger), what is on disk and what the user sees.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pd_hlr  # noqa: F401  (registers df.hlr)
from pd_hlr import HLRCache, sandbox
from pd_hlr.errors import APIError, BudgetExceededError

from .conftest import TOKEN

NUMBERS = [f"+4474001{i:05d}" for i in range(40)]


def _frame(numbers: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"phone": numbers, "name": [f"n{i}" for i in range(len(numbers))]})


def _files_text(folder: Path) -> str:
    """Every file under ``folder`` as text (bytes decoded leniently)."""
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()
    )


def _parquet_text(folder: Path) -> str:
    """Every parquet file under ``folder`` decoded to text (compressed pages are not greppable
    as bytes)."""
    import pyarrow.parquet as pq

    parts = []
    for p in folder.rglob("*.parquet"):
        frame = pq.read_table(p).to_pandas()
        parts.append(frame.to_json(date_format="iso", default_handler=str))
    return "\n".join(parts)


# ------------------------------------------------------------------------------------- row 1
def test_row1_re_running_at_once_pays_nothing_again_for_temporary_answers(
    make_sandbox: Callable[..., Any], client_for: Any, tmp_path: Path
) -> None:
    sb = make_sandbox(faults=sandbox.Faults(temporary=1.0))  # every answer temporary (charged)
    client = client_for(sb)
    frame, cache = _frame(NUMBERS[:6]), tmp_path / "c"
    first = frame.hlr.validate("phone", client=client, cache=cache)
    assert first["hlr_source"].eq("api").all() and first["status"].eq("Unknown").all()
    assert sb.stats().charged == {n: 1 for n in NUMBERS[:6]}
    # what the user sees before spending: the estimate says the re-run costs nothing
    est = frame.hlr.estimate("phone", client=client, cache=cache)
    assert (est.cached, est.to_look_up) == (6, 0)
    again = frame.hlr.validate("phone", client=client, cache=cache)
    assert again["hlr_source"].eq("cache").all()
    assert sb.stats().charged == {n: 1 for n in NUMBERS[:6]}  # nothing paid twice
    assert again.hlr.report().looked_up == 0
    # on disk: one entry per number, each temporary
    stored = HLRCache(cache).stats()
    assert (stored["entries"], stored["temporary"]) == (6, 6)
    # retry_temporary=True chooses to look them up again at once: the estimate says so first
    est = frame.hlr.estimate("phone", client=client, cache=cache, retry_temporary=True)
    assert (est.cached, est.to_look_up) == (0, 6)
    frame.hlr.validate("phone", client=client, cache=cache, retry_temporary=True)
    assert sb.stats().charged == {n: 2 for n in NUMBERS[:6]}


def test_row1_a_temporary_answer_older_than_the_minimum_age_is_looked_up_again(
    make_sandbox: Callable[..., Any], client_for: Any, tmp_path: Path
) -> None:
    from pd_hlr.cache import Entry
    from pd_hlr.pipeline import api_namespace
    from pd_hlr.settings import LookupOptions

    sb = make_sandbox(faults=sandbox.Faults(temporary=1.0))
    client = client_for(sb)
    numbers = NUMBERS[:4]
    answers = {n: client.lookup(n) for n in numbers}  # 4 charged, temporary answers
    cache = HLRCache(tmp_path / "c")
    now = dt.datetime.now(dt.UTC)
    ages = {numbers[0]: dt.timedelta(minutes=5), numbers[1]: dt.timedelta(minutes=50),
            numbers[2]: dt.timedelta(minutes=70), numbers[3]: dt.timedelta(hours=30)}
    with cache.writer() as writer:  # answers received that long ago (an injected clock)
        for n, age in ages.items():
            writer.add(Entry(n, LookupOptions().key(), api_namespace(client), answers[n],
                             now - age))
    sb.configure(faults=sandbox.Faults())
    frame = _frame(numbers)
    # the default minimum age is one hour: the two older ones are looked up again
    est = frame.hlr.estimate("phone", client=client, cache=cache)
    assert (est.cached, est.to_look_up) == (2, 2)
    out = frame.hlr.validate("phone", client=client, cache=cache)
    assert out["hlr_source"].tolist() == ["cache", "cache", "api", "api"]
    assert sb.stats().charged == {numbers[0]: 1, numbers[1]: 1, numbers[2]: 2, numbers[3]: 2}
    # a duration chooses another age; False serves them whatever their age (max_age applies)
    cache2 = HLRCache(tmp_path / "c2")
    with cache2.writer() as writer:
        for n, age in ages.items():
            writer.add(Entry(n, LookupOptions().key(), api_namespace(client), answers[n],
                             now - age))
    for value, cached in (("10min", 1), ("2D", 4), (False, 4), (True, 0)):
        est = frame.hlr.estimate("phone", client=client, cache=cache2, retry_temporary=value)
        assert est.cached == cached, value
    est = frame.hlr.estimate(
        "phone", client=client, cache=cache2, retry_temporary=False, max_age="1D"
    )
    assert est.cached == 3


@pytest.mark.parametrize(
    ("value", "message"),
    [(3600, "retry_temporary needs a unit"), ("3600", "needs a unit"),
     ("soon", "is not a duration"), ("-1h", "must not be negative")],
)
def test_row1_retry_temporary_values_are_checked(value: Any, message: str) -> None:
    from pd_hlr.settings import ValidateSettings

    with pytest.raises(ValueError, match=message):
        ValidateSettings.from_kwargs(retry_temporary=value)
    assert ValidateSettings().retry_temporary == pd.Timedelta(hours=1)  # the documented default


def test_row1_cli_retry_temporary_flag(
    real_api: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pd_hlr import cli

    sb = real_api(faults=sandbox.Faults(temporary=1.0))
    src = tmp_path / "in.csv"
    pd.DataFrame({"phone": NUMBERS[:2]}).to_csv(src, index=False)
    run = ["validate", str(src), "-c", "phone", "--cache", str(tmp_path / "c"), "--force"]
    run += ["--out", str(tmp_path / "o.parquet")]
    assert cli.main(run) == 0 and sb.stats().total_charged == 2
    assert cli.main(run) == 0 and sb.stats().total_charged == 2  # re-run at once: served
    capsys.readouterr()
    est = ["estimate", str(src), "-c", "phone", "--cache", str(tmp_path / "c"), "--json"]
    assert cli.main([*est, "--retry-temporary", "0s"]) == 0
    assert json.loads(capsys.readouterr().out)["to_look_up"] == 2
    assert cli.main([*run, "--retry-temporary", "0s"]) == 0 and sb.stats().total_charged == 4
    with pytest.raises(SystemExit) as info:
        cli.main([*run, "--retry-temporary", "3600"])
    assert info.value.code == 2 and "needs a unit" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- row 3
@pytest.mark.parametrize("face", ["pandas", "series", "estimate", "dask", "polars", "client"])
def test_row3_a_route_the_spec_does_not_define_is_refused_before_any_request(
    make_sandbox: Callable[..., Any], client_for: Any, tmp_path: Path, face: str
) -> None:
    sb = make_sandbox()
    client = client_for(sb)
    frame = _frame(NUMBERS[:3])
    opts: dict[str, Any] = {"client": client, "cache": tmp_path / "c", "route": "premium"}
    with pytest.raises(ValueError, match="route must be one of 'standard', 'detailed'"):
        if face == "pandas":
            frame.hlr.validate("phone", **opts)
        elif face == "series":
            frame["phone"].hlr.validate(**opts)
        elif face == "estimate":
            frame.hlr.estimate("phone", **opts)
        elif face == "dask":
            dd = pytest.importorskip("dask.dataframe")
            import pd_hlr.dask

            dd.from_pandas(frame, npartitions=2).hlr.validate("phone", **opts)
        elif face == "polars":
            pl = pytest.importorskip("polars")
            import pd_hlr.polars  # noqa: F401

            pl.from_pandas(frame).hlr.validate("phone", **opts)
        else:
            client.lookup_many(NUMBERS[:3], route="premium")
    with pytest.raises(ValueError, match="not 'Standard'"):
        client.lookup(NUMBERS[0], route="Standard")
    assert sb.stats().requests == 0  # nothing sent, nothing charged
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").glob("part-*"))
    # the spec's values are still sent and charged once
    client.lookup(NUMBERS[0], route="standard")
    assert sb.stats().charged == {NUMBERS[0]: 1}


# ------------------------------------------------------------------------------------- row 4
@pytest.mark.parametrize("fault", ["missing_to", "nan_field"])
def test_row4_a_complete_billed_answer_is_bought_once_per_run(
    make_sandbox: Callable[..., Any], client_for: Any, tmp_path: Path, fault: str
) -> None:
    sb = make_sandbox(faults=sandbox.Faults(**{fault: 1.0}))
    client = client_for(sb, max_retries=5, backoff_factor=0)
    numbers = NUMBERS[:4]
    out = _frame(numbers).hlr.validate("phone", client=client, cache=tmp_path / "c")
    # what was charged: each number once (was 6 each: the first attempt and five retries)
    assert sb.stats().charged == {n: 1 for n in numbers}
    assert sb.stats().requests == len(numbers)
    # what the user sees: an error row naming it, counted as possibly charged
    assert out["hlr_source"].eq("error").all()
    assert out["hlr_error"].str.contains("charged; not retried").all()
    assert client.stats.possibly_charged_numbers == set(numbers)
    assert client.stats.failures == {"incomplete_result": len(numbers)}
    # on disk: nothing unusable was cached
    assert HLRCache(tmp_path / "c").to_frame().empty
    # one lookup of one number
    with pytest.raises(APIError) as info:
        client.lookup(NUMBERS[10])
    assert info.value.kind == "incomplete_result" and info.value.attempts == 1
    assert sb.stats().charged[NUMBERS[10]] == 1


def test_row4_budget_one_pays_for_one_lookup(
    make_sandbox: Callable[..., Any], client_for: Any, tmp_path: Path
) -> None:
    sb = make_sandbox(faults=sandbox.Faults(missing_to=1.0))
    client = client_for(sb, max_retries=5, backoff_factor=0)
    out = _frame(NUMBERS[:1]).hlr.validate("phone", client=client, cache=False, budget=1)
    assert sb.stats().total_charged == 1  # budget=1 bought one lookup, not six
    assert out["hlr_source"].tolist() == ["error"]
    with pytest.raises(BudgetExceededError):
        _frame(NUMBERS[:2]).hlr.validate("phone", client=client, cache=False, budget=1)
    assert sb.stats().total_charged == 1


# ------------------------------------------------------------------------------------ row 10
def test_row10_a_token_echoed_into_a_200_is_scrubbed_everywhere(
    make_sandbox: Callable[..., Any], client_for: Any, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sb = make_sandbox(faults=sandbox.Faults(echo_token=1.0))
    client = client_for(sb)
    numbers = NUMBERS[:5]
    cache = tmp_path / "c"
    out = _frame(numbers).hlr.validate("phone", client=client, cache=cache, detailed=True)
    assert sb.stats().charged == {n: 1 for n in numbers}
    assert sb.stats().fault_counts == {"echo_token": len(numbers)}
    # the answers were kept (the echo is the gateway's, the answer is sound), scrubbed
    assert out["hlr_source"].eq("api").all()
    assert out["original_network_name"].str.contains(r"\[Bearer \*\*\*\]").all()
    frame_text = out.to_json(date_format="iso") + out.to_html() + out._repr_html_() + repr(out)
    assert TOKEN not in frame_text
    assert "Bearer ***" in out["hlr_extra"].iloc[0]
    # on disk: journal and parts (decoded too: parquet pages are compressed)
    HLRCache(cache).compact()
    assert TOKEN not in _files_text(cache) + _parquet_text(cache)
    # exports
    out.to_parquet(tmp_path / "out.parquet")
    out.to_csv(tmp_path / "out.csv")
    assert TOKEN not in _files_text(tmp_path / "out.parquet") + _parquet_text(tmp_path)
    assert TOKEN not in (tmp_path / "out.csv").read_text()
    # a re-run serves them from the cache, still scrubbed, and pays nothing
    again = _frame(numbers).hlr.validate("phone", client=client, cache=cache, detailed=True)
    assert again["hlr_source"].eq("cache").all()
    assert TOKEN not in again.to_json(date_format="iso")
    assert sb.stats().total_charged == len(numbers)
    # one lookup, and the log said it once, without the token
    assert TOKEN not in json.dumps(client.lookup(NUMBERS[20]))
    echoed = [r for r in caplog.records if "echoed the API token" in r.getMessage()]
    assert len(echoed) == 1
    assert all(TOKEN not in r.getMessage() for r in caplog.records)



def test_row10_a_short_token_is_scrubbed_as_the_echoed_header_only(
    make_sandbox: Callable[..., Any], client_for: Any
) -> None:
    sb = make_sandbox(token="t", faults=sandbox.Faults(echo_token=1.0))
    result = client_for(sb).lookup(NUMBERS[0])
    assert result["to"] == NUMBERS[0] and "status" in result  # "t" in ordinary text is kept
    assert result["gateway"] == {"request_headers": {"Authorization": "***"}}
    assert "Bearer t" not in json.dumps(result)
