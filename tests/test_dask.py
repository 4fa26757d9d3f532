"""The Dask face against the sandbox, on a 2-process ``distributed.LocalCluster``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
import dask.dataframe as dd  # noqa: E402

import pd_hlr  # noqa: E402
import pd_hlr.dask as hlr_dask  # noqa: E402
from pd_hlr import HLRCache, analysis, pipeline, schema  # noqa: E402
from pd_hlr.cli import SANDBOX_TOKEN, main  # noqa: E402
from pd_hlr.settings import ValidateSettings  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    # dask's own parquet reader on pandas 3.1 (not ours)
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index"),
]

GB = [f"+447400123{i:03d}" for i in range(40)]
# One number in several shapes: every shape must map to one lookup, wherever it appears.
SHAPES = [
    lambda n: n,
    lambda n: f"{n[:3]} {n[3:7]} {n[7:]}",
    lambda n: f"00{n[1:3]}-{n[3:7]}-{n[7:]}",
    lambda n: f"0{n[3:7]} {n[7:]}",  # GB national format
]
# Summary answers that are neither live, dead nor out of network are "temporary" and looked up
# again by default; the tests that count requests serve them from the cache like any other.
GB_OPTS: dict[str, Any] = {"default_region": "GB", "retry_temporary": False}
JUNK = ["not a number", "n/a", "12345", "*123#", "call me"]
SCHEMA = pa.schema([("row", pa.int64()), ("phone", pa.large_string()), ("spend", pa.float64())])


def _partition(start: int, phones: list[Any]) -> pa.Table:
    rows = list(range(start, start + len(phones)))
    return pa.table({"row": rows, "phone": phones, "spend": [r * 0.5 for r in rows]}, schema=SCHEMA)


def _write_dataset(folder: Path) -> Path:
    """Six files = six partitions: overlapping numbers, an empty one, an all-null one, junk."""
    folder.mkdir(parents=True, exist_ok=True)
    parts: list[list[Any]] = []
    for p in range(3):
        cells: list[Any] = []
        for i in range(30):
            n = GB[(i * 7 + p * 11) % len(GB)]  # the same numbers recur in every partition
            cells.append(SHAPES[(i + p) % len(SHAPES)](n))
        cells += ["+1 201 555 0123", None, "", JUNK[p]]
        parts.append(cells)
    parts.insert(1, [])  # an empty partition
    parts.insert(3, [None, None, None])  # an all-null partition
    parts.append(JUNK * 2)  # a partition of only junk
    start = 0
    for i, cells in enumerate(parts):
        pq.write_table(_partition(start, cells), folder / f"part-{i:02d}.parquet")
        start += len(cells)
    return folder


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return _write_dataset(tmp_path / "calls")


def _read(folder: Path) -> dd.DataFrame:
    ddf = dd.read_parquet(folder, index="row")
    assert ddf.npartitions == 6
    return ddf


def _distinct(ddf: dd.DataFrame) -> set[str]:
    settings = ValidateSettings.from_kwargs(default_region="GB")
    norm = pipeline.normalize_column(ddf.compute()["phone"], settings)
    return set(pipeline.distinct_numbers(norm))


def test_output_equals_pandas_accessor_then_second_run_is_free(
    dask_client, dataset, sb, client_for, tmp_path
):
    ddf = _read(dataset)
    pdf = ddf.compute()
    cache = tmp_path / "cache"
    client = client_for(sb)
    ref = pdf.hlr.validate("phone", **GB_OPTS, client=client, cache=cache)
    assert sb.stats().total_charged == len(_distinct(ddf))
    sb.reset_stats()

    out = ddf.hlr.validate("phone", **GB_OPTS, client=client, cache=cache)
    assert sb.stats().requests == 0  # everything from the cache
    assert isinstance(out, dd.DataFrame)
    got = out.compute()
    # meta is the pandas accessor's output: same columns, order, dtypes
    assert list(out.columns) == list(ref.columns)
    assert out._meta.dtypes.equals(ref.dtypes)
    expected = ref.copy()
    expected["hlr_source"] = expected["hlr_source"].replace("api", "cache")
    pd.testing.assert_frame_equal(got, expected)  # values, dtypes, index, checked_at
    assert got.attrs["pd_hlr"]["default_region"] == "GB"
    # the partitions keep their shape: empty stays empty, null stays missing, junk invalid
    sizes = out.map_partitions(len).compute().tolist()
    assert sizes == [34, 0, 34, 3, 34, 10]
    assert (out.get_partition(3).compute()["hlr_source"] == "missing").all()
    junk = out.get_partition(5).compute()
    assert set(junk["hlr_source"]) == {"invalid", "missing"}  # "n/a" counts as missing
    assert junk["hlr_number"].isna().all()


def test_cold_run_looks_each_number_up_once_across_partitions(
    dask_client, dataset, sb, client_for, tmp_path
):
    ddf = _read(dataset)
    distinct = _distinct(ddf)
    out = ddf.hlr.validate("phone", **GB_OPTS, client=client_for(sb), cache=tmp_path / "c")
    stats = sb.stats()
    assert stats.received == dict.fromkeys(distinct, 1)
    got = out.compute()
    ref = ddf.compute().hlr.validate(
        "phone", **GB_OPTS, client=client_for(sb), cache=tmp_path / "c"
    )
    assert got["hlr_source"].tolist() == ref["hlr_source"].replace("cache", "api").tolist()
    assert set(got["hlr_source"]) == {"api", "missing", "invalid"}
    pd.testing.assert_frame_equal(
        got.drop(columns=["hlr_source"]), ref.drop(columns=["hlr_source"])
    )
    sb.reset_stats()
    again = ddf.hlr.validate("phone", **GB_OPTS, client=client_for(sb), cache=tmp_path / "c")
    assert sb.stats().requests == 0
    assert set(again.compute()["hlr_source"]) == {"cache", "missing", "invalid"}
    # by default temporary outcomes are served for an hour too, as in the pandas path; with
    # retry_temporary=True only they are looked up again
    frame = HLRCache(tmp_path / "c").to_frame()
    temporary = set(frame.loc[frame["temporary"].fillna(False).astype(bool), "number"])
    ddf.hlr.validate("phone", default_region="GB", client=client_for(sb), cache=tmp_path / "c")
    assert sb.stats().requests == 0
    ddf.hlr.validate(
        "phone", default_region="GB", client=client_for(sb), cache=tmp_path / "c",
        retry_temporary=True,
    )
    assert temporary and sb.stats().received == dict.fromkeys(temporary, 1)


def test_detailed_prefix_and_estimate(dask_client, dataset, sb, client_for, tmp_path):
    ddf = _read(dataset)
    cache = tmp_path / "c"
    opts = {"detailed": True, "route": "detailed", **GB_OPTS}
    est = ddf.hlr.estimate("phone", cache=cache, client=client_for(sb), **opts)
    pest = ddf.compute().hlr.estimate("phone", cache=cache, client=client_for(sb), **opts)
    assert est == pest and est.to_look_up == len(_distinct(ddf))
    out = ddf.hlr.validate("phone", cache=cache, client=client_for(sb), prefix="x_", **opts)
    ref = ddf.compute().hlr.validate(
        "phone", cache=cache, client=client_for(sb), prefix="x_", **opts
    )
    assert list(out.columns) == ["phone", "spend", *("x_" + c for c in schema.output_columns(True))]
    pd.testing.assert_frame_equal(
        out.compute().drop(columns=["x_hlr_source"]), ref.drop(columns=["x_hlr_source"])
    )
    assert ddf.hlr.estimate("phone", cache=cache, client=client_for(sb), **opts).to_look_up == 0
    # the Series face gives the result columns only
    res = ddf["phone"].hlr.validate(cache=cache, client=client_for(sb), **opts)
    assert list(res.columns) == schema.output_columns(True)
    assert len(res.compute()) == len(ref)


def test_local_scheduler_gets_the_table_as_one_delayed(dataset, sb, client_for, tmp_path):
    ddf = _read(dataset)
    with dask.config.set(scheduler="sync"):
        assert hlr_dask._distributed_client() is None
        out = ddf.hlr.validate("phone", **GB_OPTS, client=client_for(sb), cache=False)
        got = out.compute()
    assert set(got["hlr_source"]) == {"api", "missing", "invalid"}


def test_bad_column_is_the_pandas_error(dask_client, dataset):
    ddf = _read(dataset)
    with pytest.raises(KeyError, match="no column 'phon'"):
        ddf.hlr.validate("phon")
    with pytest.raises(KeyError, match="no column 3"):
        ddf.hlr.estimate(3)
    with pytest.raises(TypeError, match="column must be a column label"):
        ddf.hlr.estimate(["phone"])
    with pytest.raises(TypeError, match="did you mean 'detailed'"):
        ddf.hlr.validate("phone", detaild=True)


def test_report_matches_the_ledger_and_stopped_runs_carry_it(
    dataset, make_sandbox, client_for, tmp_path
):
    ddf = _read(dataset)
    distinct = _distinct(ddf)
    server = make_sandbox(balance=10)
    with dask.config.set(scheduler="sync"):
        with pytest.raises(pd_hlr.InsufficientBalanceError) as info:
            ddf.hlr.validate("phone", **GB_OPTS, client=client_for(server), cache=tmp_path / "c")
        exc = info.value
        assert isinstance(exc.partial, dd.DataFrame)
        assert exc.partial.hlr.report() == exc.report
        assert (exc.report.looked_up, exc.report.stopped) == (10, "InsufficientBalanceError")
        assert exc.looked_up == 10 and exc.remaining == len(distinct) - 10
        server.configure(balance=None)
        server.reset_stats()
        out = ddf.hlr.validate("phone", **GB_OPTS, client=client_for(server), cache=tmp_path / "c")
        report = out.hlr.report()  # known before anything is computed
        assert (report.cached, report.looked_up) == (10, len(distinct) - 10)
        assert report.rows == 115 and report.distinct == len(distinct)
        assert report.requests == server.stats().requests
        assert report.sandbox and report.stopped is None
        got = out.compute()
    assert got.attrs["pd_hlr"]["report"] == report.to_dict()
    assert "pd-hlr accessor on a Dask DataFrame" in repr(ddf.hlr)


def test_dask_any_hashable_label_and_series_face(sb, client_for):
    pdf = pd.DataFrame({0: ["+44 7400 123456", "junk", None], 1: ["a", "b", "c"]})
    ddf = dd.from_pandas(pdf, npartitions=2)
    with dask.config.set(scheduler="sync"):
        out = ddf.hlr.validate(0, client=client_for(sb), cache=False).compute()
        res = ddf[0].hlr.validate(client=client_for(sb), cache=False)
        assert res.hlr.report().rows == 3
        got = res.compute()
    assert out["hlr_source"].tolist() == ["api", "invalid", "missing"]
    assert list(got.columns) == schema.output_columns(False)
    assert got.attrs["pd_hlr"]["column"] == 0


def test_import_pd_hlr_does_not_import_dask_and_missing_dask_names_the_extra():
    code = (
        "import sys, pd_hlr\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    code = (
        "import sys\n"
        "sys.modules['dask'] = None\n"
        "try:\n"
        "    import pd_hlr.dask\n"
        "except ImportError as e:\n"
        "    assert \"pip install 'pd-hlr[dask]'\" in str(e), e\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_parquet_folder_round_trip(dask_client, dataset, sb, client_for, tmp_path, capsys):
    cache = tmp_path / "cli-cache"
    out = tmp_path / "enriched"
    argv = ["validate", str(dataset), "--column", "phone", "--default-region", "GB"]
    argv += ["--cache", str(cache), "--sandbox", "--no-progress"]
    assert main([*argv, "--out", str(out), "--budget", "3"]) == 5  # nothing sent
    assert not out.exists()
    assert main([*argv, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "wrote 115 rows" in captured.err
    files = sorted(out.glob("*.parquet"))
    assert len(files) == 6
    meta = pq.read_schema(files[0]).metadata
    assert b"pd_hlr" in meta
    got = pd.read_parquet(out)
    # the pandas engine on the same rows, from the cache the dask run filled
    pdf = dd.read_parquet(dataset).compute().reset_index(drop=True)
    ref = pdf.hlr.validate("phone", **GB_OPTS, cache=cache, client=client_for(sb), budget=0)
    assert list(got.columns) == list(ref.columns)
    pd.testing.assert_frame_equal(
        got.drop(columns=["hlr_source"]),
        ref.drop(columns=["hlr_source"]),
        check_dtype=False,
        check_index_type=False,
    )
    assert (got["hlr_source"] == ref["hlr_source"].replace("cache", "api")).all()
    summary = analysis.summary_from_counts(
        hlr_dask.summary_parts(dd.from_pandas(ref, npartitions=3)).compute()
    )
    expect = ref.hlr.summary()
    key = ["section", "value"]
    pd.testing.assert_frame_equal(
        summary.sort_values(key).reset_index(drop=True),
        expect.sort_values(key).reset_index(drop=True),
    )
    assert "status" in captured.out and "live" in captured.out
    # a glob input works too, and a missing column is a usage error (exit 2)
    glob = str(dataset / "part-0[0-2].parquet")
    assert main([*argv[:1], glob, *argv[2:], "--out", str(tmp_path / "g")]) == 0
    assert main([*argv[:1], str(dataset), "--column", "nope", "--sandbox"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert main([*argv, "--out", str(dataset.parent)]) == 2  # would overwrite the input
    assert SANDBOX_TOKEN  # the CLI's sandbox answered: no real token was needed
