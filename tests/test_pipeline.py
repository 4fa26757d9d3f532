"""The pipeline's rules, through the pandas face, against the sandbox over real HTTP.

Estimate and budget (one ``Estimate``, built in one place), a run stopped by any run-stopping
error (``.partial``, ``.looked_up``, ``.remaining``, ``.report``), the caller's columns never
overwritten, and warnings that point at the caller's line.
"""

from __future__ import annotations

import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pd_hlr
from pd_hlr import sandbox, schema
from pd_hlr.errors import BudgetExceededError, ColumnConflictError, HLRError
from pd_hlr.settings import DEFAULT_PRICE

from .conftest import TOKEN

# 30 GB mobiles; the sandbox's answers are deterministic, so which are temporary is known
# without pd-hlr's pipeline: from the sandbox's answer function and the schema's rule.
NUMBERS = [f"+4474005{i:05d}" for i in range(0, 300, 10)]


def _temporary(numbers: list[str], detailed: bool = False) -> set[str]:
    answers = [sandbox.answer(n, detailed=detailed) for n in numbers]
    flags = schema.is_temporary(schema.flatten(answers, detailed))
    return {n for n, t in zip(numbers, flags, strict=True) if t}


def _frame() -> pd.DataFrame:
    """Rows: every number, some twice in another format, plus junk and empty cells."""
    phones: list[Any] = list(NUMBERS)
    phones += ["0" + n[3:] for n in NUMBERS[:5]]  # national format: the same numbers again
    phones += ["call me", "+999 1234 5678", None, "", "07400"]
    return pd.DataFrame({"name": [f"p{i}" for i in range(len(phones))], "phone": phones})


def test_temporary_numbers_exist_in_the_fixture() -> None:
    assert 0 < len(_temporary(NUMBERS)) < len(NUMBERS)


# --- estimate and budget ----------------------------------------------------------------------
def test_estimate_counts_and_sends_nothing(sb: Any, client_for: Any, tmp_path: Path) -> None:
    client, cache = client_for(sb), tmp_path / "c"
    frame = _frame()
    est = frame.hlr.estimate("phone", default_region="GB", client=client, cache=cache)
    assert sb.stats().requests == 0
    assert (est.rows, est.missing, est.invalid, est.skipped) == (len(frame), 2, 3, 0)
    assert (est.distinct, est.cached, est.to_look_up) == (30, 0, 30)
    assert est.price == DEFAULT_PRICE and est.cost == DEFAULT_PRICE * 30
    assert est.to_dict()["cost"] == DEFAULT_PRICE * 30
    assert "30 to look up ≈ 0.180 at 0.006 each" in str(est)
    assert est == frame["phone"].hlr.estimate(default_region="GB", client=client, cache=cache)

    pricey = frame.hlr.estimate("phone", default_region="GB", cache=cache, price="0.01")
    assert pricey.cost == Decimal("0.30")

    frame.hlr.validate("phone", default_region="GB", client=client, cache=cache)
    assert sb.stats().requests == 30
    again = frame.hlr.estimate("phone", default_region="GB", client=client, cache=cache)
    temporary = _temporary(NUMBERS)
    # temporary outcomes are served for an hour by default; retry_temporary=True looks them up
    # again at once, False serves them whatever their age
    assert (again.cached, again.to_look_up, again.cost) == (30, 0, 0)
    at_once = frame.hlr.estimate(
        "phone", default_region="GB", client=client, cache=cache, retry_temporary=True
    )
    assert (at_once.cached, at_once.to_look_up) == (30 - len(temporary), len(temporary))
    kept = frame.hlr.estimate(
        "phone", default_region="GB", client=client, cache=cache, retry_temporary=False
    )
    assert (kept.cached, kept.to_look_up, kept.cost) == (30, 0, 0)
    # other options are another cache key: nothing cached for detailed mode
    detailed = frame.hlr.estimate(
        "phone", default_region="GB", detailed=True, client=client, cache=cache
    )
    assert detailed.cached == 0
    assert sb.stats().requests == 30


