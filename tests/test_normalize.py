"""Tests for pd_hlr.normalize: formats, input kinds, verdicts, index, and properties."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from pd_hlr import normalize as nz
from pd_hlr.normalize import (
    LOCAL_VERDICTS,
    NORMALIZED_COLUMNS,
    NOTE_NOT_VALID,
    normalize,
    normalize_cells,
)

from .test_numbering import vector_threshold

E164_SHAPE = re.compile(r"^\+[1-9]\d{7,14}$")
TYPE_NAMES = {
    getattr(PhoneNumberType, name): name.lower()
    for name in (
        "FIXED_LINE",
        "MOBILE",
        "FIXED_LINE_OR_MOBILE",
        "TOLL_FREE",
        "PREMIUM_RATE",
        "SHARED_COST",
        "VOIP",
        "PERSONAL_NUMBER",
        "PAGER",
        "UAN",
        "VOICEMAIL",
        "UNKNOWN",
    )
}
STRING = pd.StringDtype("pyarrow")


def one(value: object, **kwargs: object) -> dict[str, object]:
    """Normalise one cell and return its row as a dict (<NA> → None)."""
    out = normalize(pd.Series([value], dtype=object), **kwargs)
    return {k: (None if v is pd.NA else v) for k, v in out.iloc[0].items()}


# --------------------------------------------------------------------------------------------
# Shape of the output
# --------------------------------------------------------------------------------------------


def test_columns_order_and_dtypes() -> None:
    out = normalize(pd.Series(["+447400123456", None, "abc"]))
    assert tuple(out.columns) == NORMALIZED_COLUMNS
    assert all(out[c].dtype == STRING for c in out.columns)
    assert out["hlr_source"].tolist() == [pd.NA, "missing", "invalid"]


@pytest.mark.parametrize(
    ("cell", "number", "region", "ntype"),
    [
        ("+441302778473", "+441302778473", "GB", "fixed_line"),
        ("+447400123456", "+447400123456", "GB", "mobile"),
        ("+12015550123", "+12015550123", "US", "fixed_line_or_mobile"),
        ("+4930123456", "+4930123456", "DE", "fixed_line"),
        ("+4915112345678", "+4915112345678", "DE", "mobile"),
        ("+448001234567", "+448001234567", "GB", "toll_free"),
        ("+449012345678", "+449012345678", "GB", "premium_rate"),
        ("+447624123456", "+447624123456", "IM", "mobile"),  # shared +44, own region
        ("+390612345678", "+390612345678", "IT", "fixed_line"),  # Italian leading zero
        ("+18005550123", "+18005550123", "US", "toll_free"),
    ],
)
def test_e164_values(cell: str, number: str, region: str, ntype: str) -> None:
    row = one(cell)
    assert row == {
        "hlr_number": number,
        "hlr_source": None,
        "hlr_error": None,
        "hlr_note": None,
        "hlr_region": region,
        "hlr_number_type": ntype,
    }


@pytest.mark.parametrize(
    ("cell", "region", "number"),
    [
        ("+44 1302 778473", None, "+441302778473"),
        ("+44-1302-778473", None, "+441302778473"),
        ("+44.1302.778473", None, "+441302778473"),
        ("+44 (1302) 778473", None, "+441302778473"),
        ("+44 (0) 1302 778473", None, "+441302778473"),  # trunk 0 in brackets
        ("+4401302778473", None, "+441302778473"),
        ("0044 1302 778473", None, "+441302778473"),
        ("0044 7400 123456", "US", "+447400123456"),
        ("011 44 7400 123456", "US", "+447400123456"),
        ("011 44 7400 123456", "CA", "+447400123456"),
        ("01302 778473", "GB", "+441302778473"),
        ("(01302) 778473", "GB", "+441302778473"),
        ("07400 123456", "gb", "+447400123456"),
        ("(201) 555-0123", "US", "+12015550123"),
        ("201.555.0123", "US", "+12015550123"),
        ("1-201-555-0123", "US", "+12015550123"),
        ("030 123456", "DE", "+4930123456"),
        ("0011 44 7400 123456", "AU", "+447400123456"),  # AU's own international prefix
        ("  +44 7400 123456  ", None, "+447400123456"),
        ("+44\u00a07400\u2009123456", None, "+447400123456"),  # no-break / thin spaces
        ("+44–7400–123456", None, "+447400123456"),  # en dashes
        ("＋４４ ７４００ １２３４５６", None, "+447400123456"),  # full-width
        ("tel:+441302778473", None, "+441302778473"),
    ],
)
def test_formats(cell: str, region: str | None, number: str) -> None:
    row = one(cell, default_region=region)
    assert row["hlr_number"] == number
    assert row["hlr_source"] is None and row["hlr_error"] is None


def test_national_format_is_noted() -> None:
    row = one("01302 778473", default_region="GB")
    assert row["hlr_note"] == "national format read as GB"
    assert row["hlr_region"] == "GB" and row["hlr_number_type"] == "fixed_line"


def test_national_without_region_is_invalid() -> None:
    row = one("01302 778473")
    assert row["hlr_source"] == "invalid"
    assert row["hlr_error"] == "national format (leading 0) and no default_region"
    assert row["hlr_number"] is None
    row = one("(479) 555-0123")
    assert (row["hlr_source"], row["hlr_error"]) == (
        "invalid",
        "national format (brackets) and no default_region",
    )


@pytest.mark.parametrize(
    ("cell", "ext"),
    [
        ("+441302778473 ext. 123", "123"),
        ("+441302778473 ext 123", "123"),
        ("+44 1302 778473 extension 123", "123"),
        ("+441302778473 x123", "123"),
        ("+441302778473x123", "123"),
        ("+441302778473 #123", "123"),
        ("+441302778473;ext=123", "123"),
        ("01302 778473 EXT. 9", "9"),
    ],
)
def test_extensions_dropped_and_noted(cell: str, ext: str) -> None:
    row = one(cell, default_region="GB")
    assert row["hlr_number"] == "+441302778473"
    assert f"extension {ext} dropped" in row["hlr_note"]


@pytest.mark.parametrize(
    ("cell", "error"),
    [
        ("abc", "contains letters"),
        ("1-800-FLOWERS", nz.ERR_VANITY),  # vanity letters are not converted
        ("+44 7400 12345O", "contains letters"),  # letter O for zero
        ("call me", "contains letters"),
        ("*123#", "not a phone number ('*' in it)"),
        ("+44 7400 123456, +44 7400 654321", "not a phone number (',' in it)"),
        ("+999 1234 5678", "unknown country calling code"),
        ("+44 130", "not a possible number for GB (too short)"),
        ("+44 1302 7784", "not a possible number for GB (local number only, area code missing)"),
        ("+44 1302 7784731234", "not a possible number for GB (too long)"),
        ("+1 201 555 012", "not a possible number for US (too short)"),
    ],
)
def test_invalid_with_reason(cell: str, error: str) -> None:
    row = one(cell, default_region="GB")
    assert row["hlr_source"] == "invalid"
    assert row["hlr_error"] == error
    assert row["hlr_number"] is None


@pytest.mark.parametrize("cell", [None, np.nan, pd.NA, "", "   ", "\t", "-", "()", "nan", "None"])
def test_missing(cell: object) -> None:
    row = one(cell)
    assert row["hlr_source"] == "missing"
    assert row["hlr_number"] is None and row["hlr_error"] == "no phone number in the cell"


def test_possible_but_not_valid_is_sent_with_note_unless_strict() -> None:
    row = one("+12005550123")  # NANPA length, unassigned area code 200
    assert row["hlr_number"] == "+12005550123"
    assert row["hlr_source"] is None
    assert row["hlr_note"] == NOTE_NOT_VALID
    assert row["hlr_number_type"] == "unknown"
    strict = one("+12005550123", strict=True)
    assert strict["hlr_source"] == "invalid"
    assert strict["hlr_error"] == "not a valid number per libphonenumber metadata"
    assert strict["hlr_number"] is None
    assert one("+447400123456", strict=True)["hlr_number"] == "+447400123456"


def test_api_length_limit() -> None:
    short = one("+6834002")  # Niue: valid, but 8 characters
    assert short["hlr_source"] == "invalid"
    assert "the API accepts 10 to 15" in short["hlr_error"]
    long = one("+4930123456789012")  # valid DE, 17 characters
    assert long["hlr_source"] == "invalid"
    assert "17 characters" in long["hlr_error"]


def test_only_mobile() -> None:
    cells = ["+441302778473", "+447400123456", "+12015550123", "+448001234567", "+12005550123"]
    out = normalize(pd.Series(cells), only_mobile=True)
    assert out["hlr_source"].tolist() == [
        pd.NA if s is None else s for s in ["skipped", None, None, "skipped", None]
    ]
    assert out["hlr_error"].iloc[0] == "not a mobile number (fixed_line)"
    assert out["hlr_error"].iloc[3] == "not a mobile number (toll_free)"
    assert out["hlr_number"].tolist()[1:3] == ["+447400123456", "+12015550123"]
    assert out["hlr_number_type"].iloc[0] == "fixed_line"  # facts kept for skipped rows


def test_region_validation() -> None:
    with pytest.raises(ValueError, match="default_region"):
        normalize(pd.Series(["1"]), default_region="XX")
    with pytest.raises(TypeError):
        normalize(pd.DataFrame({"a": ["1"]}))


# --------------------------------------------------------------------------------------------
# Input kinds
# --------------------------------------------------------------------------------------------


def test_python_str_and_list() -> None:
    assert normalize("+44 7400 123456")["hlr_number"].tolist() == ["+447400123456"]
    assert normalize(["+447400123456", None])["hlr_source"].tolist() == [pd.NA, "missing"]


@pytest.mark.parametrize("dtype", [object, "str", "string", STRING, "category"])
def test_string_kinds(dtype: object) -> None:
    s = pd.Series(["+44 7400 123456", None, "01302 778473", "+44 7400 123456"], dtype=dtype)
    out = normalize(s, default_region="GB")
    assert out["hlr_number"].tolist() == [
        "+447400123456",
        pd.NA,
        "+441302778473",
        "+447400123456",
    ]
    assert out["hlr_source"].tolist() == [pd.NA, "missing", pd.NA, pd.NA]


def test_categorical_with_unused_categories() -> None:
    cat = pd.Categorical(["+447400123456", None], categories=["junk", "+447400123456", "x"])
    out = normalize(pd.Series(cat))
    assert out["hlr_number"].tolist() == ["+447400123456", pd.NA]


def test_int_series() -> None:
    s = pd.Series([441302778473, 447400123456, 12015550123, 1302778473, -4, 0])
    out = normalize(s)
    assert out["hlr_number"].tolist()[:3] == ["+441302778473", "+447400123456", "+12015550123"]
    assert out["hlr_note"].iloc[0] == "digits without '+' read as international"
    # no region: 1302778473 is read as +1 302 778473 (too short)
    assert out["hlr_source"].tolist()[3:] == ["invalid"] * 3
    with_region = normalize(s, default_region="GB")
    assert with_region["hlr_number"].iloc[3] == "+441302778473"  # lost leading 0
    assert with_region["hlr_note"].iloc[3] == "national format read as GB"


def test_bare_digits_that_also_read_as_a_national_number_are_ambiguous() -> None:
    s = pd.Series([2015550123, 441302778473])
    out = normalize(s)  # +1 201-555-0123 written the US way, or +20 (Egypt)?
    assert out["hlr_source"].tolist() == ["ambiguous", pd.NA]
    assert out["hlr_error"].iloc[0] == (  # every plausible reading is named
        "ambiguous: +1 201-555-0123 (national US), +52 201 555 0123 (national MX), "
        "+20 15 550123 (international) or 1 more reading"
    )
    assert out["hlr_number"].tolist() == [pd.NA, "+441302778473"]
    us = normalize(s, default_region="US")  # a US list: its own national writing wins
    assert us["hlr_number"].tolist() == ["+12015550123", "+441302778473"]
    guess = normalize(s, ambiguous="international")
    assert guess["hlr_number"].tolist() == ["+2015550123", "+441302778473"]
    assert "read as ambiguous='international' says" in guess["hlr_note"].iloc[0]


def test_nullable_int() -> None:
    s = pd.Series([441302778473, None, 447400123456], dtype="Int64")
    out = normalize(s)
    assert out["hlr_number"].tolist() == ["+441302778473", pd.NA, "+447400123456"]
    assert out["hlr_source"].tolist() == [pd.NA, "missing", pd.NA]


def test_float_series() -> None:
    s = pd.Series([4.41302778473e11, np.nan, 447400123456.0, 1.5, -1.0, np.inf, 1e30])
    out = normalize(s)
    assert out["hlr_number"].tolist()[:3] == ["+441302778473", pd.NA, "+447400123456"]
    assert out["hlr_source"].tolist() == [pd.NA, "missing", pd.NA] + ["invalid"] * 4
    assert out["hlr_error"].iloc[3] == "not a phone number (not a whole number)"


def test_object_mixed_kinds() -> None:
    s = pd.Series(["+447400123456", 441302778473, 4.41302778473e11, None, True, np.nan])
    out = normalize(s)
    assert out["hlr_number"].tolist()[:3] == ["+447400123456", "+441302778473", "+441302778473"]
    assert out["hlr_source"].tolist()[3:] == ["missing", "invalid", "missing"]


def test_bool_series_is_invalid() -> None:
    out = normalize(pd.Series([True, False]))
    assert out["hlr_source"].tolist() == ["invalid", "invalid"]


@pytest.mark.parametrize(
    "dtype", [object, "str", "string", "Int64", "float64", "int64", "category"]
)
def test_empty_series(dtype: object) -> None:
    out = normalize(pd.Series([], dtype=dtype))
    assert len(out) == 0
    assert tuple(out.columns) == NORMALIZED_COLUMNS
    assert all(out[c].dtype == STRING for c in out.columns)


@pytest.mark.parametrize("dtype", [object, "str", "float64", "Int64", "category"])
def test_all_null_series(dtype: object) -> None:
    s = pd.Series([None, None, None], dtype=dtype)
    out = normalize(s)
    assert out["hlr_source"].tolist() == ["missing"] * 3
    assert out["hlr_number"].isna().all()


# --------------------------------------------------------------------------------------------
# Index and purity
# --------------------------------------------------------------------------------------------


def test_non_unique_index_kept() -> None:
    s = pd.Series(["+447400123456", "abc", "+447400123456"], index=[5, 5, 1])
    out = normalize(s)
    assert out.index.equals(s.index)
    assert out["hlr_number"].tolist() == ["+447400123456", pd.NA, "+447400123456"]


def test_multiindex_kept() -> None:
    idx = pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 1)], names=["k", "n"])
    s = pd.Series(["+447400123456", None, "07400 123456"], index=idx)
    out = normalize(s, default_region="GB")
    assert out.index.equals(idx) and out.index.names == ["k", "n"]
    assert out.loc[("b", 1), "hlr_number"] == "+447400123456"


def test_input_not_mutated() -> None:
    s = pd.Series(["+44 7400 123456", None, 4.41302778473e11, "01302 778473"], index=[3, 2, 2, 9])
    before = s.copy(deep=True)
    normalize(s, default_region="GB")
    pd.testing.assert_series_equal(s, before)
    cat = pd.Series(["+44 7400 123456", None], dtype="category")
    cat_before = cat.copy(deep=True)
    normalize(cat)
    pd.testing.assert_series_equal(cat, cat_before)


def test_dedup_many_rows_few_uniques() -> None:
    s = pd.Series(["+44 7400 123456", "07400123456", "+447400123456", "0044 7400 123456"] * 500)
    out = normalize(s, default_region="GB")
    assert out["hlr_number"].nunique() == 1
    assert len(out) == 2000


# --------------------------------------------------------------------------------------------
# msisdn=False
# --------------------------------------------------------------------------------------------


def test_msisdn_false_keeps_cleaned_string() -> None:
    s = pd.Series(
        ["+4444 1302 778473", "0044 7400 123456", "07400 123456", "abc", "", "+44 7400 123456"]
    )
    out = normalize(s, msisdn=False)
    assert out["hlr_number"].tolist() == [
        "+44441302778473",  # duplicated country code kept
        "+447400123456",
        "07400123456",
        pd.NA,
        pd.NA,
        "+447400123456",
    ]
    assert out["hlr_source"].tolist() == [pd.NA, pd.NA, pd.NA, "invalid", "missing", pd.NA]
    assert out["hlr_error"].iloc[3] == "contains letters"
    assert out["hlr_region"].tolist()[1:3] == ["GB", pd.NA]
    assert out["hlr_number_type"].iloc[1] == "mobile"


def test_msisdn_false_length_and_only_mobile() -> None:
    out = normalize(pd.Series(["+441302", "+441302778473"]), msisdn=False, only_mobile=True)
    assert out["hlr_source"].tolist() == ["invalid", "skipped"]
    assert out["hlr_error"].iloc[0] == (
        "+441302 has 7 characters; the API accepts 10 to 15 characters"
    )


# --------------------------------------------------------------------------------------------
# Fast (vectorised) and slow (phonenumbers) classification agree
# --------------------------------------------------------------------------------------------


def _example_numbers() -> list[str]:
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for t in range(11):
            num = phonenumbers.example_number_for_type(region, t)
            if num is not None:
                out.append(phonenumbers.format_number(num, PhoneNumberFormat.E164))
    for cc in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        num = phonenumbers.example_number_for_non_geo_entity(cc)
        if num is not None:
            out.append(phonenumbers.format_number(num, PhoneNumberFormat.E164))
    return sorted(set(out))


def _reference(cell: str) -> tuple[object, object, object]:
    """(number, region, type) straight from phonenumbers, with normalize's send rule."""
    try:
        num = phonenumbers.parse(cell)
    except phonenumbers.NumberParseException:
        return None, None, None
    e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)
    region = phonenumbers.region_code_for_number(num)
    region = None if region in (None, "001") else region
    ntype = TYPE_NAMES[phonenumbers.number_type(num)]
    valid = phonenumbers.is_valid_number(num)
    possible = phonenumbers.is_possible_number_with_reason(num) == 0
    sent = (valid or possible) and 10 <= len(e164) <= 15
    return (e164 if sent else None), region, ntype


