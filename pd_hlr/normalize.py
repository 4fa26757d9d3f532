"""Phone cells → lookup keys, local verdicts and offline facts (pure: no I/O).

`normalize` turns one column of phone numbers, in whatever shape a spreadsheet or CSV
left them, into the E.164 keys the Provero API wants, decides locally which rows must not
be looked up (missing, invalid, skipped) and adds the offline facts libphonenumber knows
(region, number type).

Speed: the raw cells are factorized first, all work happens once per *distinct* raw value,
and the answers are taken back to the rows at the end. Cells already in E.164 shape (also
after stripping separators and turning a leading ``00`` into ``+``) never go through
``phonenumbers.parse``: the country code is found with a vectorised prefix lookup, and the
region / number type / possible-length verdicts are computed with the libphonenumber metadata
patterns applied as vectorised RE2 regexes (pyarrow), one pass per (country, pattern). This
mirrors ``phonenumbers.region_code_for_number`` / ``number_type`` / ``is_possible_number``
exactly (the tests compare both on generated numbers); small country groups fall back to the
phonenumbers functions themselves, where compiling the patterns would cost more than it saves.

Rules (documented here once):

* **Missing**: None, NaN, pd.NA, empty or blank strings, strings made only of separators
  (``"-"``, ``"()"``), and the stringified nulls ``nan``, ``none``, ``null``, ``na``, ``n/a``,
  ``<na>``, ``nat`` (any case), which ``astype(str)`` leaves behind.
* **Extensions** (``ext. 123``, ``extension 123``, ``x123``, ``#123``, ``;ext=123``) at the
  end of a cell are dropped and noted. A leading ``tel:`` is dropped.
* **Letters**: any other letter makes the cell ``invalid`` ("contains letters"); vanity
  numbers such as ``1-800-FLOWERS`` are not converted.
* **Separators** removed: white space, dashes, dots, brackets, ``/`` and ``~`` (Unicode
  variants too). Any other ASCII symbol (``*``, ``@``, ``,``, a ``+`` not at the start ...)
  makes the cell invalid ("not a phone number").
* **International prefixes**: ``+``; ``00`` always; ``011`` only when ``default_region`` is a
  NANPA region (US, CA, ...). Other regions' prefixes (e.g. AU ``0011``) are understood by
  ``phonenumbers.parse`` through ``default_region``.
* **National format** (leading ``0`` or other non-international digits) needs
  ``default_region``; the note says "national format read as GB".
* **Bare digits** (ints, whole floats such as ``4.41302778473e11`` from a CSV, and digit-only
  strings not starting with 0): without ``default_region`` they are read as international
  digits (``+`` prepended; note "digits without '+' read as international"). With
  ``default_region`` both readings are tried and the first that holds wins, in this order:
  valid national, valid international, possible national, possible international. So
  ``2015550123`` with ``US`` is +12015550123 (not the also-valid Egyptian +2015550123),
  ``441302778473`` with ``US`` is +441302778473, and ``1302778473`` with ``GB`` (a national
  number whose leading 0 a CSV reader dropped) is +441302778473.
* **Verdicts** (``msisdn=True``): not possible (unknown country code, wrong length for the
  country, or a local-only length) → ``invalid``, never sent. Possible but not valid per the
  metadata → sent with a note (libphonenumber's range data can lag behind real allocations);
  ``strict=True`` withholds them as ``invalid``. A key outside the API's 10–15 character
  limit (``+`` counts) is ``invalid`` too: the API would refuse it.
* **only_mobile**: numbers whose type is certainly not mobile (`NOT_MOBILE_TYPES`: fixed_line,
  toll_free, premium_rate, shared_cost, uan, voicemail, pager) are ``skipped``. Kept:
  mobile, fixed_line_or_mobile, voip, personal_number (often routed to mobiles) and unknown
  (libphonenumber does not know, so it is not *certainly* not mobile).
* **msisdn=False**: no libphonenumber verdicts; the key is the cleaned string (separators
  removed, leading ``00`` → ``+``, a leading ``+`` kept, duplicated country codes kept).
  Region / type are filled only for keys in E.164 shape (vectorised, no parsing).
* ``hlr_region`` is <NA> for non-geographic numbers (+800, +882, ...; libphonenumber's "001")
  and for numbers of a shared country code (+1, +7, +44, ...) that match no region's ranges.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    NumberParseException,
    PhoneNumber,
    PhoneNumberType,
    ValidationResult,
)
from phonenumbers.phonemetadata import PhoneMetadata

from ._spec import PHONE_MAX_LEN, PHONE_MIN_LEN

__all__ = [
    "API_MAX_LEN",
    "API_MIN_LEN",
    "NORMALIZED_COLUMNS",
    "NOT_MOBILE_TYPES",
    "STRING_DTYPE",
    "normalize",
]

#: The columns `normalize` returns, in this order.
NORMALIZED_COLUMNS: tuple[str, ...] = (
    "hlr_number",
    "hlr_source",
    "hlr_error",
    "hlr_note",
    "hlr_region",
    "hlr_number_type",
)

#: Dtype of every column `normalize` returns.
STRING_DTYPE = pd.StringDtype("pyarrow")

#: The API's length limits for the phone field, "+" included (same values as
#: ``pd_hlr._spec.PHONE_MIN_LEN`` / ``PHONE_MAX_LEN``; kept here so normalise stays pure).
API_MIN_LEN = PHONE_MIN_LEN  # the spec's limits on the phone field ("+" counts)
API_MAX_LEN = PHONE_MAX_LEN

#: Number types that are certainly not mobile: ``only_mobile=True`` skips them.
NOT_MOBILE_TYPES: frozenset[str] = frozenset(
    {"fixed_line", "toll_free", "premium_rate", "shared_cost", "uan", "voicemail", "pager"}
)

#: Country groups smaller than this are classified with the phonenumbers functions row by row;
#: bigger ones with vectorised regexes (compiling a big pattern costs about as much as ~10 rows).
_VECTOR_MIN_GROUP = 64

NOTE_NOT_VALID = (
    "not a valid number per libphonenumber metadata; sent anyway (use strict=True to withhold)"
)
ERR_NOT_VALID = "not a valid number per libphonenumber metadata"
ERR_LETTERS = "contains letters"
ERR_MISSING = "no phone number in the cell"
NOTE_FLOAT_TEXT = "written as a float (e.g. 4.47e11) in the source; read as its digits"
ERR_NOT_A_NUMBER = "not a phone number"
ERR_UNKNOWN_CC = "unknown country calling code"
ERR_NO_REGION = "no country code and no default_region"
NOTE_INTL_DIGITS = "digits without '+' read as international"

_TYPE_NAMES: dict[int, str] = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
    PhoneNumberType.UNKNOWN: "unknown",
}
_UNKNOWN = PhoneNumberType.UNKNOWN
_IS_POSSIBLE = ValidationResult.IS_POSSIBLE
_LENGTH_WORDS = {
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "invalid length",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "local number only, area code missing",
}
_NULL_WORDS = ["nan", "none", "null", "na", "n/a", "<na>", "nat"]
_NANPA = frozenset(COUNTRY_CODE_TO_REGION_CODE[1])

# Vectorised (RE2) patterns over the distinct raw strings.
_RE_TEL = r"(?i)^tel:\s*"
_RE_EXT = (
    r"(?i)^(?P<body>.*?)[\s,]*(?:;\s*ext\s*=\s*|(?:ext(?:ension)?\.?|x|#)\s*)"
    r"(?P<ext>\d{1,10})\s*#?$"
)
_RE_LETTER = r"\pL"
_RE_SEPARATORS = (
    r"[\s\p{Z}\p{Pd}\p{Ps}\p{Pe}.\x{FF0E}/\x{FF0F}~\x{FF5E}\x{00AD}\x{200B}\x{2060}\x{FEFF}]+"
)
_RE_E164 = r"^\+[1-9]\d{7,14}$"
_RE_DIGITS = r"^[1-9]\d*$"
_RE_NATIONAL = r"^0\d*$"
_RE_ASCII_ONLY = r"^[\x{00}-\x{7F}]*$"
_RE_PLUS_DIGITS = r"^\+?\d+$"

# Country-code lookup table for the vectorised split of "+<digits>".
_CC_VALID = np.zeros(1000, dtype=bool)
for _cc in COUNTRY_CODE_TO_REGION_CODE:
    if 0 < _cc < 1000:
        _CC_VALID[_cc] = True


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def normalize(
    values: pd.Series | pd.Index | Iterable[Any] | str,
    *,
    default_region: str | None = None,
    msisdn: bool = True,
    strict: bool = False,
    only_mobile: bool = False,
) -> pd.DataFrame:
    """Normalise phone cells into lookup keys, local verdicts and offline facts.

    Returns a new frame on ``values.index`` with the columns `NORMALIZED_COLUMNS`, all
    ``pd.StringDtype("pyarrow")``. The input is never modified. See the module docstring
    for the rules (integers, extensions, letters, only_mobile, msisdn=False).

    >>> import pandas as pd
    >>> out = normalize(pd.Series(["+44 7400 123456", "01302 778473", None, "abc"]),
    ...                 default_region="GB")
    >>> out["hlr_number"].tolist()
    ['+447400123456', '+441302778473', <NA>, <NA>]
    >>> out["hlr_source"].tolist()
    [<NA>, <NA>, 'missing', 'invalid']
    >>> out["hlr_number_type"].tolist()
    ['mobile', 'fixed_line', <NA>, <NA>]
    """
    series = _as_series(values)
    region = _check_region(default_region)
    codes, uniq = _factorize(series)
    state = _State(len(uniq))
    texts, numeric = _uniques_to_text(uniq, state)
    texts = _float_text_to_digits(texts, numeric, state)
    if msisdn:
        _process_msisdn(texts, numeric, state, region, strict)
    else:
        _process_raw(texts, numeric, state)
    if only_mobile:
        _apply_only_mobile(state)
    return _assemble(series.index, codes, state)


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _as_series(values: Any) -> pd.Series:
    if isinstance(values, pd.Series):
        return values
    if isinstance(values, pd.DataFrame):
        raise TypeError("normalize expects one column (a Series), not a DataFrame")
    if isinstance(values, str | bytes | int | float) or values is None:
        return pd.Series([values], dtype=object)
    if isinstance(values, pd.Index):
        return pd.Series(values, index=pd.RangeIndex(len(values)))
    return pd.Series(list(values) if not isinstance(values, np.ndarray) else values)


def _check_region(default_region: str | None) -> str | None:
    if default_region is None:
        return None
    if not isinstance(default_region, str):
        raise TypeError(f"default_region must be a str like 'GB', got {default_region!r}")
    region = default_region.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"default_region {default_region!r} is not a region libphonenumber knows "
            "(use an ISO 3166 alpha-2 code such as 'GB', 'US', 'DE')"
        )
    return region


def _factorize(series: pd.Series) -> tuple[np.ndarray, Any]:
    """Codes per row (-1 = null) and the distinct raw values (categories for categoricals)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = np.asarray(series.cat.codes, dtype=np.intp)
        return codes, series.cat.categories
    codes, uniq = pd.factorize(series, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.intp), uniq


