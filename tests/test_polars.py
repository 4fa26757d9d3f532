"""The Polars face against the sandbox over real HTTP: the pandas face's output, value for value,
through Arrow; the sandbox's ledger for what was paid; parquet schemas from pyarrow."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pl = pytest.importorskip("polars")

import pd_hlr  # noqa: E402
import pd_hlr.polars as hlr_polars  # noqa: E402
from pd_hlr import HLRCache, schema  # noqa: E402
from pd_hlr.errors import BudgetExceededError, ColumnConflictError  # noqa: E402

from .conftest import TOKEN  # noqa: E402

GB = [f"+447400123{i:03d}" for i in range(40)]
US = "+12015550123"
# One number in several shapes: every shape must map to one lookup.
SHAPES: list[Callable[[str], str]] = [
    lambda n: n,
    lambda n: f"{n[:3]} {n[3:7]} {n[7:]}",
    lambda n: f"00{n[1:3]}-{n[3:7]}-{n[7:]}",
    lambda n: f"0{n[3:7]} {n[7:]}",  # GB national format
]
JUNK = ["not a number", "n/a", "12345", "*123#", "call me"]
# Summary answers that are neither live, dead nor out of network are "temporary" and looked up
# again by default; tests that count requests serve them from the cache like any other.
GB_OPTS: dict[str, Any] = {"default_region": "GB", "retry_temporary": False}
# The Polars types for the schema's kinds (independent of pd_hlr.polars).
POLARS_KIND = {
    "string": pl.String,
    "bool": pl.Boolean,
    "int": pl.Int64,
    "timestamp": pl.Datetime("us", "UTC"),
}


def _cells() -> list[Any]:
    cells: list[Any] = [SHAPES[i % len(SHAPES)](GB[(i * 7) % len(GB)]) for i in range(120)]
    return [*cells, "+1 201 555 0123", None, "", "  ", *JUNK]


DISTINCT = {*GB, US}


def _frame() -> Any:
    cells = _cells()
    return pl.DataFrame(
        {"row": range(len(cells)), "phone": cells, "spend": [i * 0.5 for i in range(len(cells))]}
    )


def _results(detailed: bool = False, prefix: str = "") -> list[str]:
    return [prefix + c for c in schema.output_columns(detailed)]


def _arrow(out: Any, columns: list[str]) -> pa.Table:
    """The Polars result columns as Arrow (Polars' own export)."""
    frame = out.collect() if isinstance(out, pl.LazyFrame) else out
    return frame.select(columns).to_arrow()


def _pandas_arrow(ref: pd.DataFrame, columns: list[str]) -> pa.Table:
    return pa.Table.from_pandas(ref[columns], preserve_index=False)


def _assert_same(out: Any, ref: pd.DataFrame, columns: list[str]) -> None:
    got, expected = _arrow(out, columns), _pandas_arrow(ref, columns)
    assert got.schema == expected.schema.remove_metadata()
    if not got.equals(expected):  # show the first difference
        for c in columns:
            assert got.column(c).to_pylist() == expected.column(c).to_pylist(), c
    assert got.equals(expected)


@pytest.fixture
def client(sb: Any, client_for: Any) -> Any:
    return client_for(sb)


# --- the pandas face's output, value for value -------------------------------------------------
@pytest.mark.parametrize("lazy", [False, True], ids=["DataFrame", "LazyFrame"])
def test_output_equals_pandas_value_for_value_and_second_run_is_free(
    sb: Any, client: Any, tmp_path: Path, lazy: bool
) -> None:
    frame, cache = _frame(), tmp_path / "cache"
    before = frame.clone()
    ref = frame.to_pandas().hlr.validate("phone", **GB_OPTS, client=client, cache=cache)
    assert sb.stats().received == dict.fromkeys(DISTINCT, 1)
    sb.reset_stats()

    obj = frame.lazy() if lazy else frame
    out = obj.hlr.validate("phone", **GB_OPTS, client=client, cache=cache)
    assert sb.stats().requests == 0  # everything from the cache
    assert isinstance(out, pl.LazyFrame if lazy else pl.DataFrame)
    got = out.collect() if lazy else out
    assert frame.equals(before)  # the caller's frame is untouched
    assert got.columns == [*frame.columns, *_results()]
    assert got.select(frame.columns).equals(frame)  # their columns untouched, in order
    for f in schema.fields(False):
        assert got.schema[f.column] == POLARS_KIND[f.kind], f.column
    expected = ref.assign(hlr_source=ref["hlr_source"].replace("api", "cache"))
    _assert_same(got, expected, _results())  # checked_at included: served from the cache


@pytest.mark.parametrize("lazy", [False, True], ids=["DataFrame", "LazyFrame"])
def test_cold_run_looks_each_number_up_once_and_matches_pandas(
    sb: Any, client_for: Any, tmp_path: Path, lazy: bool
) -> None:
    frame = _frame()
    obj = frame.lazy() if lazy else frame
    out = obj.hlr.validate("phone", **GB_OPTS, client=client_for(sb), cache=tmp_path / "c")
    assert sb.stats().received == dict.fromkeys(DISTINCT, 1)
    report = out.hlr.report()  # a LazyFrame's too, before anything is collected
    assert (report.rows, report.distinct, report.looked_up, report.cached) == (129, 41, 41, 0)
    assert report.requests == sb.stats().requests and report.sandbox
    assert (report.missing, report.invalid) == (4, 4)  # "n/a" is a missing cell
    sb.reset_stats()
    ref = frame.to_pandas().hlr.validate(
        "phone", **GB_OPTS, client=client_for(sb), cache=tmp_path / "c"
    )
    assert sb.stats().requests == 0
    _assert_same(out, ref.assign(hlr_source=ref["hlr_source"].replace("cache", "api")), _results())
    sb.reset_stats()
    again = obj.hlr.validate("phone", **GB_OPTS, client=client_for(sb), cache=tmp_path / "c")
    assert sb.stats().requests == 0
    assert again.hlr.report().cached == 41


def test_detailed_with_prefix_equals_pandas(sb: Any, client: Any) -> None:
    frame = _frame()
    opts = {"detailed": True, "roaming": True, "route": "detailed", "prefix": "x_", **GB_OPTS}
    out = frame.hlr.validate("phone", client=client, cache=False, **opts)
    ref = frame.to_pandas().hlr.validate("phone", client=client, cache=False, **opts)
    assert out.columns == [*frame.columns, *_results(True, "x_")]
    for f in schema.fields(True):
        assert out.schema["x_" + f.column] == POLARS_KIND[f.kind], f.column
    columns = [c for c in _results(True, "x_") if c != "x_hlr_checked_at"]
    _assert_same(out, ref, columns)
    assert out["x_hlr_checked_at"].is_null().to_list() == ref["x_hlr_checked_at"].isna().tolist()
    assert out.hlr.report().looked_up == len(DISTINCT)
    # the detailed mode's row status and summary read other columns: the same as pandas too
    for by in (None, "country", "status"):
        pd.testing.assert_frame_equal(out.hlr.summary(by=by), ref.hlr.summary(by=by))
    assert out.hlr.status().to_list() == ref.hlr.status().astype(str).tolist()
    assert {"live", "dead", "invalid"} <= set(out.hlr.status().to_list())


# --- non-string columns and null cells get the pandas verdicts ---------------------------------
INTS = [447400123456, 7400123457, 4474001234, 12015550123, 0, -5, 10**17 + 3, 441302778473, 99]
FLOATS = [*(float(i) for i in INTS[:6]), 4.5, float("nan"), float("inf"), 4.41302778473e11]
VERDICT = ["hlr_number", "hlr_region", "hlr_number_type", "hlr_source", "hlr_error", "hlr_note"]


@pytest.fixture(scope="module")
def shared_client(sandbox_server: Any) -> Iterator[Any]:
    with pd_hlr.HLRClient(token=TOKEN, base_url=sandbox_server.url) as c:
        yield c


def _polars_and_pandas(kind: str, cells: list[Any]) -> tuple[Any, pd.DataFrame]:
    if kind == "int":
        return pl.DataFrame({"phone": pl.Series(cells, dtype=pl.Int64)}), pd.DataFrame(
            {"phone": pd.array(cells, dtype="Int64")}
        )
    if kind == "float":
        series = pl.Series(cells, dtype=pl.Float64)  # NaN and null both
        return pl.DataFrame({"phone": series}), pd.DataFrame(
            {"phone": pd.Series([float("nan") if c is None else c for c in cells], dtype=float)}
        )
    if kind == "str":
        texts = [None if c is None else str(c) for c in cells]
        return pl.DataFrame({"phone": texts}, schema={"phone": pl.String}), pd.DataFrame(
            {"phone": pd.Series(texts, dtype="str")}
        )
    assert kind == "category"
    texts = [None if c is None else str(c) for c in cells]
    return pl.DataFrame({"phone": pl.Series(texts, dtype=pl.Categorical)}), pd.DataFrame(
        {"phone": pd.Series(texts, dtype="category")}
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["int", "float", "str", "category"]),
    cells=st.lists(st.one_of(st.none(), st.sampled_from(INTS)), max_size=10),
    floats=st.lists(st.one_of(st.none(), st.sampled_from(FLOATS)), max_size=6),
    lazy=st.booleans(),
)
def test_non_string_columns_and_nulls_get_the_pandas_verdicts(
    shared_client: Any, kind: str, cells: list[Any], floats: list[Any], lazy: bool
) -> None:
    cells = [*cells, *floats] if kind == "float" else cells
    frame, pdf = _polars_and_pandas(kind, cells)
    obj = frame.lazy() if lazy else frame
    out = obj.hlr.validate("phone", default_region="GB", client=shared_client, cache=False)
    ref = pdf.hlr.validate("phone", default_region="GB", client=shared_client, cache=False)
    _assert_same(out, ref, [*VERDICT, "to", "live"])