def _ours(cells: list[str]) -> list[tuple[object, object, object]]:
    out = normalize(pd.Series(cells))
    rows = out[["hlr_number", "hlr_region", "hlr_number_type"]].astype(object)
    rows = rows.where(rows.notna(), None)
    return [tuple(r) for r in rows.itertuples(index=False)]


@pytest.mark.parametrize("threshold", [0, 10**9])
def test_example_numbers_of_every_region_agree(threshold: int) -> None:
    cells = _example_numbers()
    with vector_threshold(threshold):
        ours = _ours(cells)
    expected = [_reference(c) for c in cells]
    assert ours == expected


# --------------------------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------------------------

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
TYPES = [
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.VOIP,
    PhoneNumberType.PREMIUM_RATE,
]


@st.composite
def valid_numbers(draw: st.DrawFn) -> tuple[phonenumbers.PhoneNumber, str]:
    """A valid number (an example number with its last digits replaced) and its region."""
    region = draw(st.sampled_from(REGIONS))
    example = phonenumbers.example_number_for_type(region, draw(st.sampled_from(TYPES)))
    assume(example is not None)
    nsn = phonenumbers.national_significant_number(example)
    k = draw(st.integers(0, min(4, len(nsn) - 1)))
    tail = draw(st.text("0123456789", min_size=k, max_size=k))
    nsn = nsn[: len(nsn) - k] + tail
    num = phonenumbers.parse(f"+{example.country_code}{nsn}")
    assume(phonenumbers.is_valid_number(num))
    assume(phonenumbers.region_code_for_number(num) == region)
    return num, region