def test_estimate_of_only_mobile_skips_landlines(sb: Any, client_for: Any) -> None:
    frame = pd.DataFrame({"phone": [NUMBERS[0], "+44 20 7946 0958", "+44 1302 778473"]})
    est = frame.hlr.estimate("phone", only_mobile=True, client=client_for(sb), cache=False)
    assert (est.skipped, est.distinct) == (2, 1)


def test_budget_refuses_before_sending_with_the_same_estimate(
    sb: Any, client_for: Any, tmp_path: Path
) -> None:
    client, cache = client_for(sb), tmp_path / "c"
    frame = _frame()
    est = frame.hlr.estimate("phone", default_region="GB", client=client, cache=cache)
    with pytest.raises(BudgetExceededError, match="budget=29; nothing was sent") as info:
        frame.hlr.validate(
            "phone", default_region="GB", client=client, cache=cache, budget=29, price="0.01"
        )
    assert sb.stats().requests == 0
    refused = info.value.estimate
    assert refused == pd_hlr.Estimate(**{**est.__dict__, "price": Decimal("0.01")})
    assert "estimated cost 0.30 at 0.01 per lookup" in str(info.value)

    out = frame.hlr.validate(
        "phone", default_region="GB", client=client, cache=cache, budget=30,
        retry_temporary=False,
    )
    assert sb.stats().requests == 30
    again = frame.hlr.validate(
        "phone", default_region="GB", client=client, cache=cache, budget=0,
        retry_temporary=False,
    )
    assert sb.stats().requests == 30  # everything cached: budget=0 is enough
    assert (again["hlr_source"] == "cache").sum() == (out["hlr_source"] == "api").sum()


# --- a run stopped part-way -----------------------------------------------------------------
def _charged(server: Any) -> set[str]:
    return {n for n, c in server.stats().charged.items() if c}


@pytest.mark.parametrize("retry_temporary", [True, False])
def test_402_remaining_is_what_the_rerun_looks_up(
    make_sandbox: Any, client_for: Any, tmp_path: Path, retry_temporary: bool
) -> None:
    server = make_sandbox(balance=20)
    client, cache = client_for(server, workers=4), tmp_path / "c"
    frame = _frame()
    opts = {"default_region": "GB", "cache": cache, "retry_temporary": retry_temporary}
    with pytest.raises(pd_hlr.InsufficientBalanceError) as info:
        frame.hlr.validate("phone", client=client, **opts)
    exc = info.value
    paid = _charged(server)
    assert len(paid) == 20 and exc.looked_up == 20
    temporary = _temporary(sorted(paid)) if retry_temporary else set()
    assert exc.remaining == 10 + len(temporary)
    note = " ".join(exc.__notes__)
    assert f"20 numbers were looked up and saved to the cache; {exc.remaining} remain" in note
    if temporary:
        assert f"{len(temporary)} of them temporary answers" in note
    # .partial is the face's frame: the caller's columns, then the results
    assert list(exc.partial.columns) == ["name", "phone", *schema.output_columns(False)]
    assert set(exc.partial.loc[exc.partial["hlr_source"] == "api", "hlr_number"]) == paid
    assert exc.report.stopped == "InsufficientBalanceError"
    assert (exc.report.looked_up, exc.report.not_looked_up) == (20, 10)
    # the independent truth: the re-run after a top-up sends exactly .remaining numbers
    server.configure(balance=None)
    server.reset_stats()
    frame.hlr.validate("phone", client=client, **opts)
    assert len(server.stats().received) == exc.remaining
    assert set(server.stats().received) == (set(NUMBERS) - paid) | temporary


def test_401_stops_the_run_with_partial_and_report(sb: Any, client_for: Any) -> None:
    client = pd_hlr.HLRClient(token="wrong-token", base_url=sb.url)
    with pytest.raises(pd_hlr.AuthenticationError) as info:
        _frame().hlr.validate("phone", default_region="GB", client=client, cache=False)
    exc = info.value
    assert exc.looked_up == 0 and exc.remaining == 30
    assert exc.report.stopped == "AuthenticationError" and exc.report.looked_up == 0
    assert exc.partial["hlr_source"].isin(["error", "missing", "invalid"]).all()
    assert "wrong-token" not in str(exc) + " ".join(exc.__notes__) + str(exc.report)
    client.close()