@pytest.mark.parametrize("kind", ["int without nulls", "bool", "null", "decimal"])
def test_other_column_types_get_the_pandas_verdicts(client: Any, kind: str) -> None:
    if kind == "decimal":
        cells = [Decimal("447400123456.0"), None, Decimal("1.5"), Decimal("7400123457")]
        frame = pl.DataFrame({"phone": pl.Series(cells, dtype=pl.Decimal(20, 1))})
        pdf = pd.DataFrame({"phone": cells})
    elif kind == "int without nulls":
        frame = pl.DataFrame({"phone": [447400123456, 7400123457, -1]})
        pdf = frame.to_pandas()
        assert str(pdf["phone"].dtype) == "int64"
    elif kind == "bool":
        frame = pl.DataFrame({"phone": [True, None, False]})
        pdf = pd.DataFrame({"phone": [True, None, False]})
    else:
        frame = pl.DataFrame({"phone": [None, None]})
        assert frame.schema["phone"] == pl.Null
        pdf = pd.DataFrame({"phone": [None, None]})
    out = frame.hlr.validate("phone", default_region="GB", client=client, cache=False)
    ref = pdf.hlr.validate("phone", default_region="GB", client=client, cache=False)
    _assert_same(out, ref, VERDICT)


def test_dates_and_lists_are_refused_before_anything_is_sent(sb: Any, client: Any) -> None:
    frame = pl.DataFrame({"d": [datetime.date(2024, 1, 1)], "l": [[1, 2]]})
    for col in ("d", "l"):
        with pytest.raises(TypeError, match="not phone numbers"):
            frame.hlr.validate(col, client=client, cache=False)
    assert sb.stats().requests == 0