class _State:
    """Per distinct raw value: the six output columns plus the working flags."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.number = np.full(n, None, dtype=object)
        self.source = np.full(n, None, dtype=object)
        self.error = np.full(n, None, dtype=object)
        self.note = np.full(n, None, dtype=object)
        self.region = np.full(n, None, dtype=object)
        self.ntype = np.full(n, None, dtype=object)

    def mark(self, idx: np.ndarray, source: str, error: str | None) -> None:
        self.source[idx] = source
        self.error[idx] = error
        self.number[idx] = None

    def add_note(self, idx: Iterable[int], text: str) -> None:
        for i in idx:
            old = self.note[i]
            self.note[i] = text if old is None else f"{old}; {text}"


def _uniques_to_text(uniq: Any, state: _State) -> tuple[pa.Array, np.ndarray]:
    """Turn the distinct raw values into strings (null = already decided) + a numeric flag."""
    n = state.n
    numeric = np.zeros(n, dtype=bool)
    dtype = getattr(uniq, "dtype", None)
    if n == 0:
        return pa.array([], type=pa.large_string()), numeric
    if dtype is not None and pd.api.types.is_string_dtype(dtype) and dtype is not np.dtype(object):
        arr = pa.array(uniq)
        return arr.cast(pa.large_string()), numeric
    if dtype is not None and pd.api.types.is_bool_dtype(dtype):
        state.mark(np.arange(n), "invalid", f"{ERR_NOT_A_NUMBER} (boolean)")
        return pa.nulls(n, type=pa.large_string()), numeric
    if dtype is not None and pd.api.types.is_integer_dtype(dtype):
        ints = np.asarray(uniq, dtype=np.int64)
        return _ints_to_text(ints, np.arange(n), state, numeric), numeric
    if dtype is not None and pd.api.types.is_float_dtype(dtype):
        floats = np.asarray(uniq, dtype=np.float64)
        return _floats_to_text(floats, np.arange(n), state, numeric), numeric
    # object / mixed: sort by Python type
    objs = np.asarray(uniq, dtype=object)
    out: list[str | None] = [None] * n
    int_pos: list[int] = []
    int_val: list[int] = []
    float_pos: list[int] = []
    float_val: list[float] = []
    for i, v in enumerate(objs):
        if isinstance(v, str):
            out[i] = v
        elif isinstance(v, bool | np.bool_):
            state.mark(np.array([i]), "invalid", f"{ERR_NOT_A_NUMBER} (boolean)")
        elif isinstance(v, int | np.integer):
            if abs(int(v)) < 10**18:
                int_pos.append(i)
                int_val.append(int(v))
            else:
                state.mark(np.array([i]), "invalid", "too long")
        elif isinstance(v, float | np.floating):
            float_pos.append(i)
            float_val.append(float(v))
        elif isinstance(v, bytes):
            out[i] = v.decode("utf-8", errors="replace")
        elif v is None or v is pd.NA or (isinstance(v, float) and v != v):
            state.mark(np.array([i]), "missing", ERR_MISSING)
        else:
            try:
                as_float = float(v)  # Decimal, numpy scalars, ...
            except (TypeError, ValueError):
                out[i] = str(v)
            else:
                float_pos.append(i)
                float_val.append(as_float)
    texts = pa.array(out, type=pa.large_string())
    if int_pos:
        pos = np.array(int_pos)
        part = _ints_to_text(np.array(int_val, dtype=np.int64), pos, state, numeric)
        texts = _scatter(texts, pos, part)
    if float_pos:
        pos = np.array(float_pos)
        part = _floats_to_text(np.array(float_val, dtype=np.float64), pos, state, numeric)
        texts = _scatter(texts, pos, part)
    return texts, numeric


def _scatter(base: pa.Array, pos: np.ndarray, part: pa.Array) -> pa.Array:
    merged = np.asarray(base.to_pylist(), dtype=object)
    merged[pos] = np.asarray(part.to_pylist(), dtype=object)
    return pa.array(merged, type=pa.large_string())


def _ints_to_text(
    ints: np.ndarray, pos: np.ndarray, state: _State, numeric: np.ndarray
) -> pa.Array:
    ok = ints > 0
    state.mark(pos[~ok], "invalid", f"{ERR_NOT_A_NUMBER} (not a positive integer)")
    numeric[pos[ok]] = True
    text = pa.array(ints).cast(pa.large_string())
    return pc.if_else(pa.array(ok), text, pa.scalar(None, pa.large_string()))


def _floats_to_text(
    floats: np.ndarray, pos: np.ndarray, state: _State, numeric: np.ndarray
) -> pa.Array:
    nan = np.isnan(floats)
    state.mark(pos[nan], "missing", ERR_MISSING)
    finite = np.isfinite(floats)
    whole = finite & (np.floor(np.where(finite, floats, 0.0)) == floats)
    fraction = finite & ~whole | (~finite & ~nan)
    state.mark(pos[fraction], "invalid", f"{ERR_NOT_A_NUMBER} (not a whole number)")
    huge = whole & (np.abs(np.where(whole, floats, 0.0)) >= 1e17)
    state.mark(pos[huge], "invalid", "too long")
    good = whole & ~huge
    ints = np.where(good, floats, 1.0).astype(np.int64)
    text = _ints_to_text(ints, pos, state, numeric)
    text = pc.if_else(pa.array(good), text, pa.scalar(None, pa.large_string()))
    numeric[pos[~good]] = False
    return text


#: A spreadsheet's rendering of a number stored as float: "447400123456.0", "4.474001234e11".
_RE_FLOAT_TEXT = r"^\s*(?:\d+\.0+|\d(?:\.\d+)?[eE]\+?\d{1,2})\s*$"


def _float_text_to_digits(texts: pa.Array, numeric: np.ndarray, state: _State) -> pa.Array:
    """Cells that are a float's text ("61202884844.0", "4.47106708886e11") become the whole
    number's digits, read like a float cell (the same rule, marked numeric). A rendering that is
    not a whole number (``4.4e-3``, ``1.5e2`` is whole: 150) is decided by the rule for floats."""
    hit = _flag(texts, _RE_FLOAT_TEXT)
    if not hit.any():
        return texts
    pos = np.flatnonzero(hit)
    raw = texts.take(pa.array(pos)).to_pylist()
    out: list[str | None] = []
    for i, cell in zip(pos, raw, strict=True):
        value = Decimal(cell.strip())
        if value != value.to_integral_value() or value <= 0 or value >= Decimal(10) ** 17:
            state.mark(np.array([i]), "invalid", f"{ERR_NOT_A_NUMBER} (not a whole number)")
            out.append(None)
            continue
        out.append(str(int(value)))
        numeric[i] = True
        state.add_note([i], NOTE_FLOAT_TEXT)
    return _scatter(texts, pos, pa.array(out, type=pa.large_string()))


# --------------------------------------------------------------------------------------------
# Shared string cleaning
# --------------------------------------------------------------------------------------------


def _flag(arr: pa.Array, pattern: str) -> np.ndarray:
    """Bool numpy array: regex search hit (nulls → False)."""
    if len(arr) == 0:
        return np.zeros(0, dtype=bool)
    hit = pc.match_substring_regex(arr, pattern)
    return np.asarray(hit.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _clean(texts: pa.Array, numeric: np.ndarray, state: _State) -> tuple[pa.Array, pa.Array]:
    """Decide missing / letters / bad symbols; return (cleaned, body) for the rest (null = done).

    ``cleaned`` has separators removed; ``body`` is the trimmed cell without extension (what
    phonenumbers.parse gets when the cleaned string has an unusual shape).
    """
    todo = np.asarray(texts.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    todo &= state.source == None  # noqa: E711 (element-wise on an object array)
    body = pc.utf8_trim_whitespace(texts)
    body = pc.replace_substring_regex(body, _RE_TEL, "")
    lowered = pc.utf8_lower(body)
    nullish = np.asarray(
        pc.is_in(lowered, value_set=pa.array(_NULL_WORDS, pa.large_string()))
        .fill_null(False)
        .to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    # extensions
    ext = pc.extract_regex(body, _RE_EXT)
    has_ext = np.asarray(ext.is_valid().to_numpy(zero_copy_only=False), dtype=bool) & todo
    if has_ext.any():
        ext_body = pc.struct_field(ext, "body")
        ext_num = pc.struct_field(ext, "ext")
        body = pc.if_else(pa.array(has_ext), ext_body, body)
        body = pc.utf8_trim_whitespace(body)
        nums = ext_num.to_pylist()
        for i in np.flatnonzero(has_ext):
            state.add_note([i], f"extension {nums[i]} dropped")
    cleaned = pc.replace_substring_regex(body, _RE_SEPARATORS, "")
    empty = np.asarray(
        pc.equal(pc.utf8_length(cleaned), 0).fill_null(False).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    missing = todo & (empty | nullish) & ~has_ext
    state.mark(np.flatnonzero(missing), "missing", ERR_MISSING)
    state.note[missing] = None
    todo &= ~missing
    letters = todo & _flag(body, _RE_LETTER)
    state.mark(np.flatnonzero(letters), "invalid", ERR_LETTERS)
    todo &= ~letters
    no_digits = todo & empty  # e.g. "x12" body empty after the extension
    state.mark(np.flatnonzero(no_digits), "invalid", ERR_NOT_A_NUMBER)
    todo &= ~no_digits
    # ASCII symbols other than digits and a leading "+" → not a phone number
    ascii_only = _flag(cleaned, _RE_ASCII_ONLY)
    bad = todo & ascii_only & ~_flag(cleaned, _RE_PLUS_DIGITS)
    state.mark(np.flatnonzero(bad), "invalid", ERR_NOT_A_NUMBER)
    todo &= ~bad
    numeric_bad = todo & numeric & ~_flag(cleaned, _RE_DIGITS)
    state.mark(np.flatnonzero(numeric_bad), "invalid", ERR_NOT_A_NUMBER)
    todo &= ~numeric_bad
    mask = pa.array(todo)
    null = pa.scalar(None, pa.large_string())
    return pc.if_else(mask, cleaned, null), pc.if_else(mask, body, null)


# --------------------------------------------------------------------------------------------
# msisdn=True: libphonenumber verdicts
# --------------------------------------------------------------------------------------------


class _Cands:
    """Candidate readings (unique id, country code, national significant number)."""

    def __init__(self) -> None:
        self.uid: list[np.ndarray] = []
        self.cc: list[np.ndarray] = []
        self.nsn: list[pa.Array] = []
        self.alt: list[np.ndarray] = []  # True = the international reading of bare digits

    def add(self, uid: np.ndarray, cc: np.ndarray, nsn: pa.Array, alt: bool) -> None:
        if len(uid):
            self.uid.append(np.asarray(uid, dtype=np.int64))
            self.cc.append(np.asarray(cc, dtype=np.int64))
            self.nsn.append(nsn.cast(pa.large_string()))
            self.alt.append(np.full(len(uid), alt, dtype=bool))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, pa.Array, np.ndarray]:
        if not self.uid:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, pa.array([], pa.large_string()), np.zeros(0, dtype=bool)
        nsn = pa.concat_arrays(self.nsn) if len(self.nsn) > 1 else self.nsn[0]
        return (
            np.concatenate(self.uid),
            np.concatenate(self.cc),
            nsn,
            np.concatenate(self.alt),
        )


def _process_msisdn(
    texts: pa.Array, numeric: np.ndarray, state: _State, region: str | None, strict: bool
) -> None:
    cleaned, body = _clean(texts, numeric, state)
    intl = _international_prefix_to_plus(cleaned, region)
    live = np.asarray(cleaned.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    e164 = live & _flag(intl, _RE_E164)
    digits = live & ~e164 & _flag(cleaned, _RE_DIGITS)
    national = live & ~e164 & ~digits & _flag(cleaned, _RE_NATIONAL)
    other = live & ~e164 & ~digits & ~national

    cands = _Cands()
    parse_uid: list[int] = []  # slow path: (uid, text, region, note)
    parse_text: list[str] = []
    parse_region: list[str | None] = []
    parse_alt: list[bool] = []
    fail: dict[tuple[int, bool], str] = {}

    # 1. E.164 shape: vectorised split, national-prefix lookalikes go to parse
    idx = np.flatnonzero(e164)
    if idx.size:
        stripped = pc.utf8_slice_codeunits(intl.filter(pa.array(e164)), 1)
        _add_intl_digits(idx, stripped, cands, fail, parse_uid, parse_text, parse_region, alt=False)
        parse_alt.extend([False] * (len(parse_uid) - len(parse_alt)))

    # 2. bare digits: international reading (vectorised) + national reading (parse)
    idx = np.flatnonzero(digits)
    if idx.size:
        dig = cleaned.filter(pa.array(digits))
        n_dig = np.asarray(pc.utf8_length(dig).to_numpy(zero_copy_only=False))
        shaped = (n_dig >= 8) & (n_dig <= 15)
        _add_intl_digits(
            idx[shaped],
            dig.filter(pa.array(shaped)),
            cands,
            fail,
            parse_uid,
            parse_text,
            parse_region,
            alt=region is not None,
        )
        parse_alt.extend([region is not None] * (len(parse_uid) - len(parse_alt)))
        for i, s in zip(idx[~shaped], n_dig[~shaped], strict=True):
            fail[(int(i), region is not None)] = "too short" if s < 8 else "too long"
        if region is not None:
            parse_uid.extend(int(i) for i in idx)
            parse_text.extend(dig.to_pylist())
            parse_region.extend([region] * idx.size)
            parse_alt.extend([False] * idx.size)

    # 3. national (leading 0) and 4. other shapes: phonenumbers.parse
    for mask, src in ((national, cleaned), (other, body)):
        idx = np.flatnonzero(mask)
        if not idx.size:
            continue
        if mask is national and region is None:
            state.mark(idx, "invalid", ERR_NO_REGION)
            continue
        parse_uid.extend(int(i) for i in idx)
        parse_text.extend(src.filter(pa.array(mask)).to_pylist())
        parse_region.extend([region] * idx.size)
        parse_alt.extend([False] * idx.size)

    _parse_slow(parse_uid, parse_text, parse_region, parse_alt, cands, fail, state)

    uid, cc, nsn, alt = cands.arrays()
    reg, ntype, poss = _classify(cc, nsn)
    valid = (reg != None) & (ntype != _UNKNOWN)  # noqa: E711
    # choose one reading per unique: valid national > valid intl > possible national > ...
    score = valid.astype(np.int8) * 2 + (poss == _IS_POSSIBLE).astype(np.int8)
    order = np.lexsort((alt, -score, uid))
    first = np.ones(order.size, dtype=bool)
    first[1:] = uid[order][1:] != uid[order][:-1]
    pick = order[first]
    chosen_uid = uid[pick]

    # failures without any candidate reading
    has_cand = np.zeros(state.n, dtype=bool)
    has_cand[chosen_uid] = True
    for (i, is_alt), reason in fail.items():
        if not has_cand[i] and state.source[i] is None:
            if is_alt and (i, False) in fail:
                continue  # the national reading's reason wins
            state.mark(np.array([i]), "invalid", reason)

    _verdicts(
        state,
        chosen_uid,
        cc[pick],
        nsn.take(pa.array(pick)),
        reg[pick],
        ntype[pick],
        poss[pick],
        valid[pick],
        strict,
    )
    # notes on how digits were read (only bare digits and national shapes need one)
    read = digits[chosen_uid] | national[chosen_uid]
    if read.any():
        home_cc = phonenumbers.country_code_for_region(region) if region else 0
        rows = np.flatnonzero(read)
        texts_of = cleaned.take(pa.array(chosen_uid[rows])).to_pylist()
        nsn_of = nsn.take(pa.array(pick[rows])).to_pylist()
        for j, text, national_part in zip(rows, texts_of, nsn_of, strict=True):
            i, c = chosen_uid[j], int(cc[pick[j]])
            if digits[i] and (region is None or alt[pick[j]] or text == f"{c}{national_part}"):
                state.add_note([i], NOTE_INTL_DIGITS)
            elif c == home_cc:
                state.add_note([i], f"national format read as {region}")


def _international_prefix_to_plus(cleaned: pa.Array, region: str | None) -> pa.Array:
    """Leading ``00`` (and ``011`` for NANPA regions) → ``+``.

    When ``default_region`` dials abroad with another prefix that starts with 00 (AU ``0011``),
    cells starting with that prefix are left to phonenumbers.parse, which knows it.
    """
    plus = pc.replace_substring_regex(cleaned, r"^00([1-9])", r"+\1")
    if region is None:
        return plus
    if region in _NANPA:
        return pc.replace_substring_regex(plus, r"^011([1-9])", r"+\1")
    idd = PhoneMetadata.metadata_for_region(region).international_prefix
    if not idd or idd == "00":
        return plus
    own_prefix = pa.array(_flag(cleaned, f"^(?:{idd})"))
    return pc.if_else(own_prefix, cleaned, plus)


def _add_intl_digits(
    idx: np.ndarray,
    digits: pa.Array,
    cands: _Cands,
    fail: dict[tuple[int, bool], str],
    parse_uid: list[int],
    parse_text: list[str],
    parse_region: list[str | None],
    *,
    alt: bool,
) -> None:
    """Split "<cc><nsn>" digit strings (8-15 digits, first 1-9) into candidates, vectorised.

    Strings whose national part matches the country's national prefix (``+44 0...``) are
    handed to phonenumbers.parse, which may strip it: the fast path never guesses.
    """
    if not idx.size:
        return
    cc, cclen = _split_cc(digits)
    bad = cc == 0
    for i in idx[bad]:
        fail[(int(i), alt)] = ERR_UNKNOWN_CC
    for length in (1, 2, 3):
        sel = np.flatnonzero(cclen == length)
        if not sel.size:
            continue
        sub_cc = cc[sel]
        nsn = pc.utf8_slice_codeunits(digits.take(pa.array(sel)), length)
        to_parse = np.zeros(sel.size, dtype=bool)
        for c, members in _groups(sub_cc):
            npfp = _national_prefix_pattern(c)
            if npfp is not None:
                hit = _flag(nsn.take(pa.array(members)), npfp)
                to_parse[members[hit]] = True
        keep = ~to_parse
        cands.add(idx[sel[keep]], sub_cc[keep], nsn.filter(pa.array(keep)), alt)
        if to_parse.any():
            full = digits.take(pa.array(sel[to_parse])).to_pylist()
            parse_uid.extend(int(i) for i in idx[sel[to_parse]])
            parse_text.extend("+" + d for d in full)
            parse_region.extend([None] * len(full))


def _split_cc(digits: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Country code and its length for digit strings of >= 3 digits (0 = unknown)."""
    p3 = np.asarray(
        pc.cast(pc.utf8_slice_codeunits(digits, 0, 3), pa.int64()).to_numpy(zero_copy_only=False),
        dtype=np.int64,
    )
    p2, p1 = p3 // 10, p3 // 100
    v1, v2, v3 = _CC_VALID[p1], _CC_VALID[p2], _CC_VALID[p3]
    cc = np.where(v1, p1, np.where(v2, p2, np.where(v3, p3, 0)))
    cclen = np.where(v1, 1, np.where(v2, 2, np.where(v3, 3, 0)))
    return cc, cclen


