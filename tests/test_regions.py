"""Country values → regions (`pd_hlr.regions`), and ``region_column`` on the row level: the
notes, the run report's counts, the warning, the CLI flag, and columns of any dtype.

Truth: libphonenumber's own tables (``SUPPORTED_REGIONS``, ``COUNTRY_CODE_TO_REGION_CODE``,
``country_code_for_region``) and names written here by hand, never pycountry's."""

from __future__ import annotations

import decimal
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pd_hlr  # noqa: F401
from pd_hlr import cli
from pd_hlr.normalize import normalize
from pd_hlr.regions import resolve_region, resolve_regions

#: Values real country columns hold, and the region each names (written by hand).
NAMES = {
    "United Kingdom": "GB", "UK": "GB", "u.k.": "GB", "Great Britain": "GB", "England": "GB",
    "Scotland": "GB", "GBR": "GB", "gb": "GB", "Germany": "DE", "Deutschland": "DE",
    "DEU": "DE", "deutschland ": "DE", "USA": "US", "U.S.A.": "US", "United States": "US",
    "United States of America": "US", "usa": "US", "España": "ES", "Espana": "ES",
    "Spain": "ES", "Italia": "IT", "Italy": "IT", "Österreich": "AT", "Osterreich": "AT",
    "Austria": "AT", "Schweiz": "CH", "Suisse": "CH", "Svizzera": "CH", "Switzerland": "CH",
    "Nederland": "NL", "Netherlands": "NL", "The Netherlands": "NL", "Holland": "NL",
    "France": "FR", "Ireland": "IE", "Éire": "IE", "India": "IN", "Australia": "AU",
    "Polska": "PL", "Sverige": "SE", "Danmark": "DK", "Norge": "NO", "Suomi": "FI",
    "Brasil": "BR", "Brazil": "BR", "日本": "JP", "Japan": "JP", "South Korea": "KR",
    "Korea, Republic of": "KR", "Russia": "RU", "Россия": "RU", "Czech Republic": "CZ",
    "Czechia": "CZ", "Turkey": "TR", "Viet Nam": "VN", "Vietnam": "VN", "Canada": "CA",
    "Mexico": "MX", "México": "MX", "New Zealand": "NZ", "South Africa": "ZA",
    "+44": "GB", "44": "GB", "0044": "GB", "+49": "DE", "+1": "US", "1": "US", "+353": "IE",
    " +33 ": "FR", "0091": "IN",
}
NOT_REGIONS = ["Narnia", "XX", "ZZ", "+999", "999", "+0", "0", "12345", "Europe", "phone", "EU"]


@pytest.mark.parametrize(("value", "region"), sorted(NAMES.items()))
def test_names_codes_and_calling_codes(value: str, region: str) -> None:
    assert resolve_region(value) == region


@pytest.mark.parametrize("value", NOT_REGIONS)
def test_what_names_no_region_is_none(value: str) -> None:
    assert resolve_region(value) is None


def test_every_region_libphonenumber_supports_by_its_code_in_any_case() -> None:
    for region in phonenumbers.SUPPORTED_REGIONS:
        for text in (region, region.lower(), f" {region.title()} "):
            assert resolve_region(text) == region, text


def test_every_calling_code_names_a_region_with_that_code() -> None:
    """+1 → a NANP region, +7 → RU or KZ, ...: national readings there give the same E.164."""
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        if not set(regions) & phonenumbers.SUPPORTED_REGIONS:
            continue  # non-geographic codes (+800, +882, ...): no region reads them nationally
        for value in (f"+{code}", str(code), f"00{code}", code, float(code)):
            got = resolve_region(value)
            assert got in regions, (value, got)
            assert phonenumbers.country_code_for_region(got) == code


def test_only_regions_libphonenumber_supports() -> None:
    assert resolve_region("Antarctica") is None  # ISO 3166 has it; libphonenumber does not
    assert resolve_region("AQ") is None


def test_a_column_is_resolved_once_per_distinct_value_and_counts_rows() -> None:
    col = resolve_regions(pd.Series(["DE", "DE", None, "Narnia", "", "n/a", 44, "Germany"]))
    assert col.regions == ["DE", None, None, None, "GB", "DE"]
    assert col.row_outcomes() == {"own": 4, "blank": 3, "unrecognised": 1}
    assert col.unrecognised() == ["Narnia"]
    assert resolve_region(decimal.Decimal("49")) == "DE"
    assert resolve_region(decimal.Decimal("NaN")) is None


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_the_resolver_never_raises_on_any_text(text: str) -> None:
    got = resolve_region(text)
    assert got is None or got in phonenumbers.SUPPORTED_REGIONS


