"""The ``pd-hlr`` command line: in-process through :func:`pd_hlr.cli.main` and as a real
console script in a subprocess. Every server is a local sandbox."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
import requests

from pd_hlr import _io as cli_io
from pd_hlr import cli, schema
from pd_hlr.cache import HLRCache
from pd_hlr.settings import BASE_URL_ENV, CACHE_ENV, TOKEN_ENV

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
    assert res.stdout.startswith("HLR summary: 3,000 rows")
    for needle in ("status: share", "live", "network: share", "country: share", "source: share"):
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
    out = tmp_path / "in.parquet.hlr.parquet"
    frame = pd.read_parquet(out)
    assert frame["hlr_number"].nunique() == DISTINCT
    # the default cache ($PD_HLR_CACHE, a temp dir in tests) was filled
    assert HLRCache(os.environ[CACHE_ENV]).stats()["entries"] == DISTINCT


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
    temporary = HLRCache(tmp_path / "c").stats()["temporary"]
    assert cli.main([*args, "--cache", str(tmp_path / "c"), "--out", str(out), "--force"]) == 0
    assert sb.stats().total_charged == DISTINCT + temporary, "the rest comes from the cache"
    assert set(pd.read_parquet(out)["hlr_source"]) <= {"cache", "api", "invalid", "missing"}


# --- estimate ---------------------------------------------------------------------------------
def _estimate_lines(text: str) -> dict[str, str]:
    """The figures of ``estimate --json`` (or the ``key: value`` lines of ``cache stats``)."""
    if text.lstrip().startswith("{"):
        return {k: str(v) for k, v in json.loads(text).items()}
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def test_estimate_prints_counts_and_sends_nothing(
    real_api: Any, small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb = real_api()
    cache = str(tmp_path / "c")
    args = ["estimate", str(small_csv), "-c", "phone", "--default-region", "GB", "--cache", cache,
            "--json"]
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


def test_estimate_prints_a_sentence(
    small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 25: the README promises a sentence, not a ``rows: 1500000`` dump."""
    args = ["estimate", str(small_csv), "-c", "phone", "--default-region", "GB", "--no-cache"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out.strip()
    assert out == (
        f"{len(PHONES)} rows: 2 missing, 1 invalid, 0 skipped; {DISTINCT} distinct numbers, "
        f"0 cached, {DISTINCT} to look up ≈ 0.030 at 0.006 each. Nothing was sent (--json for "
        "the figures)."
    )


def test_estimate_sandbox_counts_the_sandbox_cache(
    small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = str(tmp_path / "c")
    common = [str(small_csv), "-c", "phone", "--default-region", "GB", "--cache", cache]
    assert cli.main(["validate", *common, "--sandbox", "--out", str(tmp_path / "o.csv")]) == 0
    capsys.readouterr()
    temporary = HLRCache(cache).stats()["temporary"]
    assert cli.main(["estimate", *common, "--sandbox", "--json"]) == 0
    captured = capsys.readouterr()
    assert _estimate_lines(captured.out)["cached"] == str(DISTINCT - temporary)
    # Without --sandbox the real API's namespace is asked: sandbox answers are not real ones.
    assert cli.main(["estimate", *common, "--json"]) == 0
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

    assert cli.main(["cache", "clear", "--cache", cache, "--yes"]) == 0
    assert "removed" in capsys.readouterr().out
    assert cli.main(["cache", "stats", "--cache", cache]) == 0
    assert _estimate_lines(capsys.readouterr().out)["entries"] == "0"


def test_cache_default_folder_from_env(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cache", "stats"]) == 0
    assert os.environ[CACHE_ENV] in capsys.readouterr().out


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
    out = tmp_path / "out.json"
    code = cli.main(["validate", str(small_csv), "-c", "phone", "--out", str(out)])
    assert code == 2
    assert ".json" in _one_line_error(capsys.readouterr().err)
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
    assert TOKEN_ENV in line and "--sandbox" in line


def test_wrong_token_exits_4(
    real_api: Any,
    small_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real_api()
    monkeypatch.setenv(TOKEN_ENV, "wrong-token")
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


# --- sandbox ----------------------------------------------------------------------------------
def _readline(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    """The child's next stdout line; a child that prints nothing for ``timeout`` seconds is
    killed and fails the test (a hang guard, not a speed check)."""
    assert proc.stdout is not None
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not got:
        proc.kill()
        pytest.fail(f"the child printed no line in {timeout:g} s")
    return got[0]


def test_sandbox_command_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [_script(), "sandbox", "--port", "0", "--token", "demo", "--balance", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = _readline(proc)
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
    assert "needs 3 paid lookups" in err and "estimated cost 0.03 at 0.01 per lookup" in err
    assert not (tmp_path / "out.parquet").exists()


# --- the parser: light, versioned, with examples -----------------------------------------------
_HEAVY = (
    "phonenumbers.geocoder",
    "phonenumbers.carrier",
    "phonenumbers.carrierdata",
    "dask",
    "openpyxl",
)


def _modules_after(code: str) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter and report which heavy modules it imported."""
    probe = (
        f"import sys\n{code}\n"
        f"import json; print(json.dumps({{m: m in sys.modules for m in {list(_HEAVY)!r}}}))"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_help_imports_nothing_heavy() -> None:
    """`pd-hlr --help` and each command's help stay light."""
    code = (
        "from pd_hlr import cli\n"
        "import contextlib, io\n"
        "for argv in (['--help'], ['validate', '--help'], ['estimate', '--help'],"
        " ['cache', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        cli.main(argv)\n"
    )
    assert not any(_modules_after(code).values()), _modules_after(code)
    # the probe can see an import: answering one lookup loads the carrier tables
    answered = code + "from pd_hlr import sandbox; sandbox.answer('+447400123456')\n"
    assert _modules_after(answered)["phonenumbers.carrierdata"]


def test_version() -> None:
    import pd_hlr

    res = subprocess.run([_script(), "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    assert res.stdout.strip() == f"pd-hlr {pd_hlr.__version__}"


@pytest.mark.parametrize("command", ["validate", "estimate", "cache", "sandbox"])
def test_each_command_help_shows_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    examples = out.split("examples:", 1)[1].splitlines()
    assert any(line.strip().startswith(f"pd-hlr {command}") for line in examples), out


def test_top_level_help_lists_exit_codes_and_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name in (TOKEN_ENV, BASE_URL_ENV, CACHE_ENV):
        assert name in out
    for code in cli.EXIT_CODES:
        assert f"\n  {code:<4} " in out, code


def test_readme_exit_code_table_is_the_code() -> None:
    """The exit-code table of the docs (docs/guide/cli.md, once the README's) is the code's."""
    readme = (REPO / "docs" / "guide" / "cli.md").read_text()
    start, end = "<!-- exit-codes:start", "<!-- exit-codes:end -->"
    block = readme.split(start, 1)[1].split(end, 1)[0]
    table = block.split("-->", 1)[1].strip()
    assert table == cli.exit_codes_markdown()
    constants = {v for k, v in vars(cli).items() if k.startswith("EXIT_") and isinstance(v, int)}
    assert constants == set(cli.EXIT_CODES)


def test_debug_is_accepted_after_the_command(tmp_path: Path) -> None:
    with pytest.raises(cli.InputError, match="not found"):
        cli.main(["estimate", str(tmp_path / "nope.csv"), "-c", "phone", "--debug"])


# --- options checked by the parser --------------------------------------------------------------
def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == cli.EXIT_INPUT
    return capsys.readouterr().err


def test_route_takes_only_the_documented_values(
    small_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pd_hlr import _spec

    err = _usage_error(["estimate", str(small_csv), "-c", "phone", "--route", "bogus"], capsys)
    assert "--route" in err and "bogus" in err
    for route in _spec.ROUTES:
        assert repr(route) in err
        assert cli.main(["estimate", str(small_csv), "-c", "phone", "--route", route]) == 0
    assert "standard" in _spec.ROUTES and "detailed" in _spec.ROUTES  # the spec's examples


@pytest.mark.parametrize("bad", ["30", "30.5", "1e3", " 7 ", "abc", "-5D"])
def test_max_age_needs_a_unit(
    bad: str, small_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _usage_error(["estimate", str(small_csv), "-c", "phone", f"--max-age={bad}"], capsys)
    assert "--max-age" in err and "30D" in err
    assert "Traceback" not in err


def test_max_age_with_a_unit_decides_what_is_looked_up_again(
    real_api: Any, small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb = real_api()
    cache = tmp_path / "c"
    run = ["validate", str(small_csv), "-c", "phone", "--default-region", "GB"]
    run += ["--cache", str(cache), "--out", str(tmp_path / "o.parquet"), "--force"]
    assert cli.main(run) == 0
    temporary = HLRCache(cache).stats()["temporary"]
    assert cli.main([*run, "--max-age", "30D"]) == 0
    assert sb.stats().total_charged == DISTINCT + temporary, "30 days: served from the cache"
    assert cli.main([*run, "--max-age", "0s"]) == 0
    assert sb.stats().total_charged == 2 * DISTINCT + 2 * temporary, "0 s: all looked up again"


@pytest.mark.parametrize(
    "option",
    [["--workers", "0"], ["--rate-limit", "-1"], ["--budget", "-3"], ["--workers", "two"]],
)
def test_bad_numbers_are_usage_errors(
    option: list[str], small_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _usage_error(["validate", str(small_csv), "-c", "phone", "--sandbox", *option], capsys)
    assert option[0] in err


# --- --base-url -------------------------------------------------------------------------------
def test_base_url_option_wins_over_the_variable(
    make_sandbox: Any,
    monkeypatch: pytest.MonkeyPatch,
    small_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env_sb, option_sb = make_sandbox(), make_sandbox()
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(BASE_URL_ENV, env_sb.url)
    cache = str(tmp_path / "c")
    common = [str(small_csv), "-c", "phone", "--default-region", "GB", "--cache", cache]
    code = cli.main(
        ["validate", *common, "--base-url", option_sb.url, "--out", str(tmp_path / "o.csv")]
    )
    assert code == 0, capsys.readouterr().err
    assert option_sb.stats().total_charged == DISTINCT
    assert env_sb.stats().requests == 0
    # estimate counts the cache of the API --base-url names (sandbox hosts: 127.0.0.1) ...
    temporary = HLRCache(cache).stats()["temporary"]
    capsys.readouterr()
    assert cli.main(["estimate", *common, "--base-url", option_sb.url, "--json"]) == 0
    assert _estimate_lines(capsys.readouterr().out)["cached"] == str(DISTINCT - temporary)
    # ... and not the vendor's
    monkeypatch.delenv(BASE_URL_ENV)
    assert cli.main(["estimate", *common, "--json"]) == 0
    assert _estimate_lines(capsys.readouterr().out)["cached"] == "0"


def test_base_url_is_checked_and_excludes_sandbox(
    small_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["estimate", str(small_csv), "-c", "phone"]
    assert "--base-url" in _usage_error([*base, "--base-url", "api.provero.io"], capsys)
    err = _usage_error([*base, "--sandbox", "--base-url", "http://127.0.0.1:1"], capsys)
    assert "not allowed with" in err


# --- inputs -----------------------------------------------------------------------------------
def _contacts(tmp_path: Path, rows: int = 300) -> pd.DataFrame:
    frame = pd.read_csv(CONTACTS, dtype=str, keep_default_na=False).head(rows)
    return frame


def _write_compressed(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as text with the stdlib's own compressors (not pandas')."""
    import bz2
    import gzip
    import lzma
    import zipfile

    name = path.name
    tabs = ".tsv" in name or ".tab" in name or (name.endswith(".zip") and "csv" not in name)
    sep = "\t" if tabs else ","
    text = frame.to_csv(sep=sep, index=False).encode()
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text))
    elif name.endswith(".bz2"):
        path.write_bytes(bz2.compress(text))
    elif name.endswith(".xz"):
        path.write_bytes(lzma.compress(text))
    elif name.endswith(".zip"):
        inner = "contacts.tsv" if sep == "\t" else "contacts.csv"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(inner, text)
    else:
        path.write_bytes(text)


@pytest.mark.parametrize(
    "name",
    [
        "c.csv.gz",
        "c.csv.bz2",
        "c.csv.xz",
        "c.csv.zip",
        "c.zip",
        "c.tsv",
        "c.tsv.gz",
        "c.tab",
        "c.txt",
    ],
)
def test_text_inputs_plain_and_compressed_read_alike(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = _contacts(tmp_path)
    plain = tmp_path / "plain.csv"
    frame.to_csv(plain, index=False)
    other = tmp_path / name
    _write_compressed(frame, other)
    args = ["-c", "phone", "--default-region", "GB", "--no-cache"]
    assert cli.main(["estimate", str(plain), *args]) == 0
    want = capsys.readouterr().out
    assert cli.main(["estimate", str(other), *args]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out == want
    got = cli_io.read_table(str(other), column="phone")
    pd.testing.assert_frame_equal(got, pd.read_csv(plain, dtype=str))


def test_phone_numbers_stay_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Leading zeros and long digit strings survive: never read as floats."""
    src = tmp_path / "digits.csv.gz"
    _write_compressed(
        pd.DataFrame({"phone": ["07400123456", "447400123457", "00447400123458"]}), src
    )
    out = tmp_path / "o.csv"
    args = ["validate", str(src), "-c", "phone", "--default-region", "GB"]
    assert cli.main([*args, "--sandbox", "--no-cache", "--out", str(out)]) == 0
    back = pd.read_csv(out, dtype=str)
    assert back["phone"].tolist() == ["07400123456", "447400123457", "00447400123458"]
    assert back["hlr_number"].tolist() == ["+447400123456", "+447400123457", "+447400123458"]


def _xlsx(path: Path, sheets: dict[str, list[list[Any]]]) -> None:
    """An Excel workbook written cell by cell with openpyxl (not with pandas)."""
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)


def test_excel_input_with_sheet_and_number_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import phonenumbers

    cells = [447400123456, 447400123457.0, "+44 7400 123458", "07400 123459", None, "call me"]
    typed = ["447400123456", "447400123457", "+44 7400 123458", "07400 123459"]
    src = tmp_path / "leads.xlsx"
    _xlsx(
        src,
        {
            "Notes": [["note"], ["not this sheet"]],
            "Leads": [["name", "phone"], *[[f"n{i}", c] for i, c in enumerate(cells)]],
        },
    )
    out = tmp_path / "o.parquet"
    args = ["validate", str(src), "-c", "phone", "--default-region", "GB", "--sandbox"]
    for sheet in ("Leads", "2"):
        code = cli.main([*args, "--no-cache", "--sheet", sheet, "--out", str(out), "--force"])
        assert code == 0, capsys.readouterr().err
        frame = pd.read_parquet(out)
        want = [
            phonenumbers.format_number(
                phonenumbers.parse(t, "GB"), phonenumbers.PhoneNumberFormat.E164
            )
            for t in typed
        ]
        assert frame["hlr_number"].tolist()[:4] == want
        assert frame["phone"].tolist()[:4] == typed, "number cells read as the digits shown"
        assert frame["hlr_source"].tolist()[4:] == ["missing", "invalid"]
    # no --sheet: the first sheet, said on stderr
    capsys.readouterr()
    assert cli.main(["estimate", str(src), "-c", "note"]) == 0
    err = capsys.readouterr().err
    assert "'Notes'" in err and "--sheet" in err
    # a sheet that is not there
    assert cli.main(["estimate", str(src), "-c", "phone", "--sheet", "Leeds"]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "'Leeds'" in line and "'Leads'" in line and "'Notes'" in line


def test_sheet_on_a_csv_is_a_usage_error(
    small_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["estimate", str(small_csv), "-c", "phone", "--sheet", "1"]) == 2
    assert "--sheet" in _one_line_error(capsys.readouterr().err)


def test_contacts_as_csv_gz_and_xlsx_estimate_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sample data in the three forms an analyst has it in."""
    frame = pd.read_csv(CONTACTS, dtype=str)
    gz = tmp_path / "contacts.csv.gz"
    _write_compressed(pd.read_csv(CONTACTS, dtype=str, keep_default_na=False), gz)
    xlsx = tmp_path / "contacts.xlsx"
    _xlsx(xlsx, {"contacts": [list(frame.columns), *frame.astype(object).where(
        frame.notna(), None).values.tolist()]})
    outs = []
    for path in (CONTACTS, gz, xlsx):
        args = ["estimate", str(path), "-c", "phone", "--default-region", "GB", "--json"]
        assert cli.main(args) == 0
        outs.append(_estimate_lines(capsys.readouterr().out))
    assert outs[0] == outs[1] == outs[2]
    assert outs[0]["rows"] == "3000"


def test_excel_without_openpyxl_names_the_extra(tmp_path: Path) -> None:
    src = tmp_path / "x.xlsx"
    _xlsx(src, {"s": [["phone"], ["+447400123456"]]})
    code = (
        "import sys; sys.modules['openpyxl'] = None\n"
        "from pd_hlr import cli\n"
        f"sys.exit(cli.main(['estimate', {str(src)!r}, '-c', 'phone']))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    line = _one_line_error(res.stderr)
    assert "pip install 'pd-hlr[excel]'" in line


# --- the output -------------------------------------------------------------------------------
def test_default_outputs_never_collide_nor_overwrite(
    real_api: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb = real_api()
    csv, tsv = tmp_path / "contacts.csv", tmp_path / "contacts.tsv"
    pd.DataFrame({"phone": PHONES}).to_csv(csv, index=False)
    pd.DataFrame({"phone": PHONES[:4]}).to_csv(tsv, index=False, sep="\t")
    args = ["-c", "phone", "--default-region", "GB", "--no-cache"]
    for src in (csv, tsv):
        assert cli.main(["validate", str(src), *args]) == 0
    capsys.readouterr()
    written = sorted(p.name for p in tmp_path.glob("*.hlr.parquet"))
    assert written == ["contacts.csv.hlr.parquet", "contacts.tsv.hlr.parquet"]
    assert len(pd.read_parquet(tmp_path / written[0])) == len(PHONES)
    assert len(pd.read_parquet(tmp_path / written[1])) == 4
    # the same run again: refused before anything is looked up, the file untouched
    requests_before = sb.stats().requests
    before = (tmp_path / written[0]).read_bytes()
    assert cli.main(["validate", str(csv), *args]) == cli.EXIT_INPUT
    line = _one_line_error(capsys.readouterr().err)
    assert "exists" in line and "--force" in line
    assert sb.stats().requests == requests_before
    assert (tmp_path / written[0]).read_bytes() == before
    assert cli.main(["validate", str(csv), *args, "--force"]) == 0
    assert sb.stats().requests > requests_before


def test_output_is_never_the_input(small_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = small_csv.read_bytes()
    argv = ["validate", str(small_csv), "-c", "phone", "--sandbox", "--force"]
    assert cli.main([*argv, "--out", str(small_csv)]) == 2
    err = capsys.readouterr().err
    assert "input" in _one_line_error(err) and "SANDBOX" not in err
    assert small_csv.read_bytes() == before


def test_dataset_output_folder_is_not_overwritten_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "calls"
    folder.mkdir()
    pd.DataFrame({"phone": PHONES}).to_parquet(folder / "a.parquet")
    args = ["validate", str(folder), "-c", "phone", "--sandbox", "--no-cache", "--no-progress"]
    assert cli.main(args) == 0
    out = tmp_path / "calls.hlr"
    assert len(pd.read_parquet(out)) == len(PHONES)
    capsys.readouterr()
    assert cli.main(args) == 2
    assert "--force" in _one_line_error(capsys.readouterr().err)
    assert cli.main([*args, "--force"]) == 0
    assert len(pd.read_parquet(out)) == len(PHONES)


@pytest.mark.parametrize("name", ["o.csv.gz", "o.tsv", "o.tsv.bz2"])
def test_text_outputs_by_name(
    name: str, small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / name
    argv = ["validate", str(small_csv), "-c", "phone", "--sandbox", "--no-cache", "--out", str(out)]
    assert cli.main(argv) == 0
    sep = "\t" if ".tsv" in name else ","
    back = pd.read_csv(out, sep=sep, dtype=str)  # pandas infers the compression from the name
    assert len(back) == len(PHONES) and "hlr_source" in back.columns
    assert not list(tmp_path.glob(".*tmp")), "no temp file left behind"


def test_prefix_keeps_result_named_input_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "crm.csv"
    pd.DataFrame({"phone": PHONES, "status": [f"crm-{i}" for i in range(len(PHONES))]}).to_csv(
        src, index=False
    )
    out = tmp_path / "o.parquet"
    argv = ["validate", str(src), "-c", "phone", "--sandbox", "--no-cache", "--out", str(out)]
    assert cli.main(argv) == cli.EXIT_INPUT  # without --prefix: refused, nothing written
    line = _one_line_error(capsys.readouterr().err)
    assert "(status)" in line and "--prefix" in line and "prefix=" not in line
    assert not out.exists()
    assert cli.main([*argv, "--prefix", "hlr."]) == 0
    frame = pd.read_parquet(out)
    assert frame["status"].tolist() == [f"crm-{i}" for i in range(len(PHONES))]
    assert "hlr.status" in frame.columns and "hlr.hlr_source" in frame.columns


# --- zero rows --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["csv", "xlsx", "parquet", "folder"])
def test_zero_row_input_works_end_to_end(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = pd.DataFrame({"id": pd.Series([], dtype=str), "phone": pd.Series([], dtype=str)})
    if kind == "csv":
        src = tmp_path / "zero.csv"
        src.write_text("id,phone\n")
    elif kind == "xlsx":
        src = tmp_path / "zero.xlsx"
        _xlsx(src, {"s": [["id", "phone"]]})
    elif kind == "parquet":
        src = tmp_path / "zero.parquet"
        empty.to_parquet(src)
    else:
        src = tmp_path / "zero"
        src.mkdir()
        empty.to_parquet(src / "a.parquet")
    common = [str(src), "-c", "phone", "--no-cache"]
    assert cli.main(["estimate", *common, "--json"]) == 0
    assert _estimate_lines(capsys.readouterr().out)["rows"] == "0"
    assert cli.main(["validate", *common, "--sandbox", "--no-progress"]) == 0
    captured = capsys.readouterr()
    summary, report = captured.out.strip().split("\n\n")
    assert summary == "HLR summary: 0 rows"
    assert report.startswith("pd-hlr run: 0 rows") and "0 looked up" in report
    assert "wrote 0 rows" in captured.err and "Traceback" not in captured.err
    out = Path(cli_io.default_output(str(src)))
    frame = pd.read_parquet(out)
    assert len(frame) == 0
    assert list(frame.columns)[-len(schema.output_columns(False)) :] == schema.output_columns(
        False
    )


# --- a closed pipe --------------------------------------------------------------------------------
def _run_with_closed_stdout(argv: list[str], tmp_path: Path) -> tuple[int, str]:
    """Run the console script with a stdout pipe whose reader is gone before it writes."""
    err_path = tmp_path / "stderr.txt"
    with err_path.open("w") as err:
        proc = subprocess.Popen([_script(), *argv], stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        proc.stdout.close()  # the only reader: every write from now on is EPIPE
        code = proc.wait(timeout=120)
    return code, err_path.read_text()


def test_closed_stdout_exits_quietly(small_csv: Path, tmp_path: Path) -> None:
    code, err = _run_with_closed_stdout(["estimate", str(small_csv), "-c", "phone"], tmp_path)
    assert code == cli.EXIT_PIPE
    assert err == ""
    code, err = _run_with_closed_stdout(["--help"], tmp_path)
    assert code == 0 and err == ""


def test_validate_into_head_is_quiet(tmp_path: Path) -> None:
    """`pd-hlr validate ... | head -2` through a real shell pipe: no traceback, no "bug"."""
    cache = tmp_path / "c"
    cmd = (
        f"set -o pipefail; '{_script()}' validate '{CONTACTS}' -c phone --default-region GB "
        f"--sandbox --no-progress --cache '{cache}' --out '{tmp_path / 'o.parquet'}' | head -2"
    )
    res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=180)
    assert res.returncode in (0, cli.EXIT_PIPE), res.stderr
    assert len(res.stdout.splitlines()) == 2 and res.stdout.startswith("HLR summary:")
    for noise in ("Traceback", "BrokenPipe", "bug", "error"):
        assert noise not in res.stderr
    assert (tmp_path / "o.parquet").exists()


# --- cache maintenance ----------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["stats", "compact", "clear"])
def test_cache_on_a_missing_folder_says_so(
    action: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "hlr_cahce"
    assert cli.main(["cache", action, "--cache", str(typo), "--yes"]) == cli.EXIT_INPUT
    line = _one_line_error(capsys.readouterr().err)
    assert "no such folder" in line and str(typo) in line
    assert not typo.exists(), "nothing was created"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert cli.main(["cache", action, "--cache", str(a_file), "--yes"]) == cli.EXIT_INPUT
    assert "not a folder" in _one_line_error(capsys.readouterr().err)


@pytest.fixture
def filled_cache(small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    cache = tmp_path / "c"
    argv = ["validate", str(small_csv), "-c", "phone", "--default-region", "GB", "--sandbox"]
    assert cli.main([*argv, "--cache", str(cache), "--out", str(tmp_path / "o.csv")]) == 0
    capsys.readouterr()
    assert HLRCache(cache).stats()["entries"] == DISTINCT
    return cache


def test_cache_clear_without_a_terminal_needs_yes(
    filled_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # under pytest, stdin is not a terminal
    assert cli.main(["cache", "clear", "--cache", str(filled_cache)]) == cli.EXIT_INPUT
    assert "--yes" in _one_line_error(capsys.readouterr().err)
    assert HLRCache(filled_cache).stats()["entries"] == DISTINCT, "nothing was removed"
    # the same through a real pipe on stdin
    res = subprocess.run(
        [_script(), "cache", "clear", "--cache", str(filled_cache)],
        input="y\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and "--yes" in res.stderr
    assert HLRCache(filled_cache).stats()["entries"] == DISTINCT


@pytest.mark.parametrize(("answer", "removed"), [("n\n", False), ("\n", False), ("y\n", True)])
def test_cache_clear_asks_on_a_terminal(filled_cache: Path, answer: str, removed: bool) -> None:
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [_script(), "cache", "clear", "--cache", str(filled_cache)],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(slave)
        os.write(master, answer.encode())
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
    assert proc.returncode == 0, err
    assert f"Delete all {DISTINCT} cached answers" in err and "[y/N]" in err
    left = HLRCache(filled_cache).stats()["entries"]
    if removed:
        assert left == 0 and "removed" in out
    else:
        assert left == DISTINCT and "nothing was removed" in err


def test_cache_clear_on_an_empty_folder_asks_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert cli.main(["cache", "clear", "--cache", str(tmp_path / "empty")]) == 0
    assert "nothing to remove" in capsys.readouterr().out


# --- the new errors' exit codes ---------------------------------------------------------------
def test_new_errors_map_to_documented_codes() -> None:
    from pd_hlr import errors

    cases = [
        (errors.ServiceUnavailableError("the API is down", kind="connect", resume_after=120.0),
         cli.EXIT_API, "120 s"),
        (errors.ServiceUnavailableError("circuit open", kind="503"), cli.EXIT_API, "circuit"),
        (errors.CacheNotWritableError("cannot write /ro", path="/ro"), cli.EXIT_INPUT,
         "--no-cache"),
        (errors.ColumnConflictError("x", columns=list("abcdefg")), cli.EXIT_INPUT,
         "(a, b, c, d, e and 2 more)"),
        (errors.BudgetExceededError("too many"), cli.EXIT_BUDGET, "too many"),
        (errors.InsufficientBalanceError("402"), cli.EXIT_BALANCE, "402"),
        (errors.AuthenticationError("401"), cli.EXIT_AUTH, "401"),
        (errors.TransportError("reset"), cli.EXIT_API, "reset"),
        (RuntimeError("boom"), cli.EXIT_BUG, "--debug"),
    ]
    for exc, code, needle in cases:
        got_code, message = cli._classify(exc, errors)
        assert (got_code, needle in message) == (code, True), (exc, message)
        assert "\n" not in message


# --- the sandbox command -----------------------------------------------------------------------
def _sandbox_parser() -> Any:
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices["sandbox"]


def test_sandbox_options_cover_every_fault_field() -> None:
    from pd_hlr.sandbox import Faults

    parser = _sandbox_parser()
    by_dest = {a.dest: a for a in parser._actions}
    for f in dataclasses.fields(Faults):
        action = by_dest[f"faults_{f.name}"]
        names = action.option_strings
        if any(n.startswith("--fault-") for n in names):
            # a probability: Faults itself refuses values above 1, and so does the option
            with pytest.raises(ValueError):
                Faults(**{f.name: 1.5})
            assert f"--fault-{f.name.replace('_', '-')}" in names
        else:
            assert names[0] == f"--{f.name.replace('_', '-')}"
    # the spellings the README has always shown still work
    for name in ("--fault-500", "--fault-503", "--fault-429", "--fault-drop", "--fault-slow"):
        assert name in parser._option_string_actions
    for name in ("--retry-after", "--slow-seconds", "--port", "--seed", "--host"):
        assert name in parser._option_string_actions


def test_sandbox_rejects_a_probability_above_one(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(["sandbox", "--port", "0", "--fault-503", "1.5"], capsys)
    assert "--fault-503" in err


def _start_sandbox(*options: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [_script(), "sandbox", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    while not lines or not lines[-1].startswith("Press Ctrl-C"):
        line = _readline(proc)
        assert line, proc.stderr.read() if proc.stderr else "sandbox ended"
        lines.append(line.rstrip("\n"))
    return proc, lines


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGINT) -> tuple[str, str]:
    proc.send_signal(sig)
    try:
        return proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:  # pragma: no cover
        proc.kill()
        return proc.communicate()


def test_sandbox_command_injects_faults_and_stops_on_sigterm() -> None:
    proc, lines = _start_sandbox("--token", "demo-xyz", "--fault-503", "1", "--retry-after", "0")
    try:
        url = lines[0].split("listening on ", 1)[1].split()[0]
        resp = requests.post(
            url + "/api/validate/phone",
            json={"phone": "+447400123456"},
            headers={"Authorization": "Bearer demo-xyz"},
            timeout=10,
        )
        assert resp.status_code == 503
    finally:
        out, err = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, err
    assert "stopped: 1 requests, 0 charged" in out
    assert any("error_503=1.0" in line for line in lines)
    shown = [line for line in [*lines, *out.splitlines()] if "demo-xyz" in line]
    assert shown and all(line.startswith("  try: curl") for line in shown), shown


def test_sandbox_keeps_serving_when_its_stdout_reader_goes(tmp_path: Path) -> None:
    """`pd-hlr sandbox | head -1`: the printing stops, quietly; the server does not."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    err_path = tmp_path / "err"
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [_script(), "sandbox", "--port", str(port), "--token", "t"],
            stdout=subprocess.PIPE,
            stderr=err,
        )
        assert proc.stdout is not None
        proc.stdout.close()
        try:
            for _ in range(600):  # until it listens (bounded: ~60 s)
                try:
                    resp = requests.post(
                        f"http://127.0.0.1:{port}/api/validate/phone",
                        json={"phone": "+447400123456"},
                        headers={"Authorization": "Bearer t"},
                        timeout=10,
                    )
                    break
                except requests.ConnectionError:
                    assert proc.poll() is None, "the sandbox ended"
                    time.sleep(0.1)
            assert resp.status_code == 200
        finally:
            _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0
    assert err_path.read_text() == ""


def test_glob_of_compressed_csv_goes_through_dask(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i, chunk in enumerate((PHONES[:5], PHONES[5:])):
        _write_compressed(pd.DataFrame({"phone": chunk}), tmp_path / f"part{i}.csv.gz")
    pattern = str(tmp_path / "part*.csv.gz")
    argv = ["validate", pattern, "-c", "phone", "--default-region", "GB", "--sandbox"]
    assert cli.main([*argv, "--no-cache", "--no-progress"]) == 0
    out = tmp_path / "part.hlr"
    assert f"wrote {len(PHONES)} rows to {out}/" in capsys.readouterr().err
    frame = pd.read_parquet(out)
    assert sorted(frame["phone"].fillna("")) == sorted(pd.Series(PHONES).replace("n/a", ""))
    assert frame["hlr_number"].nunique() == DISTINCT


def test_warnings_are_one_line_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def command(args: Any) -> int:
        import warnings

        warnings.warn("something to act on", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setitem(cli.COMMANDS, "cache", command)
    assert cli.main(["cache", "stats"]) == 0
    assert capsys.readouterr().err == "pd-hlr: warning: something to act on\n"


def test_estimate_on_a_folder_or_glob_matches_pandas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "calls"
    folder.mkdir()
    pd.DataFrame({"phone": PHONES[:5]}).to_parquet(folder / "a.parquet")
    pd.DataFrame({"phone": PHONES[5:]}).to_parquet(folder / "b.parquet")
    common = ["-c", "phone", "--default-region", "GB", "--no-cache"]
    got = []
    for argv in (
        [str(folder), "--engine", "pandas"],
        [str(folder)],
        [str(folder / "*.parquet")],
    ):
        assert cli.main(["estimate", *argv, *common, "--json"]) == 0, capsys.readouterr().err
        got.append(_estimate_lines(capsys.readouterr().out))
    assert got[0] == got[1] == got[2]
    assert got[0]["rows"] == str(len(PHONES)) and got[0]["distinct"] == str(DISTINCT)
    assert cli.main(["estimate", str(folder), *common, "--sheet", "1"]) == 2
    assert "--sheet" in _one_line_error(capsys.readouterr().err)


def test_every_option_has_a_flag() -> None:
    """validate takes every option of pd_hlr.settings.OPTIONS (client and cache as --sandbox /
    --base-url and --cache / --no-cache)."""
    from pd_hlr.settings import OPTIONS, RUN_OBJECTS

    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    dests = {a.dest for a in subparsers.choices["validate"]._actions}
    missing = [o.name for o in OPTIONS if o.name not in RUN_OBJECTS and o.name not in dests]
    assert not missing, f"options without a pd-hlr validate flag: {missing}"
    assert {"cache", "no_cache", "sandbox", "base_url"} <= dests


def test_no_retry_temporary_serves_temporary_answers(
    real_api: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pd_hlr import sandbox

    sb = real_api(faults=sandbox.Faults(temporary=1.0))
    src = tmp_path / "in.csv"
    pd.DataFrame({"phone": ["+447400123456", "+447400123457"]}).to_csv(src, index=False)
    run = ["validate", str(src), "-c", "phone", "--cache", str(tmp_path / "c"), "--force"]
    run += ["--out", str(tmp_path / "o.parquet")]
    assert cli.main(run) == 0
    assert sb.stats().total_charged == 2  # temporary answers are charged
    assert cli.main(run) == 0
    assert sb.stats().total_charged == 2, "by default, served for an hour (a re-run at once)"
    capsys.readouterr()
    est = ["estimate", str(src), "-c", "phone", "--cache", str(tmp_path / "c"), "--json"]
    assert cli.main([*est, "--retry-temporary", "0s"]) == 0  # the estimate counts the same
    assert json.loads(capsys.readouterr().out)["to_look_up"] == 2
    with pytest.raises(SystemExit) as info:
        cli.main([*run, "--retry-temporary", "3600"])
    assert info.value.code == 2 and "needs a unit" in capsys.readouterr().err
    assert cli.main([*run, "--retry-temporary", "0s"]) == 0
    assert sb.stats().total_charged == 4, "--retry-temporary 0s looks them up again at once"
    assert cli.main([*run, "--no-retry-temporary"]) == 0
    assert sb.stats().total_charged == 4, "--no-retry-temporary serves them from the cache"
    assert set(pd.read_parquet(tmp_path / "o.parquet")["hlr_source"]) == {"cache"}


# --- the run report at the end, and --json ----------------------------------------------------
def test_validate_prints_the_run_report_after_the_summary(
    small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["validate", str(small_csv), "-c", "phone", "--default-region", "GB", "--sandbox"]
    cache = ["--cache", str(tmp_path / "cache"), "--no-progress"]
    assert cli.main([*args, *cache, "--out", str(tmp_path / "a.parquet")]) == 0
    out = capsys.readouterr().out
    assert out.index("status: share of all") < out.index("pd-hlr run:")
    assert f"{DISTINCT:,} looked up" in out and "SANDBOX" in out
    # a second run is served from the cache, and the report says so
    assert cli.main([*args, *cache, "--out", str(tmp_path / "b.parquet")]) == 0
    assert f"{DISTINCT:,} cached, 0 looked up" in capsys.readouterr().out


def test_validate_and_estimate_json_is_one_object_on_stdout(
    small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = [str(small_csv), "-c", "phone", "--default-region", "GB", "--sandbox", "--json"]
    cache = ["--cache", str(tmp_path / "cache")]
    out_path = tmp_path / "out.parquet"
    assert cli.main(["estimate", *common, *cache]) == 0
    estimate = json.loads(capsys.readouterr().out)
    assert estimate["to_look_up"] == DISTINCT and estimate["cached"] == 0
    assert cli.main(["validate", *common, *cache, "--no-progress", "--out", str(out_path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["output"] == str(out_path)
    report = payload["report"]
    assert (report["looked_up"], report["cached"], report["sandbox"]) == (DISTINCT, 0, True)
    rows = {(r["section"], r["value"]): r["rows"] for r in payload["summary"]}
    assert sum(n for (section, _), n in rows.items() if section == "status") == len(PHONES)


def test_numbers_that_failed_after_retries_exit_6_with_the_output_written(
    real_api: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pd_hlr import sandbox

    sb = real_api(faults=sandbox.Faults(error_500=1.0))
    src = tmp_path / "two.csv"
    pd.DataFrame({"phone": PHONES[:2]}).to_csv(src, index=False)
    out = tmp_path / "out.parquet"
    args = ["validate", str(src), "-c", "phone", "--default-region", "GB", "--no-progress"]
    code = cli.main([*args, "--cache", str(tmp_path / "cache"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_API
    assert "2 numbers failed after retries" in err and "Traceback" not in err
    frame = pd.read_parquet(out)
    assert frame["hlr_source"].tolist() == ["error", "error"]
    assert sb.stats().total_charged == 0


def test_ambiguous_option_chooses_the_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "bare.csv"
    pd.DataFrame({"phone": ["2015550123"]}).to_csv(src, index=False)
    common = [str(src), "-c", "phone", "--sandbox", "--no-cache", "--no-progress", "--force"]
    out = tmp_path / "out.parquet"
    assert cli.main(["validate", *common, "--out", str(out)]) == 0
    assert pd.read_parquet(out)["hlr_source"].tolist() == ["ambiguous"]
    assert "1 ambiguous" in capsys.readouterr().out
    args = ["validate", *common, "--out", str(out), "--ambiguous", "national"]
    assert cli.main([*args, "--default-region", "US"]) == 0
    assert pd.read_parquet(out)["hlr_number"].tolist() == ["+12015550123"]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main(["validate", *common, "--ambiguous", "guess"])
    assert "invalid choice: 'guess'" in capsys.readouterr().err