def _groups(keys: np.ndarray) -> Iterable[tuple[int, np.ndarray]]:
    """(key, positions) for each distinct key."""
    if not keys.size:
        return
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    ends = np.r_[starts[1:], sk.size]
    for s, e in zip(starts, ends, strict=True):
        yield int(sk[s]), order[s:e]


@cache
def _national_prefix_pattern(cc: int) -> str | None:
    md = _main_metadata(cc)
    if md is None or not md.national_prefix_for_parsing:
        return None
    return f"^(?:{md.national_prefix_for_parsing})"


@cache
def _main_metadata(cc: int) -> PhoneMetadata | None:
    regions = COUNTRY_CODE_TO_REGION_CODE.get(cc)
    if not regions:
        return None
    return PhoneMetadata.metadata_for_region_or_calling_code(cc, regions[0])


_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: ERR_UNKNOWN_CC,
    NumberParseException.NOT_A_NUMBER: ERR_NOT_A_NUMBER,
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}


def _parse_slow(
    uids: list[int],
    texts: list[str],
    regions: list[str | None],
    alts: list[bool],
    cands: _Cands,
    fail: dict[tuple[int, bool], str],
    state: _State,
) -> None:
    """phonenumbers.parse, once per distinct string that the fast path could not take."""
    ok_uid: list[int] = []
    ok_cc: list[int] = []
    ok_nsn: list[str] = []
    ok_alt: list[bool] = []
    parse = phonenumbers.parse
    nsn_of = phonenumbers.national_significant_number
    for uid, text, region, alt in zip(uids, texts, regions, alts, strict=True):
        try:
            num = parse(text, region)
        except NumberParseException as exc:
            reason = _PARSE_REASONS.get(exc.error_type, ERR_NOT_A_NUMBER)
            if reason == ERR_UNKNOWN_CC and region is None and not text.lstrip().startswith("+"):
                reason = ERR_NO_REGION
            fail[(uid, alt)] = reason
            continue
        if num.extension:
            state.add_note([uid], f"extension {num.extension} dropped")
        ok_uid.append(uid)
        ok_cc.append(num.country_code)
        ok_nsn.append(nsn_of(num))
        ok_alt.append(alt)
    if ok_uid:
        alts_arr = np.array(ok_alt, dtype=bool)
        uid_arr = np.array(ok_uid, dtype=np.int64)
        cc_arr = np.array(ok_cc, dtype=np.int64)
        nsn_arr = pa.array(ok_nsn, pa.large_string())
        for flag in (False, True):
            m = alts_arr == flag
            if m.any():
                cands.add(uid_arr[m], cc_arr[m], nsn_arr.filter(pa.array(m)), flag)