ANY_VALUE = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.sampled_from(sorted(NAMES)),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.binary(max_size=8),
    st.decimals(allow_nan=True),
    st.lists(st.integers(), max_size=2),
    st.just(pd.NA),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(ANY_VALUE, min_size=1, max_size=12), st.sampled_from([None, "GB"]))
def test_a_region_column_of_any_values_never_crashes(values: list[Any], default: Any) -> None:
    cells = pd.Series(["07911 123456", "+49 30 901820", None, "030 901820"] * 3)[: len(values)]
    out = normalize(cells, regions=pd.Series(values, dtype=object), default_region=default)
    assert len(out) == len(cells)
    assert out.loc[cells.isna(), "hlr_source"].eq("missing").all()
    if len(values) > 1:  # written with +49: the same key whatever the row's region
        assert out["hlr_number"].iloc[1] == "+4930901820"


@pytest.mark.parametrize(
    "regions",
    [
        pd.Series(["GB", "DE", None, "US"], dtype="category"),
        pd.Series(["GB", "DE", None, "US"], dtype="string"),
        pd.Series([44, 49, None, 1], dtype="Int64"),
        pd.Series([44.0, 49.0, np.nan, 1.0]),
        pd.Series([44, 49, 33, 1]),
        pd.Series([None, None, None, None], dtype=object),
        pd.Series([b"GB", decimal.Decimal("49"), True, ["x"]], dtype=object),
    ],
    ids=["category", "string", "Int64", "float", "int", "all-null", "objects"],
)
def test_region_columns_of_every_dtype(regions: pd.Series) -> None:
    cells = pd.Series(["07911 123456", "030 901820", "07911 123456", "(212) 555-0123"])
    out = normalize(cells, regions=regions, default_region="FR")
    assert len(out) == 4
    if regions.notna().all() and regions.dtype != object:
        assert out["hlr_number"].tolist()[:2] == ["+447911123456", "+4930901820"]


