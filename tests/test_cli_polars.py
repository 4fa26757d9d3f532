"""``pd-hlr validate|estimate --engine polars``: files, folders and globs of parquet or CSV,
streamed; against a sandbox reached as the real API is (its ledger says what was paid)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

pl = pytest.importorskip("polars")

from pd_hlr import cli, schema  # noqa: E402
from pd_hlr.cache import HLRCache  # noqa: E402

from .test_cli import _one_line_error  # noqa: E402

GB = [f"+447400123{i:03d}" for i in range(30)]
SHAPES = [lambda n: n, lambda n: f"{n[:3]} {n[3:7]} {n[7:]}", lambda n: f"0{n[3:7]} {n[7:]}"]
JUNK = ["call me", "n/a", "", None]


def _numbers(start: int, count: int) -> list[str | None]:
    """The number each row holds (None: a junk or empty cell), as the rows are made."""
    return [None if i % 9 == 0 else GB[(i * 7) % len(GB)] for i in range(start, start + count)]


def _rows(start: int, count: int) -> dict[str, list[Any]]:
    numbers = _numbers(start, count)
    phones = [
        JUNK[i % len(JUNK)] if n is None else SHAPES[i % 3](n)
        for i, n in enumerate(numbers, start)
    ]
    return {"id": [f"{i:05d}" for i in range(start, start + count)], "phone": phones}


PARTS = [(0, 40), (40, 0), (40, 35)]
DISTINCT = {n for start, count in PARTS for n in _numbers(start, count) if n}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three parquet files, one of them empty."""
    calls = tmp_path / "calls"
    calls.mkdir()
    for i, (start, count) in enumerate(PARTS):
        frame = pl.DataFrame(_rows(start, count), schema={"id": pl.String, "phone": pl.String})
        frame.write_parquet(calls / f"part-{i}.parquet")
    return calls


def _argv(source: Path | str, *extra: str) -> list[str]:
    return ["validate", str(source), "-c", "phone", "--default-region", "GB", *extra]


def test_parquet_folder_streams_to_one_file_equal_to_the_pandas_engine(
    real_api: Any, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb = real_api()
    cache = tmp_path / "c"
    code = cli.main(
        _argv(folder, "--engine", "polars", "--cache", str(cache), "--no-retry-temporary")
    )
    assert code == 0
    out = tmp_path / "calls.hlr.parquet"  # a folder's default output: one file beside it
    captured = capsys.readouterr()
    assert f"wrote 75 rows to {out}" in captured.err
    assert "status: share of all 75 rows" in captured.out and "pd-hlr run: 75 rows" in captured.out
    source = pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))])
    source = source.reset_index(drop=True)
    assert sb.stats().received == dict.fromkeys(DISTINCT, 1)  # each number once
    got = pd.read_parquet(out)
    assert got["id"].tolist() == source["id"].tolist()  # every row, in order
    info = json.loads(pq.read_metadata(out).metadata[b"pd_hlr"])
    assert info["report"]["rows"] == 75 and info["column"] == "phone"

    sb.reset_stats()  # the pandas engine on the same rows, from the cache the polars run filled
    flat = tmp_path / "flat.parquet"
    source.to_parquet(flat)
    ref_out = tmp_path / "ref.parquet"
    argv = _argv(flat, "--cache", str(cache), "--no-retry-temporary", "--out", str(ref_out))
    assert cli.main(argv) == 0
    assert sb.stats().requests == 0
    ref = pd.read_parquet(ref_out)
    assert list(got.columns) == list(ref.columns) == ["id", "phone", *schema.output_columns(False)]
    assert pq.read_schema(out).remove_metadata() == pq.read_schema(ref_out).remove_metadata()
    columns = [c for c in got.columns if c != "hlr_source"]  # value for value, through Arrow
    assert pq.read_table(out, columns=columns).equals(pq.read_table(ref_out, columns=columns))
    assert got["hlr_source"].tolist() == ref["hlr_source"].replace("cache", "api").tolist()