# --------------------------------------------------------------------------------------------
# Classification: region, type, possible length (vectorised mirror of libphonenumber)
# --------------------------------------------------------------------------------------------


def _classify(cc: np.ndarray, nsn: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Region (str/None), PhoneNumberType and ValidationResult (possible length) per reading.

    Equals ``region_code_for_number``, ``number_type`` and
    ``is_possible_number_with_reason`` of the PhoneNumber (cc, nsn).
    """
    n = cc.size
    region = np.full(n, None, dtype=object)
    ntype = np.full(n, _UNKNOWN, dtype=np.int8)
    poss = np.full(n, ValidationResult.INVALID_COUNTRY_CODE, dtype=np.int8)
    if not n:
        return region, ntype, poss
    lens = np.asarray(pc.utf8_length(nsn).to_numpy(zero_copy_only=False), dtype=np.int64)
    for c, idx in _groups(cc):
        regions = COUNTRY_CODE_TO_REGION_CODE.get(c)
        if not regions:
            continue
        poss[idx] = _possible_table(c)[np.minimum(lens[idx], 19)]
        if idx.size < _VECTOR_MIN_GROUP:
            for i, s in zip(idx, nsn.take(pa.array(idx)).to_pylist(), strict=True):
                num = _numobj(c, s)
                region[i] = phonenumbers.region_code_for_number(num)
                ntype[i] = phonenumbers.number_type(num)
            continue
        sub = nsn.take(pa.array(idx))
        sub_lens = lens[idx]
        if len(regions) == 1:
            md = _main_metadata(c)
            region[idx] = regions[0]
            if md is not None:
                ntype[idx] = _type_vec(sub, sub_lens, md)
            continue
        rem = np.arange(idx.size)
        for r in regions:
            if not rem.size:
                break
            md = PhoneMetadata.metadata_for_region(r, None)
            if md is None:
                continue
            rem_nsn = sub.take(pa.array(rem))
            if md.leading_digits is not None:
                m = _flag(rem_nsn, f"^(?:{md.leading_digits})")
                hit = rem[m]
                if hit.size:
                    ntype[idx[hit]] = _type_vec(sub.take(pa.array(hit)), sub_lens[hit], md)
            else:
                t = _type_vec(rem_nsn, sub_lens[rem], md)
                m = t != _UNKNOWN
                hit = rem[m]
                ntype[idx[hit]] = t[m]
            region[idx[hit]] = r
            rem = rem[~m]
    return region, ntype, poss


def _numobj(cc: int, nsn: str) -> PhoneNumber:
    """The PhoneNumber phonenumbers.parse would build for this country code and NSN."""
    num = PhoneNumber(country_code=cc, national_number=int(nsn))
    if len(nsn) > 1 and nsn[0] == "0":
        num.italian_leading_zero = True
        zeros = len(nsn) - len(nsn.lstrip("0"))
        zeros = min(zeros, len(nsn) - 1)
        if zeros != 1:
            num.number_of_leading_zeros = zeros
    return num


@cache
def _possible_table(cc: int) -> np.ndarray:
    """ValidationResult by NSN length (0..19) for a country code: it only depends on length."""
    table = np.full(20, ValidationResult.TOO_SHORT, dtype=np.int8)
    for length in range(1, 20):
        num = PhoneNumber(country_code=cc, national_number=int("1" * length))
        table[length] = phonenumbers.is_possible_number_with_reason(num)
    return table


def _desc_match(desc: Any, sub: pa.Array, lens: np.ndarray) -> np.ndarray:
    """libphonenumber's _is_number_matching_desc, vectorised."""
    out = np.zeros(lens.size, dtype=bool)
    if desc is None or not desc.national_number_pattern or not lens.size:
        return out
    ok = np.isin(lens, desc.possible_length) if len(desc.possible_length) else ~out
    cand = np.flatnonzero(ok)
    if not cand.size:
        return out
    arr = sub if cand.size == lens.size else sub.take(pa.array(cand))
    out[cand[_flag(arr, f"^(?:{desc.national_number_pattern})$")]] = True
    return out


def _type_vec(sub: pa.Array, lens: np.ndarray, md: PhoneMetadata) -> np.ndarray:
    """libphonenumber's _number_type_helper, vectorised over one region's numbers."""
    out = np.full(lens.size, _UNKNOWN, dtype=np.int8)
    rem = np.flatnonzero(_desc_match(md.general_desc, sub, lens))

    def match(desc: Any, rows: np.ndarray) -> np.ndarray:
        if not rows.size:
            return np.zeros(0, dtype=bool)
        return _desc_match(desc, sub.take(pa.array(rows)), lens[rows])

    for desc, code in (
        (md.premium_rate, PhoneNumberType.PREMIUM_RATE),
        (md.toll_free, PhoneNumberType.TOLL_FREE),
        (md.shared_cost, PhoneNumberType.SHARED_COST),
        (md.voip, PhoneNumberType.VOIP),
        (md.personal_number, PhoneNumberType.PERSONAL_NUMBER),
        (md.pager, PhoneNumberType.PAGER),
        (md.uan, PhoneNumberType.UAN),
        (md.voicemail, PhoneNumberType.VOICEMAIL),
    ):
        if not rem.size:
            return out
        m = match(desc, rem)
        out[rem[m]] = code
        rem = rem[~m]
    m = match(md.fixed_line, rem)
    fixed = rem[m]
    rem = rem[~m]
    if md.same_mobile_and_fixed_line_pattern:
        out[fixed] = PhoneNumberType.FIXED_LINE_OR_MOBILE
    else:
        mob = match(md.mobile, fixed)
        out[fixed[mob]] = PhoneNumberType.FIXED_LINE_OR_MOBILE
        out[fixed[~mob]] = PhoneNumberType.FIXED_LINE
        out[rem[match(md.mobile, rem)]] = PhoneNumberType.MOBILE
    return out


def _where_label(cc: int) -> str:
    regions = COUNTRY_CODE_TO_REGION_CODE.get(cc, ())
    if regions and regions[0] != "001":
        return regions[0]  # possible lengths are judged with the main region's metadata
    return f"+{cc}"


def _verdicts(
    state: _State,
    uid: np.ndarray,
    cc: np.ndarray,
    nsn: pa.Array,
    reg: np.ndarray,
    ntype: np.ndarray,
    poss: np.ndarray,
    valid: np.ndarray,
    strict: bool,
) -> None:
    """Write number / source / error / note / region / type for the chosen readings."""
    if not uid.size:
        return
    cc_str = pa.array(cc).cast(pa.large_string())
    plus = pa.scalar("+", pa.large_string())
    e164 = pc.binary_join_element_wise(plus, cc_str, nsn, pa.scalar("", pa.large_string()))
    e164_list = np.asarray(e164.to_pylist(), dtype=object)
    lengths = np.asarray(pc.utf8_length(e164).to_numpy(zero_copy_only=False))
    state.region[uid] = np.where(reg == "001", None, reg)
    state.ntype[uid] = np.array([_TYPE_NAMES[int(t)] for t in ntype], dtype=object)
    known = poss != ValidationResult.INVALID_COUNTRY_CODE
    possible = poss == _IS_POSSIBLE
    send = valid | (possible & (not strict))
    state.number[uid[send]] = e164_list[send]
    state.source[uid[send]] = None
    state.error[uid[send]] = None
    state.add_note(uid[send & ~valid], NOTE_NOT_VALID)

    bad_cc = ~known
    state.mark(uid[bad_cc], "invalid", ERR_UNKNOWN_CC)
    state.region[uid[bad_cc]] = None
    state.ntype[uid[bad_cc]] = None
    not_possible = known & ~send & ~possible
    for i, c, p in zip(uid[not_possible], cc[not_possible], poss[not_possible], strict=True):
        why = _LENGTH_WORDS.get(int(p), "invalid length")
        state.mark(np.array([i]), "invalid", f"not a possible number for {_where_label(c)} ({why})")
    state.mark(uid[known & ~send & possible], "invalid", ERR_NOT_VALID)
    _api_length_check(state, uid[send], lengths[send], e164_list[send])


def _api_length_check(
    state: _State, uid: np.ndarray, lengths: np.ndarray, keys: np.ndarray
) -> None:
    out = (lengths < API_MIN_LEN) | (lengths > API_MAX_LEN)
    for i, n, key in zip(uid[out], lengths[out], keys[out], strict=True):
        state.mark(
            np.array([i]),
            "invalid",
            f"{key} has {n} characters; the API accepts {API_MIN_LEN} to {API_MAX_LEN}",
        )


# --------------------------------------------------------------------------------------------
# msisdn=False: cleaned strings, no verdicts
# --------------------------------------------------------------------------------------------


def _process_raw(texts: pa.Array, numeric: np.ndarray, state: _State) -> None:
    cleaned, _body = _clean(texts, numeric, state)
    key = pc.replace_substring_regex(cleaned, r"^00([1-9])", r"+\1")
    live = np.asarray(key.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    plus_digits = live & _flag(key, _RE_PLUS_DIGITS)
    state.mark(np.flatnonzero(live & ~plus_digits), "invalid", ERR_NOT_A_NUMBER)
    idx = np.flatnonzero(plus_digits)
    if not idx.size:
        return
    keys = np.asarray(key.filter(pa.array(plus_digits)).to_pylist(), dtype=object)
    state.number[idx] = keys
    lengths = np.array([len(k) for k in keys], dtype=np.int64)
    # offline facts only for keys in E.164 shape (no parsing)
    shaped = _flag(key.filter(pa.array(plus_digits)), _RE_E164)
    if shaped.any():
        digits = pc.utf8_slice_codeunits(pa.array(keys[shaped], pa.large_string()), 1)
        cc, cclen = _split_cc(digits)
        for length in (1, 2, 3):
            sel = np.flatnonzero(cclen == length)
            if not sel.size:
                continue
            nsn = pc.utf8_slice_codeunits(digits.take(pa.array(sel)), length)
            reg, ntype, _poss = _classify(cc[sel], nsn)
            rows = idx[np.flatnonzero(shaped)[sel]]
            state.region[rows] = np.where(reg == "001", None, reg)
            state.ntype[rows] = np.array([_TYPE_NAMES[int(t)] for t in ntype], dtype=object)
    _api_length_check(state, idx, lengths, keys)


def _apply_only_mobile(state: _State) -> None:
    sent = state.number != None  # noqa: E711
    for i in np.flatnonzero(sent):
        t = state.ntype[i]
        if t in NOT_MOBILE_TYPES:
            state.mark(np.array([i]), "skipped", f"not a mobile number ({t})")


# --------------------------------------------------------------------------------------------
# Back to the rows
# --------------------------------------------------------------------------------------------


def _assemble(index: pd.Index, codes: np.ndarray, state: _State) -> pd.DataFrame:
    n = state.n
    codes = np.where(codes < 0, n, codes)  # slot n = a null cell
    take = pa.array(codes, type=pa.int64())
    columns: dict[str, pd.api.extensions.ExtensionArray] = {}
    missing_row = {"hlr_source": "missing", "hlr_error": ERR_MISSING}
    for name, arr in zip(
        NORMALIZED_COLUMNS,
        (state.number, state.source, state.error, state.note, state.region, state.ntype),
        strict=True,
    ):
        full = np.empty(n + 1, dtype=object)
        full[:n] = arr
        full[n] = missing_row.get(name)
        pa_full = pa.array(full, type=pa.large_string(), from_pandas=True)
        columns[name] = pd.arrays.ArrowStringArray(pa.chunked_array([pa_full.take(take)]))
    return pd.DataFrame(columns, index=index, copy=False)