def _separate(text: str, seps: list[str]) -> str:
    """Replace the spaces of a formatted number with separators drawn by hypothesis."""
    parts = text.split(" ")
    out = parts[0]
    for i, part in enumerate(parts[1:]):
        out += seps[i % len(seps)] + part
    return out


@settings(max_examples=300, deadline=None)
@given(
    valid_numbers(),
    st.sampled_from(["E164", "INTERNATIONAL", "NATIONAL"]),
    st.lists(st.sampled_from([" ", "-", ".", "", "  ", " - "]), min_size=1, max_size=4),
)
def test_property_formats_roundtrip(
    case: tuple[phonenumbers.PhoneNumber, str], fmt: str, seps: list[str]
) -> None:
    num, region = case
    e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)
    assume(10 <= len(e164) <= 15)  # the API's limit; outside it normalize says invalid
    text = _separate(phonenumbers.format_number(num, getattr(PhoneNumberFormat, fmt)), seps)
    default_region = region if fmt == "NATIONAL" else None
    # only claim what phonenumbers itself can read back
    try:
        back = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        assume(False)
    assume(phonenumbers.format_number(back, PhoneNumberFormat.E164) == e164)
    assume(not re.search(r"[^\d\s+\-.()]", text))  # e.g. carrier-code formats with letters
    row = one(text, default_region=default_region)
    assert row["hlr_number"] == e164, (text, row)
    assert row["hlr_source"] is None