def test_every_run_stopping_error_class_is_declared_so() -> None:
    stopping = {c.__name__ for c in _subclasses(HLRError) if c.stops_run}
    assert stopping >= {
        "AuthenticationError", "InsufficientBalanceError", "ServiceUnavailableError"
    }


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


# --- the caller's columns ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "theirs", ["to", "status", "live", "hlr_source", "hlr_error", "hlr_extra", "current_network"]
)
def test_a_column_named_like_a_result_is_refused_before_sending(
    sb: Any, client_for: Any, theirs: str
) -> None:
    df = pd.DataFrame({"phone": [NUMBERS[0]], theirs: ["mine, keep it"]})
    with pytest.raises(ColumnConflictError, match="prefix") as info:
        df.hlr.validate("phone", client=client_for(sb), cache=False)
    assert info.value.columns == [theirs]
    assert sb.stats().requests == 0
    out = df.hlr.validate("phone", client=client_for(sb), cache=False, prefix="hlr.")
    assert out[theirs].tolist() == ["mine, keep it"]


@pytest.mark.parametrize("phone", ["to", "hlr_number", "status"])
def test_the_phone_column_itself_named_like_a_result(sb: Any, client_for: Any, phone: str) -> None:
    df = pd.DataFrame({phone: [NUMBERS[0]]})
    with pytest.raises(ColumnConflictError, match="phone column"):
        df.hlr.validate(phone, client=client_for(sb), cache=False)
    assert sb.stats().requests == 0
    out = df.hlr.validate(phone, client=client_for(sb), cache=False, prefix="r_")
    assert out[phone].tolist() == [NUMBERS[0]] and out["r_hlr_number"].tolist() == [NUMBERS[0]]


def test_rerun_on_own_output_replaces_its_columns_with_a_warning(
    sb: Any, client_for: Any, tmp_path: Path
) -> None:
    client = client_for(sb)
    out = _frame().hlr.validate("phone", default_region="GB", client=client, cache=False)
    for frame in (out, out.copy(), out.head(3), out[out["hlr_source"] == "api"]):
        with pytest.warns(UserWarning, match="replacing existing result columns") as caught:
            again = frame.hlr.validate("phone", default_region="GB", client=client, cache=False)
        assert caught[0].filename == __file__
        assert list(again.columns) == list(out.columns)
    # a parquet round trip keeps the record (attrs), so the re-run is still recognised
    out.hlr.to_parquet(tmp_path / "o.parquet")
    back = pd.read_parquet(tmp_path / "o.parquet")
    with pytest.warns(UserWarning, match="replacing"):
        back.hlr.validate("phone", default_region="GB", client=client, cache=False)
    # summary → detailed under the same prefix: the summary-only columns go too
    with pytest.warns(UserWarning, match="replacing"):
        det = out.hlr.validate("phone", detailed=True, client=client, cache=False)
    assert list(det.columns) == ["name", "phone", *schema.output_columns(True)]


def test_a_frame_that_no_longer_matches_its_record_is_not_recognised(
    sb: Any, client_for: Any
) -> None:
    client = client_for(sb)
    out = pd.DataFrame({"phone": [NUMBERS[0]]}).hlr.validate("phone", client=client, cache=False)
    other = pd.DataFrame({"phone": [NUMBERS[1]]}).hlr.validate("phone", client=client, cache=False)
    edited = [
        out.drop(columns=["hlr_extra"]),  # a result column dropped
        out.assign(status=["my own status"]),  # overwritten with the caller's data (str dtype)
        out[["phone", "to"]],  # a subset
        pd.concat([out, other], ignore_index=True),  # two runs: pandas drops differing attrs
    ]
    for frame in edited:
        with pytest.raises(ColumnConflictError):
            frame.hlr.validate("phone", client=client, cache=False)
    assert sb.stats().requests == 2
    # rows of one run stay one run's output: recognised
    with pytest.warns(UserWarning, match="replacing"):
        pd.concat([out, out.assign(name="x")]).hlr.validate("phone", client=client, cache=False)