# --- lazy: scan → validate → sink, row order, larger inputs ---------------------------------------
def _write_parts(folder: Path, frame: Any, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-frame.height // n)
    for i in range(n):
        frame.slice(i * size, size).write_parquet(folder / f"part-{i:02d}.parquet")
    return folder


def test_scan_validate_sink_keeps_row_order_and_writes_the_record(
    sb: Any, client: Any, tmp_path: Path
) -> None:
    # 60,000 rows in 6 files: the join must keep the input's order, across files and batches
    cells = [SHAPES[i % 4](GB[(i * 13) % 40]) if i % 97 else None for i in range(60_000)]
    frame = pl.DataFrame({"row": range(len(cells)), "phone": cells})
    folder = _write_parts(tmp_path / "calls", frame, 6)
    lf = pl.scan_parquet(folder / "*.parquet")
    out = lf.hlr.validate("phone", **GB_OPTS, client=client, cache=tmp_path / "c")
    assert sb.stats().received == dict.fromkeys(GB, 1)
    target = tmp_path / "enriched.parquet"
    out.hlr.sink_parquet(target)
    assert sb.stats().requests == len(GB)  # writing sends nothing
    got = pl.read_parquet(target)
    assert got["row"].to_list() == list(range(len(cells)))
    expected = [None if c is None else GB[(i * 13) % 40] for i, c in enumerate(cells)]
    assert got["hlr_number"].to_list() == expected
    assert got.equals(out.collect(engine="streaming"))
    info = json.loads(pq.read_metadata(target).metadata[b"pd_hlr"])
    assert info["report"] == out.hlr.report().to_dict() and info["column"] == "phone"
    assert info["report"]["rows"] == 60_000 and info["report"]["missing"] == len(cells) // 97 + 1


def test_a_cell_added_after_validate_is_an_error_row_not_a_lookup(
    sb: Any, client: Any, tmp_path: Path
) -> None:
    path = tmp_path / "in.csv"
    pl.DataFrame({"phone": [GB[0], "junk"]}).write_csv(path)
    out = pl.scan_csv(path).hlr.validate("phone", client=client, cache=False)
    pl.DataFrame({"phone": [GB[0], "junk", GB[1]]}).write_csv(path)  # the input changed
    got = out.collect()
    assert got["hlr_source"].to_list() == ["api", "invalid", "error"]
    assert got["hlr_error"][2] == hlr_polars.CHANGED_INPUT
    assert sb.stats().requests == 1


@pytest.mark.parametrize("kind", ["str", "int"])
def test_rows_changed_after_validate_are_error_rows_and_the_rest_keep_their_line(
    sb: Any, client: Any, tmp_path: Path, kind: str
) -> None:
    # Rows find their cell's line by a join on the cell (nulls equal): a value or a null that
    # was not there when validate() scanned is changed input, for strings as for integers.
    first, second = (GB[0], GB[1]) if kind == "str" else (int(GB[0][1:]), 12)
    path = tmp_path / "in.csv"
    path.write_text(f"row,phone\n0,{first}\n1,{second}\n")
    out = pl.scan_csv(path).hlr.validate("phone", client=client, cache=False)
    path.write_text(f"row,phone\n0,{second}\n1,{first}\n2,\n3,{'+999' if kind == 'str' else 99}\n")
    got = out.collect()
    assert got["row"].to_list() == [0, 1, 2, 3] and got["phone"].null_count() == 1
    before = {"str": ["api", "api"], "int": ["invalid", "api"]}[kind]  # 12 is not a number
    assert got["hlr_source"].to_list() == [*before, "error", "error"]
    assert got["hlr_error"].to_list()[2:] == [hlr_polars.CHANGED_INPUT] * 2
    assert got["hlr_number"].to_list()[:2] == ([GB[1], GB[0]] if kind == "str" else [None, GB[0]])
    assert sb.stats().requests == len(before) - before.count("invalid")


# --- a run that stops, budget, estimate --------------------------------------------------------
def test_budget_refuses_before_sending_and_estimate_is_the_pandas_one(
    sb: Any, client: Any, tmp_path: Path
) -> None:
    frame, cache = _frame(), tmp_path / "c"
    for obj in (frame, frame.lazy()):
        est = obj.hlr.estimate("phone", **GB_OPTS, client=client, cache=cache)
        assert est == frame.to_pandas().hlr.estimate("phone", **GB_OPTS, client=client, cache=cache)
        assert (est.rows, est.distinct, est.to_look_up) == (129, 41, 41)
        with pytest.raises(BudgetExceededError, match="needs 41 paid lookups") as info:
            obj.hlr.validate("phone", **GB_OPTS, client=client, cache=cache, budget=40)
        assert info.value.estimate == est
    assert sb.stats().requests == 0
    res = frame["phone"].hlr.estimate(**GB_OPTS, client=client, cache=cache)
    assert res == est


# --- empty, all-null, junk-only: no client is ever made ------------------------------------------
# --- Series, column names ----------------------------------------------------------------------
def test_series_gives_the_result_columns_only(sb: Any, client: Any) -> None:
    s = pl.Series("tel", ["+44 7400 123000", None, "07400 123000", "junk"])
    res = s.hlr.validate(default_region="GB", client=client, cache=False, prefix="x_")
    assert sb.stats().received == {GB[0]: 1}
    assert isinstance(res, pl.DataFrame) and res.columns == _results(prefix="x_")
    ref = s.to_pandas().hlr.validate(default_region="GB", client=client, cache=False, prefix="x_")
    _assert_same(res, ref, [c for c in _results(prefix="x_") if c != "x_hlr_checked_at"])
    report = res.hlr.report()
    assert (report.rows, report.distinct, report.looked_up) == (4, 1, 1)
    assert "Polars Series (4)" in repr(s.hlr)


def test_integer_and_string_column_names(sb: Any, client: Any) -> None:
    pdf = pd.DataFrame({0: ["+44 7400 123000", "junk", None], 1: ["a", "b", "c"]})
    frame = pl.from_pandas(pdf)
    assert frame.columns == ["0", "1"]  # Polars names are strings
    by_int = frame.hlr.validate(0, client=client, cache=False)
    by_str = frame.hlr.validate("0", client=client, cache=False)
    ref = pdf.hlr.validate(0, client=client, cache=False)
    columns = [c for c in _results() if c != "hlr_checked_at"]
    _assert_same(by_int, ref, columns)
    _assert_same(by_str, ref, columns)
    assert by_int.columns == ["0", "1", *_results()]
    assert json.loads(json.dumps(by_int.hlr.report().to_dict()))["rows"] == 3
    with pytest.raises(KeyError, match=r"no column 5 .*names are strings.*'0', '1'"):
        frame.hlr.validate(5, client=client)
    with pytest.raises(KeyError, match="no column 'phon' in the frame; available"):
        frame.lazy().hlr.estimate("phon")
    for bad in (True, 1.0, ("0",), ["0"]):
        with pytest.raises(TypeError, match="column must be a column name"):
            frame.hlr.validate(bad, client=client)
    with pytest.raises(TypeError, match="did you mean 'detailed'"):
        frame.hlr.validate("0", detaild=True)
    assert sb.stats().received == {GB[0]: 3}


# --- column conflicts (the shared cases are in tests/face_suite.py) ----------------------------
@pytest.mark.parametrize("lazy", [False, True], ids=["DataFrame", "LazyFrame"])
def test_reruns_are_recognised_only_by_the_returned_object(
    sb: Any, client: Any, lazy: bool
) -> None:
    """Polars frames carry no metadata: the run's record is the returned object's."""
    frame = _frame()
    obj = frame.lazy() if lazy else frame
    out = obj.hlr.validate("phone", **GB_OPTS, client=client, cache=False, prefix="r_")
    # a second run under another prefix: both runs' columns stay, both recognised
    both = out.hlr.validate("phone", **GB_OPTS, client=client, cache=False, prefix="s_")
    assert set(json.loads(json.dumps(hlr_polars._record_of(both)))["columns"]) == {
        *_results(prefix="r_"),
        *_results(prefix="s_"),
    }
    # a frame derived from the result carries no record: its columns are the caller's now
    derived = out.filter(pl.col("row") >= 0)
    with pytest.raises(ColumnConflictError):
        derived.hlr.validate("phone", client=client, cache=False, prefix="r_")
    with pytest.raises(AttributeError, match="no metadata"):
        derived.hlr.report()


# --- report, summary, status, progress -----------------------------------------------------------
def test_report_summary_and_status_are_the_pandas_ones(
    sb: Any, client_for: Any, tmp_path: Path
) -> None:
    frame, cache = _frame(), tmp_path / "c"
    out = frame.lazy().hlr.validate("phone", **GB_OPTS, client=client_for(sb), cache=cache)
    ref = frame.to_pandas().hlr.validate("phone", **GB_OPTS, client=client_for(sb), cache=cache)
    ref = ref.assign(hlr_source=ref["hlr_source"].replace("cache", "api"))
    report = out.hlr.report()
    assert report.looked_up == sum(sb.stats().charged.values()) == len(DISTINCT)
    collected = out.hlr.collect()
    assert collected.hlr.report() == report
    with pytest.raises(AttributeError, match="no metadata"):
        out.collect().hlr.report()
    for by in (None, "country", "status"):
        expected = ref.hlr.summary(by=by)
        pd.testing.assert_frame_equal(out.hlr.summary(by=by), expected)
        pd.testing.assert_frame_equal(collected.hlr.summary(by=by), expected)
    # any frame with result columns: here, read back from a file without the record
    plain = tmp_path / "plain.parquet"
    out.sink_parquet(plain)
    pd.testing.assert_frame_equal(pl.read_parquet(plain).hlr.summary(), ref.hlr.summary())
    status = collected.hlr.status()
    assert status.dtype == pl.Enum(list(pd_hlr.analysis.STATUS_ORDER))
    assert status.to_list() == ref.hlr.status().astype(str).tolist()
    assert collected.hlr.live()["row"].to_list() == ref.hlr.live()["row"].tolist()
    assert collected.hlr.invalid()["row"].to_list() == ref.hlr.invalid()["row"].tolist()
    assert collected.hlr.dead()["row"].to_list() == ref.hlr.dead()["row"].tolist()
    titles = [ax.get_title() for ax in collected.hlr.plot().axes]
    assert titles == [ax.get_title() for ax in ref.hlr.plot().axes]
    assert "Polars DataFrame (129 × 3)" in repr(frame.hlr) and "report()" in repr(out.hlr)


def test_progress_bar_counts_lookups_on_stderr(sb: Any, client: Any, capsys: Any) -> None:
    frame = pl.DataFrame({"phone": [GB[0], US, "junk", GB[0]]})
    frame.hlr.validate("phone", client=client, cache=False, progress=True)
    err = capsys.readouterr().err
    assert "HLR lookups: 100%" in err and "2/2" in err and "spend ≈ 0.012" in err
    frame.lazy().hlr.validate("phone", client=client, cache=False, progress=False)
    assert capsys.readouterr().err == ""


# --- parquet: the same schema from pandas and from Polars ---------------------------------------
@pytest.mark.parametrize("detailed", [False, True], ids=["summary", "detailed"])
def test_parquet_round_trip_schema_is_the_same_from_pandas_and_polars(
    client: Any, tmp_path: Path, detailed: bool
) -> None:
    frame = _frame()
    opts = {"detailed": detailed, "client": client, "cache": tmp_path / "c", **GB_OPTS}
    ref = frame.to_pandas().hlr.validate("phone", **opts)
    ref.hlr.to_parquet(tmp_path / "pandas.parquet")
    out = frame.hlr.validate("phone", **opts)
    lazy = frame.lazy().hlr.validate("phone", **opts)
    out.write_parquet(tmp_path / "write.parquet")
    out.hlr.write_parquet(tmp_path / "hlr.parquet")
    lazy.sink_parquet(tmp_path / "sink.parquet")
    lazy.hlr.sink_parquet(tmp_path / "hlr-sink.parquet")
    columns = _results(detailed)
    expected = pq.read_schema(tmp_path / "pandas.parquet")
    assert [expected.field(c) for c in columns] == list(schema.arrow_schema(detailed))
    for name in ("write", "hlr", "sink", "hlr-sink"):
        got = pq.read_schema(tmp_path / f"{name}.parquet")
        assert [got.field(c) for c in columns] == [expected.field(c) for c in columns], name
        back = pl.read_parquet(tmp_path / f"{name}.parquet")
        assert back.schema == out.schema and back.equals(out), name
    for name, obj in (("hlr", out), ("hlr-sink", lazy), ("pandas", ref)):
        info = json.loads(pq.read_metadata(tmp_path / f"{name}.parquet").metadata[b"pd_hlr"])
        assert info["report"] == obj.hlr.report().to_dict() and info["detailed"] is detailed
    assert not list(tmp_path.glob(".*.tmp"))  # written to a temp name, then renamed


# --- imports -------------------------------------------------------------------------------------
def test_import_pd_hlr_does_not_import_polars_and_missing_polars_names_the_extra() -> None:
    code = (
        "import sys, pd_hlr\n"
        "assert 'polars' not in sys.modules\n"
        "sys.modules['polars'] = None\n"
        "try:\n"
        "    import pd_hlr.polars\n"
        "except ImportError as e:\n"
        "    assert \"pip install 'pd-hlr[polars]'\" in str(e), e\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_cache_only_ever_holds_what_was_paid(client: Any, tmp_path: Path) -> None:
    frame = _frame()
    frame.lazy().hlr.validate("phone", **GB_OPTS, client=client, cache=tmp_path / "c")
    assert set(HLRCache(tmp_path / "c").to_frame()["number"]) == DISTINCT


def test_batches_of_cells_give_the_same_output(
    monkeypatch: pytest.MonkeyPatch, client: Any, tmp_path: Path
) -> None:
    """Normalising, building the per-cell table and summarising go in batches; the batch size
    changes nothing."""
    frame, cache = _frame(), tmp_path / "c"
    frame.hlr.validate("phone", **GB_OPTS, client=client, cache=cache)  # fill the cache
    whole = frame.lazy().hlr.validate("phone", **GB_OPTS, client=client, cache=cache)
    monkeypatch.setattr(hlr_polars, "_BATCH_ROWS", 7)
    batched = frame.lazy().hlr.validate("phone", **GB_OPTS, client=client, cache=cache)
    assert batched.collect().equals(whole.collect())
    assert batched.hlr.report().rows == whole.hlr.report().rows == frame.height
    pd.testing.assert_frame_equal(batched.hlr.summary(), whole.hlr.summary())
    assert batched.hlr.collect().hlr.status().equals(whole.hlr.collect().hlr.status())


def test_caller_columns_named_like_the_faces_own_work_columns_are_kept(client: Any) -> None:
    frame = pl.DataFrame(
        {"__pd_hlr_key__": ["k1", "k2"], "phone": [GB[0], None], "__pd_hlr_pos__": [7, 8]}
    )
    for obj in (frame, frame.lazy()):
        out = obj.hlr.validate("phone", client=client, cache=False)
        got = out.collect() if isinstance(out, pl.LazyFrame) else out
        assert got.select(frame.columns).equals(frame)
        assert got["hlr_source"].to_list() == ["api", "missing"]


@pytest.mark.parametrize("ambiguous", ["skip", "international"])
def test_ambiguous_cells_count_per_row_as_in_pandas(
    sb: Any, client: Any, ambiguous: str
) -> None:
    """Bare 2015550123 reads as +1 201-555-0123 or +20 15 550123: the option decides, and the
    report counts rows (three here, one distinct cell per type), as the pandas face does."""
    for cells in (["2015550123", "2015550123", GB[0], "2015550123"], [2015550123] * 3 + [None]):
        frame = pl.DataFrame({"phone": cells})
        for obj in (frame, frame.lazy()):
            out = obj.hlr.validate("phone", client=client, cache=False, ambiguous=ambiguous)
            ref = frame.to_pandas().hlr.validate(
                "phone", client=client, cache=False, ambiguous=ambiguous
            )
            _assert_same(out, ref, VERDICT)
            assert out.hlr.report().ambiguous == ref.hlr.report().ambiguous
            est = obj.hlr.estimate("phone", client=client, cache=False, ambiguous=ambiguous)
            assert est == frame.to_pandas().hlr.estimate(
                "phone", client=client, cache=False, ambiguous=ambiguous
            )
    assert out.hlr.report().ambiguous == (3 if ambiguous == "skip" else 0)