CELLS = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.integers(-(10**16), 10**16),
    st.floats(allow_nan=True, allow_infinity=True),
    st.from_regex(r"\+?[0-9 \-()]{0,18}", fullmatch=True),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(CELLS, max_size=30), st.data())
def test_property_length_and_index(cells: list[object], data: st.DataObject) -> None:
    index = data.draw(st.lists(st.integers(0, 3), min_size=len(cells), max_size=len(cells)))
    s = pd.Series(cells, index=index, dtype=object)
    before = s.copy()
    out = normalize(s, default_region=data.draw(st.sampled_from([None, "GB", "US"])))
    assert len(out) == len(s)
    assert out.index.equals(s.index)
    pd.testing.assert_series_equal(s, before)


@settings(max_examples=100, deadline=None)
@given(st.lists(CELLS, max_size=12), st.sampled_from([None, "GB", "US"]))
def test_property_cells_are_read_alone(cells: list[object], region: str | None) -> None:
    """normalize_cells: each row's line is what its cell alone normalises to, whatever else
    the column holds (so the per-cell path cannot mix cells up)."""
    codes, lines = normalize_cells(pd.Series(cells, dtype=object), default_region=region)
    assert len(codes) == len(cells) and len(lines) == len(set(codes) | {len(lines) - 1})
    for cell, code in zip(cells, codes, strict=True):
        alone = normalize(pd.Series([cell], dtype=object), default_region=region)
        assert lines.iloc[code].tolist() == alone.iloc[0].tolist(), cell


def _check_row_invariants(row: dict[str, object]) -> None:
    if row["hlr_source"] is None:
        assert isinstance(row["hlr_number"], str) and E164_SHAPE.match(row["hlr_number"])
        assert row["hlr_error"] is None
    else:
        assert row["hlr_number"] is None
        assert row["hlr_source"] in LOCAL_VERDICTS
        assert (row["hlr_source"] == "missing") or isinstance(row["hlr_error"], str)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(), min_size=1, max_size=20),
    st.sampled_from([None, "GB", "US", "DE", "AU"]),
    st.booleans(),
    st.booleans(),
)
def test_property_never_raises_on_text(
    cells: list[str], region: str | None, strict: bool, only_mobile: bool
) -> None:
    out = normalize(pd.Series(cells), default_region=region, strict=strict, only_mobile=only_mobile)
    for row in out.astype(object).where(out.notna(), None).to_dict("records"):
        _check_row_invariants(row)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.from_regex(r"\+[1-9][0-9 \-]{6,18}", fullmatch=True), max_size=30))
