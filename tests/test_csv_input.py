"""European CSVs on the way in (issue 25): ``--sep``, ``--encoding``, a sniffed separator, a
charset fallback, and "did you mean" for a near-miss column name, in the CLI and in Python."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pd_hlr  # noqa: F401  (the accessor)
from pd_hlr import _io, cli

ROWS = [("1", "Zoë Müller", "+49 151 12345678"), ("2", "François Père", "+33 6 12 34 56 78"),
        ("3", "Ana Núñez", "+34 612 34 56 78")]


def _write(path: Path, sep: str, encoding: str, header: tuple[str, ...] = ("id", "name",
                                                                           "phone")) -> Path:
    lines = [sep.join(header), *(sep.join(r) for r in ROWS)]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def _estimate(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(["estimate", *args, "-c", "phone", "--no-cache", "--json"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_a_separator_other_than_the_suffixs_is_sniffed_with_a_note(
    sep: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path / "contacts.csv", sep, "utf-8")
    code, out, err = _estimate([str(src)], capsys)
    assert code == 0, err
    assert '"rows": 3' in out and '"distinct": 3' in out
    assert f"{sep!r}-separated" in err and "--sep" in err
    frame = _io.read_table(str(src), column="phone")
    assert list(frame.columns) == ["id", "name", "phone"]
    assert frame["name"].tolist() == [r[1] for r in ROWS]


def test_an_ambiguous_header_is_not_guessed(tmp_path: Path) -> None:
    # commas in the header: the suffix's separator; nothing is sniffed, nothing said
    src = tmp_path / "x.csv"
    src.write_text("id,note\n1,a;b|c\n")
    said: list[str] = []
    assert list(_io.read_table(str(src), notify=said.append).columns) == ["id", "note"]
    assert said == []
    # two candidates in the header: no guess
    assert _io.sniff_separator("a;b|phone\n1;2|3\n", ",") is None


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_a_file_that_is_not_utf8_falls_back_with_a_note(
    encoding: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path / "c.csv", ";", encoding)
    code, out, err = _estimate([str(src)], capsys)
    assert code == 0, err
    assert '"rows": 3' in out
    assert "is not UTF-8: read as cp1252" in err
    names = _io.read_table(str(src), column="phone")["name"].tolist()
    assert names == [r[1] for r in ROWS]  # é, ü, ñ as written (cp1252 agrees with Latin-1 here)


def test_utf8_with_a_byte_order_mark_reads_without_a_note(tmp_path: Path) -> None:
    src = _write(tmp_path / "c.csv", ",", "utf-8-sig")
    said: list[str] = []
    frame = _io.read_table(str(src), notify=said.append)
    assert list(frame.columns) == ["id", "name", "phone"] and said == []


def test_sep_and_encoding_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path / "c.txt", ";", "utf-16")
    code, out, err = _estimate([str(src), "--sep", ";", "--encoding", "utf16"], capsys)
    assert code == 0, err
    assert '"rows": 3' in out
    assert "not UTF-8" not in err and "separated" not in err
    # a wrong explicit encoding is an input error that names the option, not a traceback
    code, out, err = _estimate([str(src), "--sep", ";", "--encoding", "utf-8"], capsys)
    assert code == cli.EXIT_INPUT and "--encoding" in err and "Traceback" not in err
    # usage errors
    for bad in (["--sep", ";;"], ["--encoding", "klingon"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(["estimate", str(src), "-c", "phone", *bad])
        assert exit_.value.code == 2
    # tab by name
    tsv = _write(tmp_path / "c.dat.csv", "\t", "utf-8", ("id", "name,x", "phone"))
    code, out, err = _estimate([str(tsv), "--sep", "tab"], capsys)
    assert code == 0, err


def test_sep_on_a_parquet_input_is_refused(tmp_path: Path, capsys: Any) -> None:
    src = tmp_path / "x.parquet"
    pd.DataFrame({"phone": ["+447400123456"]}).to_parquet(src)
    code, _, err = _estimate([str(src), "--sep", ";"], capsys)
    assert code == cli.EXIT_INPUT and "--sep and --encoding apply to CSV/TSV" in err


@pytest.mark.parametrize("header", ["phone ", "Phone", " PHONE", "phnoe"])
def test_a_near_miss_column_gets_a_did_you_mean(
    header: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path / "c.csv", ",", "utf-8", ("id", "name", header))
    code, _, err = _estimate([str(src)], capsys)
    assert code == cli.EXIT_INPUT
    assert f"did you mean {header!r}?" in err
    frame = pd.read_csv(src, dtype=str)
    with pytest.raises(KeyError, match="did you mean"):
        frame.hlr.validate("phone", client=None, cache=False)


def test_a_header_read_as_one_column_names_the_separator(capsys: Any, tmp_path: Path) -> None:
    src = _write(tmp_path / "c.csv", ";", "utf-8")
    frame = pd.read_csv(src, dtype=str)  # pandas' default: one column "id;name;phone"
    with pytest.raises(KeyError, match=r"looks ';'-separated: pass sep=';'"):
        frame.hlr.estimate("phone", cache=False)
    code, _, err = _estimate([str(src), "--sep", ","], capsys)
    assert code == cli.EXIT_INPUT and "pass --sep ';'" in err