def test_csv_in_gzip_csv_out_keeps_every_column_text(
    real_api: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real_api()
    src = tmp_path / "in.csv"
    src.write_text("id,phone,note\n007,447400123000,NA\n008,,x\n009,07400 123001,\n")
    out = tmp_path / "out.csv.gz"
    assert cli.main(_argv(src, "--engine", "polars", "--no-cache", "--out", str(out))) == 0
    with gzip.open(out, "rt") as fh:
        got = pd.read_csv(fh, dtype=str, keep_default_na=False)
    assert got["id"].tolist() == ["007", "008", "009"]  # text stays text
    assert got["phone"].tolist() == ["447400123000", "", "07400 123001"]
    assert got["note"].tolist() == ["NA", "x", ""]
    assert got["hlr_number"].tolist() == ["+447400123000", "", "+447400123001"]
    assert got["hlr_source"].tolist() == ["api", "missing", "api"]
    assert "status: share of all 3 rows" in capsys.readouterr().out


def test_a_glob_and_the_estimate_match_the_pandas_engine(
    real_api: Any, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb = real_api()
    glob = str(folder / "part-*.parquet")
    cache = str(tmp_path / "c")
    base = ["estimate", glob, "-c", "phone", "--default-region", "GB", "--cache", cache, "--json"]
    assert cli.main([*base, "--engine", "polars"]) == 0
    polars_est = json.loads(capsys.readouterr().out)
    assert cli.main([*base, "--engine", "dask"]) == 0
    assert json.loads(capsys.readouterr().out) == polars_est
    assert polars_est["rows"] == 75 and polars_est["to_look_up"] == polars_est["distinct"]
    assert sb.stats().requests == 0  # an estimate sends nothing
    out = tmp_path / "g.parquet"
    argv = ["validate", glob, "-c", "phone", "--default-region", "GB", "--cache", cache]
    assert cli.main([*argv, "--engine", "polars", "--out", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["output"] == str(out) and payload["report"]["rows"] == 75
    assert payload["report"]["looked_up"] == polars_est["to_look_up"]
    assert {row["section"] for row in payload["summary"]} >= {"status", "network", "source"}


@pytest.mark.parametrize(
    "name, extra, message",
    [
        ("in.csv.bz2", [], "plain or gzip-compressed, not bz2"),
        ("in.xlsx", [], "Excel inputs are read with --engine pandas"),
        ("in.csv", ["--sheet", "2"], "--sheet applies to one Excel file"),
        ("in.csv", ["--out", "o.csv.bz2"], "writes parquet, or CSV/TSV plain or .gz"),
        ("in.csv", ["-c", "tel"], "no column 'tel'"),
    ],
)
def test_what_the_polars_engine_cannot_do_is_refused_before_anything_is_sent(
    real_api: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    extra: list[str],
    message: str,
) -> None:
    sb = real_api()
    monkeypatch.chdir(tmp_path)
    Path(name).write_bytes(b"phone\n+447400123000\n")
    code = cli.main([*_argv(name, "--engine", "polars", "--no-cache"), *extra])
    assert code == 2
    assert message in _one_line_error(capsys.readouterr().err)
    assert sb.stats().requests == 0


def test_outputs_the_next_run_would_read_or_that_exist_are_refused(
    real_api: Any, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb = real_api()
    inside = folder / "enriched.parquet"
    assert cli.main(_argv(folder, "--engine", "polars", "--out", str(inside))) == 2
    assert "inside the input folder" in _one_line_error(capsys.readouterr().err)
    existing = tmp_path / "exists.parquet"
    existing.write_bytes(b"keep me")
    assert cli.main(_argv(folder, "--engine", "polars", "--out", str(existing))) == 2
    assert "--force" in _one_line_error(capsys.readouterr().err)
    assert existing.read_bytes() == b"keep me" and sb.stats().requests == 0
    argv = _argv(folder, "--engine", "polars", "--out", str(existing), "--force", "--no-cache")
    assert cli.main(argv) == 0
    assert pq.read_metadata(existing).num_rows == 75


def test_budget_exits_5_and_a_402_exits_3_keeping_what_was_paid(
    real_api: Any, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb = real_api(balance=4)
    out, cache = tmp_path / "o.parquet", tmp_path / "c"
    argv = _argv(folder, "--engine", "polars", "--out", str(out), "--cache", str(cache))
    assert cli.main([*argv, "--budget", "3"]) == 5
    assert "paid lookups but budget=3" in _one_line_error(capsys.readouterr().err)
    assert sb.stats().requests == 0 and not out.exists()
    assert cli.main([*argv, "--workers", "2"]) == 3
    assert "balance" in _one_line_error(capsys.readouterr().err).lower()
    assert sb.stats().total_charged == 4 and not out.exists()
    assert HLRCache(cache).stats()["entries"] == 4  # everything paid for is kept


def test_without_polars_the_engine_names_the_extra(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("phone\n+447400123000\n")
    code = (
        "import sys\n"
        "sys.modules['polars'] = None\n"
        "from pd_hlr import cli\n"
        f"sys.exit(cli.main(['estimate', {str(src)!r}, '-c', 'phone', '--engine', 'polars']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'pd-hlr[polars]'" in proc.stderr and "Traceback" not in proc.stderr