def test_property_never_raises_on_digit_soup(cells: list[str]) -> None:
    out = normalize(pd.Series(cells, dtype=object))
    for row in out.astype(object).where(out.notna(), None).to_dict("records"):
        _check_row_invariants(row)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    st.lists(
        st.one_of(
            valid_numbers().map(lambda c: phonenumbers.format_number(c[0], PhoneNumberFormat.E164)),
            st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True),
        ),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from([0, 10**9]),
)
def test_property_fast_path_matches_phonenumbers(cells: list[str], threshold: int) -> None:
    with vector_threshold(threshold):
        ours = _ours(cells)
    assert ours == [_reference(c) for c in cells]


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"0[1-9][0-9]{5,11}", fullmatch=True),
    st.sampled_from(["GB", "DE", "FR", "IT", "AU", "JP", "AR", "BR", "RU", "NL"]),
)
def test_property_national_matches_phonenumbers(cell: str, region: str) -> None:
    row = one(cell, default_region=region)
    lenient = one(cell, default_region=region, strict=False)
    try:
        num = phonenumbers.parse(cell, region)
    except phonenumbers.NumberParseException:
        assert row["hlr_source"] == lenient["hlr_source"] == "invalid"
        return
    e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)
    fits = 10 <= len(e164) <= 15
    valid = phonenumbers.is_valid_number(num)
    possible = phonenumbers.is_possible_number_with_reason(num) == 0
    # a national reading is sent when valid; strict=False also sends a possible one
    assert row["hlr_number"] == (e164 if valid and fits else None)
    assert lenient["hlr_number"] == (e164 if (valid or possible) and fits else None)
    if possible and fits and not valid:
        assert row["hlr_source"] == "invalid" and e164 in re.sub(r"[ -]", "", row["hlr_error"])


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("447106708886.0", "+447106708886"),
        ("4.47106708886e11", "+447106708886"),
        ("3.4619235421E+10", "+34619235421"),
        # a trailing ".0" must never be read as a digit: that would pay for a wrong number
        ("61202884844.0", "+61202884844"),
        (" 14153127339.00 ", "+14153127339"),
    ],
)
def test_float_text_from_spreadsheets_is_read_as_its_digits(cell: str, expected: str) -> None:
    out = normalize(pd.Series([cell, float(cell)]), default_region="GB")
    assert out["hlr_number"].tolist() == [expected, expected]
    assert "read as its digits" in out["hlr_note"].iloc[0]


def test_float_text_that_is_not_whole_is_invalid() -> None:
    out = normalize(pd.Series(["4.47106708886123e2"]), default_region="GB")
    assert out["hlr_source"].tolist() == ["invalid"]


# --------------------------------------------------------------------------------------------
# The decision table: the docs (docs/guide/normalisation.md), DECISION_TABLE and the issue's cases
# --------------------------------------------------------------------------------------------

README = Path(__file__).resolve().parents[1] / "docs" / "guide" / "normalisation.md"
TABLE_RE = re.compile(
    r"(<!-- normalize-table:start -->\n)(.*?)(<!-- normalize-table:end -->)", re.S
)


def test_readme_decision_table_is_generated_from_the_code() -> None:
    """The docs' table (docs/guide/normalisation.md, once the README's) is
    `decision_table_markdown()`, whose outcomes normalize computes.
    ``PD_HLR_UPDATE_README=1`` rewrites it."""
    text = README.read_text()
    match = TABLE_RE.search(text)
    assert match, f"normalize-table markers missing from {README}"
    table = nz.decision_table_markdown()
    if os.environ.get("PD_HLR_UPDATE_README") == "1":
        README.write_text(text[: match.start(2)] + table + text[match.end(2) :])
        return
    assert match.group(2) == table


def test_decision_table_examples_run_and_cover_the_shapes() -> None:
    table = nz.decision_table_markdown()
    assert table.count("\n") == len(nz.DECISION_TABLE) + 2
    shapes = " ".join(case.shape for case in nz.DECISION_TABLE)
    for word in (
        "E.164",
        "00",
        "brackets",
        "trunk 0",
        "bare digits",
        "float",
        "scientific",
        "full-width",
        "Arabic-Indic",
        "label",
        "extension",
        "quotes",
        "vanity",
    ):
        assert word in shapes


# The issue's table: cell, default_region, the key (or the verdict) it must get.
ISSUE_CASES = [
    ("4.47911E+11", None, "invalid"),
    ("4.47911E+11", "DE", "invalid"),
    ("(479) 555-0123", None, "invalid"),
    ("447911123456", None, "+447911123456"),
    ("2015550123", None, "ambiguous"),
    ("15526018159", None, "ambiguous"),
    # a national reading that is not valid there, and a valid international one (issue 23)
    ("5977443142", "US", "invalid"),
    ("(358)956-9256", "US", "invalid"),
    ("491701234567", "DE", "+491701234567"),
    ("'+44 7911 123456", None, "+447911123456"),
    ("+44 7911 123456;", None, "+447911123456"),
    ('"+44 7911 123456"', None, "+447911123456"),
    ("++44 7911 123456", None, "+447911123456"),
    ("Mobile: +44 7911 123456", None, "+447911123456"),
    ("+44 7911 123456 ext: 12", None, "+447911123456"),
    ("+44 7911 123456 доб. 12", None, "+447911123456"),
    ("００６１４１２３４６５８６", "AU", "+61412346586"),
    ("0066-33-123456", "JP", "+81006633123456"),
    ("0049 7484", "AU", "invalid"),
    ("0207946.0000", "GB", "+442079460000"),
    (["+44 7911 123456"], None, "invalid"),
    ({"phone": "+44 7911 123456"}, "GB", "invalid"),
    ({1, 2}, None, "invalid"),
    (bytearray(b"+447911123456"), None, "invalid"),
    (Decimal("sNaN"), None, "invalid"),
    ("+44\ud800", None, "invalid"),
]


@pytest.mark.parametrize(("cell", "region", "want"), ISSUE_CASES)
def test_issue_table(cell: object, region: str | None, want: str) -> None:
    row = one(cell, default_region=region)
    if want.startswith("+"):
        assert (row["hlr_number"], row["hlr_source"]) == (want, None), row
    else:
        assert (row["hlr_number"], row["hlr_source"]) == (None, want), row
        assert row["hlr_error"]