@pytest.mark.parametrize(
    "regions",
    [
        pd.Series(["GB", "DE", None, "US"], dtype="category"),
        pd.Series([44, 49, None, 1], dtype="Int64"),
        pd.Series([44.0, 49.0, np.nan, 1.0]),
        pd.Series([None, None, None, None], dtype=object),
        pd.Series([b"GB", decimal.Decimal("49"), True, ["x"]], dtype=object),
    ],
    ids=["category", "Int64", "float", "all-null", "objects"],
)
def test_estimate_counts_every_row_whatever_the_region_dtype(regions: pd.Series) -> None:
    frame = pd.DataFrame(
        {"phone": ["07911 123456", "030 901820", "07911 123456", "(212) 555-0123"],
         "country": regions}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = frame.hlr.estimate("phone", region_column="country", cache=False)
    assert sum(est.regions.values()) == est.rows == 4
    truth_blank = int(regions.isna().sum())
    assert est.regions["blank"] == truth_blank


def test_regions_must_be_one_per_row() -> None:
    with pytest.raises(ValueError, match="one region value per row"):
        normalize(pd.Series(["07911 123456", "030 901820"]), regions=["GB"])


def test_fallback_rows_are_noted_and_counted(sb: Any, client_for: Any) -> None:
    frame = pd.DataFrame(
        {
            "phone": ["07911 123456", "07911 123456", "07911 123456", "030 901820", None],
            "country": ["UK", None, "Narnia", "Deutschland", "DE"],
        }
    )
    client = client_for(sb)
    with pytest.warns(UserWarning, match=r"1 value names no region .*'Narnia'.*read in GB"):
        out = frame.hlr.validate(
            "phone", region_column="country", default_region="GB", client=client, cache=False
        )
    assert out["to"].tolist()[:4] == ["+447911123456"] * 3 + ["+4930901820"]
    notes = out["hlr_note"].tolist()
    assert "no country in the row: read in GB (default_region)" in notes[1]
    assert "country 'Narnia' not recognised: read in GB (default_region)" in notes[2]
    assert "not recognised" not in notes[0] and "no country" not in notes[3]
    assert pd.isna(notes[4])  # a missing phone gets no region note
    report = out.hlr.report()
    assert report.regions == {"own": 3, "blank": 1, "unrecognised": 1}
    assert report.region_fallback == "GB"
    assert "1 blank and 1 unrecognised read in GB" in str(report)
    assert report.looked_up == 2  # one number in three rows, one lookup
    assert sb.stats().received == {"+447911123456": 1, "+4930901820": 1}


def test_without_default_region_unrecognised_rows_read_international_only(
    sb: Any, client_for: Any
) -> None:
    frame = pd.DataFrame(
        {"phone": ["07911 123456", "+44 7911 123456"], "country": ["Narnia", "Narnia"]}
    )
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        est = frame.hlr.estimate("phone", region_column="country", cache=False)
        out = frame.hlr.validate("phone", region_column="country", client=client_for(sb),
                                 cache=False)
    assert est.regions == {"own": 0, "blank": 0, "unrecognised": 2}
    assert est.region_fallback is None
    assert out["hlr_source"].tolist() == ["invalid", "api"]
    assert "national formats not read (no default_region)" in out["hlr_error"].iloc[0] + (
        out["hlr_note"].iloc[0] or ""
    )
    assert "read with no region" in str(out.hlr.report())


def test_a_missing_region_column_is_a_clear_error_before_anything_is_sent(
    sb: Any, client_for: Any
) -> None:
    frame = pd.DataFrame({"phone": ["07911 123456"]})
    with pytest.raises(KeyError, match="no column 'country'"):
        frame.hlr.validate("phone", region_column="country", client=client_for(sb), cache=False)
    with pytest.raises(TypeError, match="region_column names a column of a frame"):
        frame["phone"].hlr.validate(region_column="country", client=client_for(sb), cache=False)
    pl = pytest.importorskip("polars")
    import pd_hlr.polars  # noqa: F401

    with pytest.raises(TypeError, match="region_column names a column of a frame"):
        pl.Series("phone", ["07911 123456"]).hlr.estimate(region_column="country", cache=False)
    with pytest.raises(KeyError, match="no column 'country'"):
        pl.from_pandas(frame).hlr.estimate("phone", region_column="country", cache=False)
    with pytest.raises(TypeError, match="region_column must be a column label"):
        frame.hlr.estimate("phone", region_column=["country"], cache=False)
    assert sb.stats().requests == 0


def test_ambiguous_national_needs_only_the_region_column() -> None:
    frame = pd.DataFrame({"phone": ["2015550123", "2015550123"], "country": ["US", "Narnia"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = frame.hlr.estimate("phone", region_column="country", ambiguous="national",
                                 cache=False)
    # the US row is read nationally; the unrecognised one has no region: left ambiguous
    assert (est.distinct, est.ambiguous) == (1, 1)


def test_cli_region_column_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "contacts.csv"
    pd.DataFrame(
        {
            "phone": ["030 901820", "(212) 555-0123", "07911 123456", "07911 123456"],
            "country": ["Deutschland", "USA", "", "Narnia"],
        }
    ).to_csv(src, index=False)
    out = tmp_path / "out.parquet"
    common = [str(src), "-c", "phone", "--region-column", "country", "--default-region", "GB"]
    assert cli.main(["validate", *common, "--sandbox", "--no-cache", "--out", str(out)]) == 0
    text = capsys.readouterr()
    assert "2 rows read in their own country, 1 blank and 1 unrecognised read in GB" in (
        text.out + text.err
    )
    result = pd.read_parquet(out)
    assert result["to"].tolist() == ["+4930901820", "+12125550123"] + ["+447911123456"] * 2
    assert cli.main(["estimate", *common, "--sandbox", "--no-cache", "--json"]) == 0
    est = json.loads(capsys.readouterr().out)
    assert (est["region_own"], est["region_blank"], est["region_unrecognised"]) == (2, 1, 1)
    assert est["region_fallback"] == "GB"
    assert cli.main(["estimate", str(src), "-c", "phone", "--region-column", "land",
                     "--no-cache"]) != 0
    assert "no column 'land'" in capsys.readouterr().err


def test_a_number_written_for_another_country_and_not_valid_is_withheld_in_that_row() -> None:
    # the sample's "+44 1…" cells: possible, not valid UK numbers (libphonenumber says so)
    sample = pd.read_csv(Path(__file__).resolve().parents[1] / "data" / "contacts.csv", dtype=str)
    def possible_not_valid(cell: str) -> bool:
        number = phonenumbers.parse(cell)
        return phonenumbers.is_possible_number(number) and not phonenumbers.is_valid_number(number)

    cells = sorted({c for c in sample["phone"].dropna() if c.startswith("+44 1")})
    cells = [c for c in cells if possible_not_valid(c)]
    assert len(cells) >= 10
    n = len(cells)
    frame = pd.DataFrame({"phone": cells * 4, "country": ["DE"] * n + ["GB"] * n + [None] * n
                          + ["Narnia"] * n})
    for strict, foreign_sent in ((None, False), (False, True), (True, False)):
        out = normalize(frame["phone"], regions=frame["country"], default_region="GB",
                        strict=strict)
        sent = out["hlr_number"].notna().to_numpy().reshape(4, n)
        assert (sent[0] == foreign_sent).all()  # a row of DE
        assert (sent[1:] == (strict is not True)).all()  # GB's own rows and the fallbacks
        if not foreign_sent:
            errors = out["hlr_error"].iloc[:n]
            assert errors.str.contains("a row of DE").all()
            assert errors.str.contains("strict=False sends it" if strict is None else ".").all()