def test_runs_under_two_prefixes_stay_side_by_side_and_both_are_recognised(
    sb: Any, client_for: Any
) -> None:
    client = client_for(sb)
    df = pd.DataFrame({"phone": [NUMBERS[0]]})
    first = df.hlr.validate("phone", client=client, cache=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        both = first.hlr.validate("phone", detailed=True, client=client, cache=False, prefix="d_")
    d_cols = ["d_" + c for c in schema.output_columns(True)]
    assert list(both.columns) == list(first.columns) + d_cols
    with pytest.warns(UserWarning, match="replacing"):
        third = both.hlr.validate("phone", client=client, cache=False)  # replaces the first run
    assert list(third.columns) == ["phone", *d_cols, *schema.output_columns(False)]
    assert set(third.attrs["pd_hlr"]["columns"]) == set(third.columns) - {"phone"}


@settings(max_examples=30, deadline=None)
@given(
    theirs=st.lists(
        st.sampled_from(["to", "status", "live", "hlr_note", "notes", "x_to", "hlr_source"]),
        unique=True,
        max_size=4,
    ),
    prefix=st.sampled_from(["", "x_", "hlr."]),
)
def test_collisions_are_exactly_the_result_names(
    sandbox_server: Any, theirs: list[str], prefix: str
) -> None:
    """Raise iff a caller column equals a result column under the prefix; never overwrite."""
    df = pd.DataFrame({"phone": ["junk"], **{c: ["mine"] for c in theirs}})
    names = {prefix + c for c in schema.output_columns(False)}
    clash = [c for c in theirs if c in names]
    with pd_hlr.HLRClient(token=TOKEN, base_url=sandbox_server.url) as client:
        if clash:
            with pytest.raises(ColumnConflictError) as info:
                df.hlr.validate("phone", client=client, cache=False, prefix=prefix)
            assert sorted(info.value.columns) == sorted(clash)
        else:
            out = df.hlr.validate("phone", client=client, cache=False, prefix=prefix)
            assert all(out[c].tolist() == ["mine"] for c in theirs)


# --- warnings point at the caller -------------------------------------------------------------
def test_warnings_point_at_the_callers_line(sb: Any, client_for: Any) -> None:
    df = pd.DataFrame({"phone": [NUMBERS[0]]})
    with pytest.warns(UserWarning, match="rate_limit is ignored") as caught:
        df.hlr.validate("phone", client=client_for(sb), cache=False, rate_limit=5)
    assert [w.filename for w in caught] == [__file__]
    with pytest.warns(UserWarning, match="rate_limit is ignored") as caught:
        pd.DataFrame({"phone": ["junk"]}).hlr.validate(
            "phone", client=client_for(sb), cache=False, rate_limit=5
        )
    assert [w.filename for w in caught] == [__file__]


def test_ambiguous_cells_are_counted_never_sent_unless_the_user_chooses(
    sb: Any, client_for: Any, tmp_path: Path
) -> None:
    """Bare "2015550123" without a region reads as +1 201-555-0123 (US) or +20 15 550123 (EG):
    skipped by default (its own verdict, counted, never paid for); the option picks a reading."""
    frame = pd.DataFrame({"phone": ["2015550123", "2015550123", "+447400123456"]})
    client, cache = client_for(sb), tmp_path / "c"
    est = frame.hlr.estimate("phone", client=client, cache=cache)
    assert (est.ambiguous, est.distinct) == (2, 1)
    out = frame.hlr.validate("phone", client=client, cache=cache)
    assert out["hlr_source"].tolist()[:2] == ["ambiguous", "ambiguous"]
    assert out["hlr_error"][0] == (
        "ambiguous: +1 201-555-0123 (national US), +52 201 555 0123 (national MX), "
        "+20 15 550123 (international) or 1 more reading"
    )
    assert out.hlr.report().ambiguous == 2 and "2 ambiguous" in str(out.hlr.report())
    assert set(sb.stats().received) == {"+447400123456"}
    intl = frame.hlr.validate("phone", client=client, cache=cache, ambiguous="international")
    assert intl["hlr_number"].tolist()[:2] == ["+2015550123", "+2015550123"]
    national = frame.hlr.validate(
        "phone", client=client, cache=cache, ambiguous="national", default_region="US"
    )
    assert national["hlr_number"].tolist()[:2] == ["+12015550123", "+12015550123"]
    assert sb.stats().charged == {"+447400123456": 1, "+2015550123": 1, "+12015550123": 1}


def test_the_run_record_holds_every_option(sb: Any, client_for: Any, tmp_path: Path) -> None:
    """What a result (and its parquet file) says about the run names every option's value,
    so it cannot drift when an option is added."""
    from pd_hlr.settings import OPTIONS, RUN_OBJECTS

    frame = pd.DataFrame({"phone": ["2015550123", "+447400123456"]})
    out = frame.hlr.validate(
        "phone", client=client_for(sb), cache=tmp_path / "c", ambiguous="international"
    )
    record = out.attrs["pd_hlr"]
    assert {o.name for o in OPTIONS} - set(RUN_OBJECTS) <= set(record)
    assert (record["ambiguous"], record["default_region"], record["price"]) == (
        "international", None, "0.006"
    )


@pytest.mark.parametrize("rows", [3, 400])  # a partition against a big table; one big frame
def test_join_gives_each_row_its_numbers_answer_whatever_the_sizes(
    rows: int, sb: Any, client_for: Any, tmp_path: Path
) -> None:
    from pd_hlr import pipeline
    from pd_hlr.normalize import normalize
    from pd_hlr.settings import ValidateSettings

    numbers = [f"+4474007{i:05d}" for i in range(60)]
    settings = ValidateSettings.from_kwargs(detailed=True)
    pd.DataFrame({"phone": numbers}).hlr.validate(
        "phone", client=client_for(sb), cache=tmp_path / "c", detailed=True
    )
    resolved = pipeline.cached_numbers(
        numbers, settings, pd_hlr.HLRCache(tmp_path / "c"), "127.0.0.1"
    )
    served = list(resolved.index)  # temporary answers are not served: they are looked up again
    assert len(served) > 50
    picked = [served[(7 * i) % len(served)] for i in range(rows)] + ["not a number", None]
    out = pipeline.join_results(normalize(pd.Series(picked)), resolved, detailed=True)
    expected = resolved.reindex(picked[:rows])
    for col in ("to", "status_name", "error_id", "ported", "hlr_checked_at"):
        assert out[col].iloc[:rows].tolist() == expected[col].tolist(), col
    assert out["hlr_source"].tolist() == ["cache"] * rows + ["invalid", "missing"]
    assert out["to"].iloc[rows:].isna().all()


# --- the frame path works per distinct cell ------------------------------------------------------
def test_categorical_rows_pay_for_used_categories_only(
    sb: Any, client_for: Any, tmp_path: Path
) -> None:
    used = ["+447400123456", "+447400123457"]
    unused = ["+447400123458", "+12015550123"]  # valid numbers no row holds
    cells = pd.Categorical([used[1], None, used[0], used[1]], categories=[*unused, *used])
    frame = pd.DataFrame({"phone": cells}, index=[7, 3, 5, 1])
    client = client_for(sb)
    est = frame.hlr.estimate("phone", client=client, cache=tmp_path / "c")
    assert (est.rows, est.missing, est.distinct) == (4, 1, 2)
    out = frame.hlr.validate("phone", client=client, cache=tmp_path / "c")
    assert sorted(sb.stats().charged) == sorted(used)
    assert out.index.tolist() == [7, 3, 5, 1]
    assert out["hlr_number"].tolist() == [used[1], pd.NA, used[0], used[1]]
    assert out["hlr_source"].tolist() == ["api", "missing", "api", "api"]
    assert out.hlr.report().looked_up == 2