def test_notes_say_what_came_off() -> None:
    assert one("+44 7911 123456;")["hlr_note"] == "trailing ';' removed"
    assert one('"+44 7911 123456"')["hlr_note"] == "quotes removed"
    assert one("++44 7911 123456")["hlr_note"] == "doubled '+' read as one"
    assert one("'+44 7911 123456")["hlr_note"] is None  # Excel's text marker
    assert one("Mobile: +44 7911 123456")["hlr_note"] == "label 'Mobile:' dropped"
    assert one("+44 7911 123456 доб. 12")["hlr_note"] == "extension 12 dropped"
    assert one('="+44 7911 123456"')["hlr_number"] == "+447911123456"
    assert one("Tel./Fax: 01302 778473", default_region="GB")["hlr_number"] == "+441302778473"
    assert one("+44 7911 123456 (mobile)")["hlr_note"] == "label 'mobile' dropped"


@pytest.mark.parametrize(
    "cell",
    [
        "+44 7911 123456",
        "+٤٤ ٧٩١١ ١٢٣٤٥٦",  # Arabic-Indic
        "+۴۴ ۷۹۱۱ ۱۲۳۴۵۶",  # Extended Arabic-Indic (Persian)
        "+४४ ७९११ १२३४५६",  # Devanagari
        "＋４４ ７９１１ １２３４５６",  # full-width
        "+44\u20097911\u2009123456",  # thin spaces
        "+44\u20117911\u2012123456",  # non-breaking hyphen, figure dash
        "+44\u200b7911\u200e123456",  # zero-width space, left-to-right mark
        "\u202a+44 7911 123456\u202c",  # bidi embedding
    ],
)
def test_every_script_reads_like_ascii(cell: str) -> None:
    row = one(cell)
    assert (row["hlr_number"], row["hlr_source"]) == ("+447911123456", None)


def test_scientific_text() -> None:
    lost = one("4.47911E+11")
    assert lost["hlr_error"] == (
        "digits lost in scientific notation ('4.47911E+11' keeps 6 of 12 digits)"
    )
    assert one("4,47911123456E+11")["hlr_number"] == "+447911123456"  # decimal comma
    assert one("4.4791112345600e11")["hlr_number"] == "+447911123456"  # trailing zeros
    assert one("4.47e-3")["hlr_source"] == "invalid"


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ([1, 2], "not a phone number (list)"),
        ({"a": 1}, "not a phone number (dict)"),
        ({1, 2}, "not a phone number (set)"),
        (frozenset({1}), "not a phone number (frozenset)"),
        (bytearray(b"12"), "not a phone number (bytearray)"),
        (Decimal("sNaN"), "not a phone number (Decimal('sNaN'))"),
        (Decimal("Infinity"), "not a phone number (not a whole number)"),
        (np.array([1, 2]), "not a phone number (ndarray)"),
        (pd.Timestamp("2024-01-01"), "not a phone number (Timestamp)"),
        (1 + 2j, "not a phone number (complex)"),
        (object(), "not a phone number (object)"),
        ("+44\ud800", "not a phone number (text that is not valid Unicode)"),
        (b"\xff\xfe", "not a phone number (bytes that are not UTF-8)"),
        ("+44 7911\x00123456", "not a phone number (control characters)"),
        ("+44" + "1" * 10_000_000, "not a phone number (more than 250 characters)"),
        (True, "not a phone number (boolean)"),
    ],
)
def test_any_object_gets_a_verdict(cell: object, reason: str) -> None:
    s = pd.Series([cell, "+44 7911 123456", cell], dtype=object, index=[7, 3, 7])
    out = normalize(s)
    assert out.index.equals(s.index)
    assert out["hlr_source"].tolist() == ["invalid", pd.NA, "invalid"]
    assert out["hlr_error"].iloc[0] == reason


def test_decimals_and_bytes_are_read() -> None:
    out = normalize(pd.Series([Decimal("447911123456"), b"+44 7911 123456", Decimal("NaN")]))
    assert out["hlr_number"].tolist() == ["+447911123456", "+447911123456", pd.NA]
    assert out["hlr_source"].tolist() == [pd.NA, pd.NA, "missing"]


def test_local_verdicts_and_options() -> None:
    assert nz.LOCAL_VERDICTS == ("missing", "invalid", "ambiguous", "skipped")
    with pytest.raises(ValueError, match="ambiguous must be one of"):
        normalize(pd.Series(["1"]), ambiguous="guess")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a default_region"):
        normalize(pd.Series(["1"]), ambiguous="national")


def test_ambiguous_choices() -> None:
    cells = pd.Series(["2015550123", "15526018159"])
    skip = normalize(cells)
    assert skip["hlr_source"].tolist() == ["ambiguous", "ambiguous"]
    intl = normalize(cells, ambiguous="international")
    assert intl["hlr_number"].tolist() == ["+2015550123", "+15526018159"]
    assert intl["hlr_source"].isna().all()
    # BR's own international prefix is 00 + a carrier: 0055 is that, or 00 then +55
    br = normalize(pd.Series(["0055 11 96123 4567"]), default_region="BR")
    assert br["hlr_number"].tolist() == ["+5511961234567"]  # the only valid reading


def test_region_prefixes_from_metadata() -> None:
    # the region's own international prefix, not "00 always"
    assert one("0011 44 7911 123456", default_region="AU")["hlr_number"] == "+447911123456"
    assert one("010 44 7911 123456", default_region="JP")["hlr_number"] == "+447911123456"
    assert one("810 44 7911 123456", default_region="RU")["hlr_number"] == "+447911123456"
    # RU's trunk prefix is 8
    assert one("8 (912) 345-67-89", default_region="RU")["hlr_number"] == "+79123456789"
    # 00 where the region dials abroad otherwise: noted
    row = one("0044 7911 123456", default_region="US")
    assert row["hlr_note"] == "'00' read as the international prefix (US dials 011)"


