"""The ``pd-hlr`` command line: in-process through :func:`pd_hlr.cli.main` and as a real
console script in a subprocess. Every server is a local sandbox."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
import requests

from pd_hlr import cli, schema
from pd_hlr.cache import HLRCache

from .conftest import TOKEN

REPO = Path(__file__).resolve().parents[1]
CONTACTS = REPO / "data" / "contacts.csv"

PHONES = [
    "+44 7400 123456",
    "07400 123457",
    "+447400123456",  # duplicate of the first
    "+1 201 555 0123",
    "+49 151 12345678",
    "+33 6 12 34 56 78",
    "call me",
    "",
    "n/a",
]
DISTINCT = 5


def _script() -> str:
    here = Path(sys.executable).parent / "pd-hlr"
    found = str(here) if here.exists() else shutil.which("pd-hlr")
    assert found, "the pd-hlr console script is not installed"
    return found


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "small.csv"
    pd.DataFrame(
        {"id": range(len(PHONES)), "name": [f"n{i}" for i in range(len(PHONES))], "phone": PHONES}
    ).to_csv(path, index=False)
    return path


@pytest.fixture
def real_api(monkeypatch: pytest.MonkeyPatch, make_sandbox: Any) -> Any:
    """A sandbox reached the way the real API is: PROVERO_BASE_URL + PROVERO_API_TOKEN."""

    def start(**knobs: Any) -> Any:
        sb = make_sandbox(**knobs)
        monkeypatch.setenv("PROVERO_BASE_URL", sb.url)
        monkeypatch.setenv("PROVERO_API_TOKEN", TOKEN)
        return sb

    return start


def _one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err
    assert lines[-1].startswith("pd-hlr: error: ")
    return lines[-1]


# --- validate ---------------------------------------------------------------------------------
def test_validate_contacts_csv_as_a_console_script(tmp_path: Path) -> None:
    """The README's main-job command, end to end in a subprocess, on the sample data."""
    out = tmp_path / "enriched.parquet"
    cache = tmp_path / "cache"
    res = subprocess.run(
        [
            _script(),
            "validate",
            str(CONTACTS),
            "--column",
            "phone",
            "--default-region",
            "GB",
            "--sandbox",
            "--cache",
            str(cache),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "SANDBOX MODE" in res.stderr and "SYNTHETIC" in res.stderr
    assert res.stderr.count("!" * 20) >= 2, "the banner is loud"
    assert f"wrote 3,000 rows to {out}" in res.stderr
    frame = pd.read_parquet(out)
    source = pd.read_csv(CONTACTS)
    assert len(frame) == len(source)
    assert list(frame.columns) == list(source.columns) + schema.output_columns(False)
    assert frame["hlr_source"].isin(["api", "invalid", "missing"]).all()
    assert (frame["hlr_source"] == "api").sum() > 2000
    # the summary table, on stdout
    for needle in ("section", "status", "live", "network", "country", "source"):
        assert needle in res.stdout
    info = json.loads(pq.read_schema(out).metadata[b"pd_hlr"])
    assert info["column"] == "phone" and info["default_region"] == "GB"
    assert HLRCache(cache).stats()["entries"] == frame["hlr_number"].nunique()


def test_validate_in_process_writes_csv_by_extension(
    small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sub" / "out.csv"
    code = cli.main(
        [
            "validate",
            str(small_csv),
            "-c",
            "phone",
            "--default-region",
            "GB",
            "--sandbox",
            "--detailed",
            "--route",
            "detailed",
            "--no-cache",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "SANDBOX MODE" in captured.err
    assert "status" in captured.out and "ported" in captured.out
    back = pd.read_csv(out)
    assert list(back.columns) == ["id", "name", "phone", *schema.output_columns(True)]
    assert len(back) == len(PHONES)
    assert back["hlr_source"].tolist().count("api") == 6


def test_validate_parquet_input_and_default_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.parquet"
    pd.DataFrame({"phone": PHONES}).to_parquet(src)
    code = cli.main(["validate", str(src), "-c", "phone", "--default-region", "GB", "--sandbox"])
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "in.hlr.parquet"
    frame = pd.read_parquet(out)
    assert frame["hlr_number"].nunique() == DISTINCT
    # the default cache ($PD_HLR_CACHE, a temp dir in tests) was filled
    assert HLRCache(os.environ["PD_HLR_CACHE"]).stats()["entries"] == DISTINCT


def test_validate_against_real_api_settings(
    real_api: Any, small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb = real_api()
    out = tmp_path / "o.parquet"
    args = ["validate", str(small_csv), "-c", "phone", "--default-region", "GB"]
    assert cli.main([*args, "--cache", str(tmp_path / "c"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "SANDBOX" not in captured.err
    assert sb.stats().total_charged == DISTINCT
    assert cli.main([*args, "--cache", str(tmp_path / "c"), "--out", str(out)]) == 0
    assert sb.stats().total_charged == DISTINCT, "the second run is served from the cache"
    assert set(pd.read_parquet(out)["hlr_source"]) <= {"cache", "api", "invalid", "missing"}


# --- estimate ---------------------------------------------------------------------------------
def _estimate_lines(text: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def test_estimate_prints_counts_and_sends_nothing(
    real_api: Any, small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb = real_api()
    cache = str(tmp_path / "c")
    args = ["estimate", str(small_csv), "-c", "phone", "--default-region", "GB", "--cache", cache]
    assert cli.main(args) == 0
    got = _estimate_lines(capsys.readouterr().out)
    assert got["rows"] == str(len(PHONES))
    assert got["missing"] == "2" and got["invalid"] == "1" and got["skipped"] == "0"
    assert got["distinct"] == str(DISTINCT) and got["cached"] == "0"
    assert got["to_look_up"] == str(DISTINCT)
    assert got["price"] == "0.006" and float(got["cost"]) == pytest.approx(0.006 * DISTINCT)
    assert sb.stats().requests == 0

    assert cli.main([*args, "--price", "0.01"]) == 0
    assert float(_estimate_lines(capsys.readouterr().out)["cost"]) == pytest.approx(0.05)

    validate = ["validate", *args[1:], "--out", str(tmp_path / "o.parquet")]
    assert cli.main([*validate, "--price", "0.01"]) == 0
    capsys.readouterr()
    assert cli.main(args) == 0
    got = _estimate_lines(capsys.readouterr().out)
    temporary = HLRCache(cache).stats()["temporary"]
    assert got["cached"] == str(DISTINCT - temporary)
    assert sb.stats().requests == DISTINCT


def test_estimate_sandbox_counts_the_sandbox_cache(
    small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = str(tmp_path / "c")
    common = [str(small_csv), "-c", "phone", "--default-region", "GB", "--cache", cache]
    assert cli.main(["validate", *common, "--sandbox", "--out", str(tmp_path / "o.csv")]) == 0
    capsys.readouterr()
    temporary = HLRCache(cache).stats()["temporary"]
    assert cli.main(["estimate", *common, "--sandbox"]) == 0
    captured = capsys.readouterr()
    assert _estimate_lines(captured.out)["cached"] == str(DISTINCT - temporary)
    # Without --sandbox the real API's namespace is asked: sandbox answers are not real ones.
    assert cli.main(["estimate", *common]) == 0
    assert _estimate_lines(capsys.readouterr().out)["cached"] == "0"


def test_bad_price_is_a_usage_error(small_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["estimate", str(small_csv), "-c", "phone", "--price", "abc"])
    assert info.value.code == 2
    assert "--price" in capsys.readouterr().err


# --- cache ------------------------------------------------------------------------------------
def test_cache_stats_compact_clear(
    small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = str(tmp_path / "c")
    run = [str(small_csv), "-c", "phone", "--default-region", "GB", "--sandbox", "--cache", cache]
    for name in ("a", "b"):  # two runs, two options: two parts
        extra = ["--detailed"] if name == "b" else []
        assert cli.main(["validate", *run, *extra, "--out", str(tmp_path / f"{name}.csv")]) == 0
    capsys.readouterr()

    assert cli.main(["cache", "stats", "--cache", cache]) == 0
    stats = _estimate_lines(capsys.readouterr().out)
    assert stats["entries"] == str(2 * DISTINCT)
    assert int(stats["parts"]) + int(stats["journals"]) >= 2

    assert cli.main(["cache", "compact", "--cache", cache]) == 0
    capsys.readouterr()
    assert cli.main(["cache", "stats", "--cache", cache]) == 0
    after = _estimate_lines(capsys.readouterr().out)
    assert after["entries"] == str(2 * DISTINCT) and after["parts"] == "1"

    assert cli.main(["cache", "clear", "--cache", cache]) == 0
    assert "removed" in capsys.readouterr().out
    assert cli.main(["cache", "stats", "--cache", cache]) == 0
    assert _estimate_lines(capsys.readouterr().out)["entries"] == "0"


def test_cache_default_folder_from_env(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cache", "stats"]) == 0
    assert os.environ["PD_HLR_CACHE"] in capsys.readouterr().out


# --- exit codes -------------------------------------------------------------------------------
def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["validate", str(tmp_path / "nope.csv"), "-c", "phone", "--sandbox"])
    assert code == cli.EXIT_INPUT == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "not found" in line and "nope.csv" in line


def test_missing_column_exits_2_in_one_line(
    small_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("validate", "estimate"):
        code = cli.main([command, str(small_csv), "-c", "mobile", "--sandbox"])
        assert code == 2
        err = capsys.readouterr().err
        line = _one_line_error(err)
        assert "'mobile'" in line and "phone" in line
        assert "SANDBOX" not in err, "input is checked before anything starts"


def test_bad_output_type_exits_2_before_any_lookup(
    real_api: Any, small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb = real_api()
    out = tmp_path / "out.xlsx"
    code = cli.main(["validate", str(small_csv), "-c", "phone", "--out", str(out)])
    assert code == 2
    assert ".xlsx" in _one_line_error(capsys.readouterr().err)
    assert sb.stats().requests == 0 and not out.exists()


def test_unreadable_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, content in (("empty.csv", ""), ("bad.parquet", "not parquet"), ("x.json", "{}")):
        path = tmp_path / name
        path.write_text(content)
        assert cli.main(["estimate", str(path), "-c", "phone"]) == 2
        _one_line_error(capsys.readouterr().err)


def test_no_token_exits_4_naming_the_variable(
    small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["validate", str(small_csv), "-c", "phone", "--out", str(tmp_path / "o.csv")])
    assert code == cli.EXIT_AUTH == 4
    line = _one_line_error(capsys.readouterr().err)
    assert "PROVERO_API_TOKEN" in line and "--sandbox" in line


def test_wrong_token_exits_4(
    real_api: Any,
    small_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real_api()
    monkeypatch.setenv("PROVERO_API_TOKEN", "wrong-token")
    code = cli.main(
        [
            "validate",
            str(small_csv),
            "-c",
            "phone",
            "--default-region",
            "GB",
            "--out",
            str(tmp_path / "o.csv"),
            "--no-cache",
        ]
    )
    assert code == 4
    line = _one_line_error(capsys.readouterr().err)
    assert "wrong-token" not in line


def test_budget_too_small_exits_5_and_sends_nothing(
    real_api: Any, small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb = real_api()
    out = tmp_path / "o.parquet"
    args = ["validate", str(small_csv), "-c", "phone", "--default-region", "GB", "--no-cache"]
    assert cli.main([*args, "--budget", str(DISTINCT - 1), "--out", str(out)]) == 5
    line = _one_line_error(capsys.readouterr().err)
    assert f"needs {DISTINCT} paid lookups" in line and "budget=4" in line
    assert sb.stats().requests == 0 and not out.exists()
    assert cli.main([*args, "--budget", str(DISTINCT), "--out", str(out)]) == 0
    assert sb.stats().total_charged == DISTINCT


def test_budget_with_sandbox_flag_exits_5(
    small_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        [
            "validate",
            str(small_csv),
            "-c",
            "phone",
            "--sandbox",
            "--budget",
            "0",
            "--default-region",
            "GB",
            "--no-cache",
        ]
    )
    assert code == 5
    _one_line_error(capsys.readouterr().err)


def test_insufficient_balance_exits_3_and_keeps_what_was_paid(
    real_api: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb = real_api(balance=5)
    src = tmp_path / "many.csv"
    phones = [f"+4474001{i:05d}" for i in range(40)]
    pd.DataFrame({"phone": phones}).to_csv(src, index=False)
    cache = tmp_path / "c"
    out = tmp_path / "o.parquet"
    code = cli.main(
        [
            "validate",
            str(src),
            "-c",
            "phone",
            "--cache",
            str(cache),
            "--out",
            str(out),
            "--workers",
            "2",
        ]
    )
    assert code == cli.EXIT_BALANCE == 3
    line = _one_line_error(capsys.readouterr().err)
    assert "balance" in line.lower()
    assert sb.stats().total_charged == 5
    assert HLRCache(cache).stats()["entries"] == 5, "everything paid for is in the cache"
    assert not out.exists()


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["validate"], ["frobnicate"], ["cache", "shrink"]):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 2
    capsys.readouterr()


def test_exit_codes_are_documented() -> None:
    doc = cli.__doc__ or ""
    for code in (
        cli.EXIT_OK,
        cli.EXIT_BUG,
        cli.EXIT_INPUT,
        cli.EXIT_BALANCE,
        cli.EXIT_AUTH,
        cli.EXIT_BUDGET,
        cli.EXIT_API,
        cli.EXIT_INTERRUPTED,
    ):
        assert f"\n{code:<4} " in doc or f"\n{code} " in doc, code


# --- sandbox ----------------------------------------------------------------------------------
def test_sandbox_command_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [_script(), "sandbox", "--port", "0", "--token", "demo", "--balance", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in first, first
        url = first.split("listening on ", 1)[1].split()[0]
        resp = requests.post(
            url + "/api/validate/phone",
            json={"phone": "+447400123456"},
            headers={"Authorization": "Bearer demo"},
            timeout=10,
        )
        assert resp.status_code == 200
        assert resp.json()["results"][0]["to"] == "+447400123456"
        denied = requests.post(
            url + "/api/validate/phone", json={"phone": "+447400123456"}, timeout=10
        )
        assert denied.status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped: 2 requests, 1 charged" in out


def test_engine_pandas_reads_a_parquet_folder(tmp_path, capsys):
    folder = tmp_path / "calls"
    folder.mkdir()
    pd.DataFrame({"phone": ["+447400123456", "junk"]}).to_parquet(folder / "a.parquet")
    pd.DataFrame({"phone": ["+12015550123"]}).to_parquet(folder / "b.parquet")
    out = tmp_path / "out.parquet"
    code = cli.main(
        [
            "validate",
            str(folder),
            "--column",
            "phone",
            "--engine",
            "pandas",
            "--sandbox",
            "--no-cache",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    got = pd.read_parquet(out)
    assert sorted(got["hlr_source"]) == ["api", "api", "invalid"]


def test_budget_error_quotes_the_given_price(tmp_path, capsys):
    src = tmp_path / "in.csv"
    pd.DataFrame({"phone": ["+447400123456", "+447400123457", "+12015550123"]}).to_csv(
        src, index=False
    )
    code = cli.main(
        [
            "validate",
            str(src),
            "-c",
            "phone",
            "--sandbox",
            "--no-cache",
            "--budget",
            "2",
            "--price",
            "0.01",
            "--out",
            str(tmp_path / "out.parquet"),
        ]
    )
    assert code == cli.EXIT_BUDGET
    err = capsys.readouterr().err
    assert "needs 3 paid lookups" in err and "0.0300" in err
    assert not (tmp_path / "out.parquet").exists()