def test_msisdn_false_one_key_per_number() -> None:
    cells = pd.Series(
        [
            "+971 50 123 4523",
            "971501234523.0",
            "+971 (0)50 123 4523",
            "00971501234523",
            971501234523,
            "+971 50 123 4523 ext. 9",
        ]
    )
    out = normalize(cells, msisdn=False)
    assert set(out["hlr_number"]) == {"+971501234523"}
    dup = normalize(pd.Series(["+44 44 1302 778473"]), msisdn=False)
    assert dup["hlr_number"].tolist() == ["+44441302778473"]  # duplicated code: as written
    assert dup["hlr_note"].iloc[0].startswith("sent as written (msisdn=False)")


# --------------------------------------------------------------------------------------------
# More property tests: formats, never raising, one row per row in order
# --------------------------------------------------------------------------------------------

WRAPPERS = [
    "{}",
    "'{}",
    '"{}"',
    "{};",
    "Tel: {}",
    "Mobile: {}",
    "{} ext. 12",
    "{} доб. 7",
    " {} ",
    "({})",
    "[{}]",
]


@settings(max_examples=300, deadline=None)
@given(
    valid_numbers(),
    st.sampled_from(["E164", "INTERNATIONAL", "NATIONAL", "RFC3966"]),
    st.sampled_from(WRAPPERS),
    st.sampled_from(["", "fullwidth", "arabic"]),
)
def test_property_any_format_gives_the_e164_key(
    case: tuple[phonenumbers.PhoneNumber, str], fmt: str, wrapper: str, script: str
) -> None:
    num, region = case
    e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)
    assume(10 <= len(e164) <= 15)
    text = phonenumbers.format_number(num, getattr(PhoneNumberFormat, fmt))
    assume(not re.search(r"[^\d\s+\-.()]", text.removeprefix("tel:")))
    if fmt in ("NATIONAL", "RFC3966") and wrapper in ("({})", "[{}]"):
        wrapper = "{}"  # brackets round a national number or a URI are not a format
    if script == "fullwidth":
        text = text.translate(str.maketrans("0123456789+", "０１２３４５６７８９＋"))
    elif script == "arabic":
        text = text.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    cell = wrapper.format(text)
    default_region = region if fmt == "NATIONAL" else None
    try:  # only claim what libphonenumber itself reads back
        back = phonenumbers.parse(
            phonenumbers.format_number(num, getattr(PhoneNumberFormat, fmt)), default_region
        )
    except phonenumbers.NumberParseException:
        assume(False)
    assume(phonenumbers.format_number(back, PhoneNumberFormat.E164) == e164)
    row = one(cell, default_region=default_region)
    assert row["hlr_number"] == e164, (cell, row)


ANY_CELL = st.one_of(
    st.none(),
    st.text(st.characters(exclude_categories=[]), max_size=30),  # surrogates included
    st.from_regex(r"[+(]{0,2}[0-9 \-().]{0,20}(ext\.? ?[0-9]{1,4})?[;\"']?", fullmatch=True),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.binary(max_size=12),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.sets(st.integers(), max_size=2),
    st.builds(bytearray, st.binary(max_size=4)),
    st.just(pd.NA),
    st.just(pd.NaT),
    st.just(Decimal("sNaN")),
    st.just(float("nan")),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(ANY_CELL, max_size=25),
    st.sampled_from([None, "GB", "US", "DE", "JP", "BR"]),
    st.booleans(),
    st.sampled_from(["skip", "international"]),
)
def test_property_any_cell_gets_a_row_in_order(
    cells: list[object], region: str | None, msisdn: bool, ambiguous: str
) -> None:
    s = pd.Series(cells, dtype=object, index=range(100, 100 + len(cells)))
    out = normalize(s, default_region=region, msisdn=msisdn, ambiguous=ambiguous)  # type: ignore[arg-type]
    assert out.index.equals(s.index)
    assert tuple(out.columns) == NORMALIZED_COLUMNS
    rows = out.astype(object).where(out.notna(), None).to_dict("records")
    if msisdn:
        for row in rows:
            _check_row_invariants(row)
    # each row's answer is the answer for its cell alone: nothing leaks between rows
    for cell, row in zip(cells[:3], rows[:3], strict=False):
        alone = one(cell, default_region=region, msisdn=msisdn, ambiguous=ambiguous)
        assert alone == row, (cell, alone, row)


def test_booleans_stay_apart_from_ones_and_zeros() -> None:
    # True == 1 for hashing: factorizing must not merge them
    s = pd.Series([True, 1, 447911123456, False, 0.0, 447911123456.0], dtype=object)
    out = normalize(s)
    assert out["hlr_error"].tolist()[:2] == [
        "not a phone number (boolean)",
        "digits without '+' and no default_region: too short",
    ]
    assert out["hlr_error"].iloc[3] == "not a phone number (boolean)"
    assert out["hlr_error"].iloc[4] == "not a phone number (not a positive integer)"
    assert out["hlr_number"].tolist()[2::3] == ["+447911123456", "+447911123456"]


def test_other_containers_of_cells() -> None:
    idx = pd.Index(["+44 7911 123456", "07911 123456"])
    assert normalize(idx, default_region="GB")["hlr_number"].tolist() == ["+447911123456"] * 2
    cats = pd.Series(pd.Categorical([447911123456, None, 447911123456]))
    assert normalize(cats)["hlr_source"].tolist() == [pd.NA, "missing", pd.NA]
    arrow = pd.Series(["+44 7911 123456", None], dtype=pd.ArrowDtype(pa.string()))
    assert normalize(arrow)["hlr_number"].tolist() == ["+447911123456", pd.NA]
    ints = pd.Series([447911123456, None], dtype=pd.ArrowDtype(pa.int64()))
    assert normalize(ints)["hlr_number"].tolist() == ["+447911123456", pd.NA]


# --- issue 23: the reader's rules ------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "region", "reading", "also"),
    [
        # the issue's examples: other countries' numbers in a GB list (DE, US, FR, IE)
        ("(217) 532-2262", "GB", "+44 21 7532 2262 (national GB)", None),
        ("06 89 80 78 86", "GB", "+44 689807886 (national GB)", None),
        ("086 715 8986", "GB", "+44 867158986 (national GB)", None),
        ("(358)956-9256", "US", "+1 358-956-9256 (national US)", "+358 9 569256 (international)"),
    ],
)
def test_a_national_reading_that_is_not_valid_is_not_sent(
    cell: str, region: str, reading: str, also: str | None
) -> None:
    truth = phonenumbers.parse(cell, region)
    assert phonenumbers.is_possible_number(truth) and not phonenumbers.is_valid_number(truth)
    row = one(cell, default_region=region)
    assert (row["hlr_number"], row["hlr_source"]) == (None, "invalid")
    assert row["hlr_error"].startswith(f"{reading}: not a valid number")
    assert "strict=False sends it" in row["hlr_error"]
    assert (also in row["hlr_error"]) if also else ("also read" not in row["hlr_error"])
    # strict=False keeps the old rule (sent with a note); strict=True withholds it too
    lenient = one(cell, default_region=region, strict=False)
    e164 = phonenumbers.format_number(truth, PhoneNumberFormat.E164)
    assert lenient["hlr_number"] == e164 and nz.NOTE_NOT_VALID in lenient["hlr_note"]
    assert one(cell, default_region=region, strict=True)["hlr_source"] == "invalid"


def test_a_bare_number_of_another_country_is_read_there_when_valid() -> None:
    # DE 4938352808 in a GB list: +49 38352 808 is valid, +44 4938 352808 is not
    row = one("4938352808", default_region="GB")
    assert row["hlr_number"] == "+4938352808" and row["hlr_region"] == "DE"


@pytest.mark.parametrize("strict", [None, False])
def test_an_international_reading_that_is_not_valid_is_sent_with_a_note(strict: bool) -> None:
    for cell in ("+446028785052", "0044 6028 785052", "446028785052", 446028785052.0):
        for region in (None, "GB", "US"):  # (in a DE list the bare digits are a DE number)
            row = one(cell, default_region=region, strict=strict)
            assert row["hlr_number"] == "+446028785052", (cell, region)
            assert nz.NOTE_NOT_VALID in row["hlr_note"]
        assert one(cell, strict=True)["hlr_source"] == "invalid"


def test_strict_must_be_none_or_a_bool() -> None:
    with pytest.raises(TypeError, match="strict must be None, True or False"):
        normalize(pd.Series(["+447911123456"]), strict="yes")


@pytest.mark.parametrize(
    ("cell", "region", "key", "note"),
    [
        ("447911123456.000000", None, "+447911123456", "read as its digits"),
        ("447911123456.000", "GB", "+447911123456", "read as its digits"),
        ("01635 35033 (ext. 2)", "GB", "+44163535033", "extension 2 dropped"),
        ("(Freephone) 0800 854 390", "GB", "+44800854390", "(Freephone) dropped"),
        ("Tel. (01234) 567890 (24h)", "GB", "+441234567890", "(24h) dropped"),
        ("090ー1234ー5678", "JP", "+819012345678", "national format read as JP"),
        ("090ｰ1234ｰ5678", "JP", "+819012345678", "national format read as JP"),
        # a bracketed (0): a trunk prefix where the country's numbers drop it, kept in Italy
        ("+39 (0)6 6988 3000", None, "+390669883000", None),
        ("+39 (0)347 123 4567", None, "+393471234567", None),  # only without it valid
        ("+44 (0)20 7946 0000", None, "+442079460000", None),
        ("+33 (0)6 12 34 56 78", None, "+33612345678", None),
    ],
)
def test_the_readers_leaks(cell: str, region: str | None, key: str, note: str | None) -> None:
    row = one(cell, default_region=region)
    assert row["hlr_number"] == key, row
    assert (note in row["hlr_note"]) if note else True
    assert one(cell, default_region=region, msisdn=False)["hlr_number"] == key


def test_an_annotation_that_says_do_not_use_is_not_read() -> None:
    for cell in ("+44 7911 123456 (old)", "(wrong number) 07911 123456"):
        row = one(cell, default_region="GB")
        assert row["hlr_source"] == "invalid" and "not to be used" in row["hlr_error"]


def test_ambiguous_names_every_plausible_reading() -> None:
    # 3232861639: the US and Belgium, and also Italy (a mobile written without +39) ...
    row = one("3232861639")
    assert row["hlr_source"] == "ambiguous"
    assert "+1 323-286-1639 (national US)" in row["hlr_error"]
    assert "+39 323 286 1639 (national IT)" in row["hlr_error"]
    assert "+32 3 286 16 39 (international)" in row["hlr_error"]
    assert re.search(r"or \d+ more readings$", row["hlr_error"])
    # 5321234567: Brazil, Turkey (written without its trunk 0) or Cuba
    assert one("5321234567")["hlr_error"] == (
        "ambiguous: +55 53 2123-4567 (national BR), +90 532 123 45 67 (national TR), "
        "+53 21 234567 (international) or 1 more reading"
    )


def test_bare_indian_numbers_without_a_region_are_ambiguous() -> None:
    # India writes its numbers with or without the trunk 0 (the metadata says so)
    row = one("4902084369")
    assert row["hlr_source"] == "ambiguous" and "+91 490 208 4369 (national IN)" in row["hlr_error"]
    assert one("4902084369", default_region="IN")["hlr_number"] == "+914902084369"
    assert one("9876543210", default_region="IN")["hlr_number"] == "+919876543210"


def test_msisdn_false_does_not_send_what_the_strict_rule_withholds() -> None:
    # a possible number withheld (a national reading not valid; strict=True) is not sent as
    # written either: msisdn=False only sends what is not a possible number
    for cell, strict in (("06 89 80 78 86", None), ("+1 200 555 0123", True)):
        row = one(cell, default_region="GB", msisdn=False, strict=strict)
        assert (row["hlr_number"], row["hlr_source"]) == (None, "invalid"), row
    assert one("+44 7911 1234", default_region="GB", msisdn=False)["hlr_number"] == "+4479111234"
