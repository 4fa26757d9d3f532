"""Phone cells → lookup keys, local verdicts and offline facts (pure: no I/O).

`normalize` turns one column of phone cells, in whatever shape a spreadsheet, CRM export or
CSV left them, into the E.164 keys sent to the Provero API; decides locally which rows are not
sent (`LOCAL_VERDICTS`); and adds what libphonenumber knows offline (region, number type).
Invariants: every key is a paid lookup, so **a cell gets a key only when one reading of it is
clearly right** (otherwise it is ``ambiguous`` and never sent, unless ``ambiguous=`` makes the
guess); no cell can raise; the work happens once per distinct raw value, vectorised.
`DECISION_TABLE` lists every cell shape and what it gets (the docs' table is rendered from
it by `decision_table_markdown`). The four stages (objects, text, readings, decision):
``docs/internals/normalize.md``.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import ArrayLike
from phonenumbers import ValidationResult

from . import _numbering as nb
from . import _regional
from ._spec import PHONE_MAX_LEN, PHONE_MIN_LEN
from .regions import RegionColumn
from .settings import AMBIGUOUS_CHOICES as _AMBIGUOUS_CHOICES
from .settings import check_national, parse_ambiguous, parse_region, parse_strict

__all__ = [
    "AMBIGUOUS_CHOICES",
    "API_MAX_LEN",
    "API_MIN_LEN",
    "DECISION_TABLE",
    "LOCAL_VERDICTS",
    "NORMALIZED_COLUMNS",
    "NOT_MOBILE_TYPES",
    "decision_table_markdown",
    "normalize",
    "normalize_cells",
]

#: The columns `normalize` returns, in this order (all ``pd.StringDtype("pyarrow")``).
NORMALIZED_COLUMNS: tuple[str, ...] = (
    "hlr_number",
    "hlr_source",
    "hlr_error",
    "hlr_note",
    "hlr_region",
    "hlr_number_type",
)

#: ``hlr_source`` values normalize sets; rows with one of them are never sent.
LOCAL_VERDICTS: tuple[str, ...] = ("missing", "invalid", "ambiguous", "skipped")

#: Values of ``normalize(..., ambiguous=)``: leave ambiguous cells unsent, or take one reading.
AMBIGUOUS_CHOICES = _AMBIGUOUS_CHOICES  # the option's choices, defined with the options

#: The API's length limits for the phone field, "+" included (the spec's, from ``_spec``).
API_MIN_LEN = PHONE_MIN_LEN
API_MAX_LEN = PHONE_MAX_LEN

#: Number types that are certainly not mobile: ``only_mobile=True`` skips them.
NOT_MOBILE_TYPES: frozenset[str] = frozenset(
    {"fixed_line", "toll_free", "premium_rate", "shared_cost", "uan", "voicemail", "pager"}
)

#: Cells longer than this are not read (libphonenumber's own limit on input).
MAX_CELL_LENGTH = 250

NOTE_NOT_VALID = (
    "not a valid number per libphonenumber metadata; sent anyway (use strict=True to withhold)"
)
NOTE_FLOAT_TEXT = "written as a float (e.g. 4.47e11) in the source; read as its digits"
NOTE_INTL_DIGITS = "digits without '+' read as international"
ERR_NOT_VALID = "not a valid number per libphonenumber metadata"
ERR_NOT_VALID_NATIONAL = (
    "{reading}: not a valid number per libphonenumber metadata, so not sent (another "
    "country's number?; strict=False sends it)"
)
ERR_NOT_VALID_FOREIGN = (
    "written as a number of {where}, not a valid one per libphonenumber metadata, in a row of "
    "{region}: not sent (strict=False sends it)"
)
ERR_LETTERS = "contains letters"
ERR_VANITY = "letters in the number: vanity numbers such as 1-800-FLOWERS are not converted"
ERR_MISSING = "no phone number in the cell"
ERR_NOT_A_NUMBER = "not a phone number"
ERR_UNKNOWN_CC = "unknown country calling code"
ERR_NO_REGION = "national format (leading 0) and no default_region"
ERR_NO_REGION_BRACKETS = "national format (brackets) and no default_region"
ERR_CONTROL = "not a phone number (control characters)"
ERR_API_LENGTH = "the API accepts {lo} to {hi} characters"

_NULL_WORDS = ["nan", "none", "null", "na", "n/a", "<na>", "nat", "#n/a", "n.a."]
_PARSE_REASONS = {
    nb.ParseError.INVALID_COUNTRY_CODE: ERR_UNKNOWN_CC,
    nb.ParseError.TOO_SHORT_AFTER_IDD: "too short",
    nb.ParseError.TOO_SHORT_NSN: "too short",
    nb.ParseError.TOO_LONG: "too long",
    nb.ParseError.NOT_A_NUMBER: "too short",
}
_LENGTH_WORDS = {
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "invalid length",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "local number only, area code missing",
}
LARGE = nb.LARGE

# --------------------------------------------------------------------------------------------
# Text rules (RE2 patterns, applied to whole arrays)
# --------------------------------------------------------------------------------------------

# fmt: off
#: Words that label a number: "Tel:", "Mobile", "Mob.", "Тел.", "Handy" ... (any case).
LABEL_WORDS: tuple[str, ...] = (
    # English
    "tel", "tele", "telephone", "phone", "ph", "mobile", "mob", "cell", "cellphone", "cel",
    "gsm", "fax", "home", "work", "office", "direct", "dir", "main", "whatsapp", "sms",
    "landline", "contact", "number", "no", "nr", "num",
    # German, Dutch, Nordic, Polish, Turkish
    "telefon", "handy", "mobil", "mobiltelefon", "rufnummer", "festnetz", "telefoon", "mobiel",
    "tlf", "kom", "komórka", "cep",
    # French, Spanish, Portuguese, Italian
    "tél", "téléphone", "portable", "port", "fixe", "teléfono", "telefono", "telefone",
    "móvil", "movil", "celular", "tlm", "telemóvel", "telemovel", "fijo", "cellulare",
    # Russian, Ukrainian; Chinese, Japanese, Korean, Arabic
    "тел", "телефон", "моб", "мобильный", "мобільний", "сот", "сотовый",
    "电话", "手机", "電話", "手機", "携帯", "전화", "휴대폰", "هاتف", "جوال",
)
#: Words that introduce an extension at the end: "ext. 12", "x12", "доб. 12", "poste 12" ...
EXTENSION_WORDS: tuple[str, ...] = (
    "ext", "extn", "extension", "ex", "x", "#", "xtn", "p", "poste", "anexo", "ramal", "int",
    "interno", "durchwahl", "dw", "nebenstelle", "wew", "toestel", "tst", "kl", "lok",
    "доб", "добавочный", "вн", "внутр", "分机", "内線", "内线",
)
# fmt: on
_LABEL = "|".join(sorted((re.escape(w) for w in LABEL_WORDS), key=len, reverse=True))
_EXT = "|".join(sorted((re.escape(w) for w in EXTENSION_WORDS), key=len, reverse=True))
_LABEL_ONE = (
    rf"(?:(?:{_LABEL})\.?(?:\s*[/&,]\s*(?:{_LABEL})\.?)*(?:\s+(?:number|no|nr|num)\.?)?"
    r"\s*[:#=\-]?|[a-zа-я]\s*:)"
)
_RE_LABEL = rf"(?i)^(?P<label>(?:{_LABEL_ONE}\s*)+?)(?P<rest>[+(\d].*)$"
_RE_TRAILING_LABEL = rf"(?i)^(?P<rest>.*[\d)])\s*[(\[]\s*(?P<label>{_LABEL})\s*[)\]]$"
_RE_EXTENSION = (
    rf"(?i)^(?P<rest>.*?\d[)\s]*?)\s*[,;]?\s*(?:;\s*ext\s*=|(?:{_EXT})\.?\s*[:=.#]?)\s*"
    r"(?P<ext>\d{1,10})\s*#?$"
)
_RE_WRAPPED = r"""^(?P<lead>[\s"'`]*)(?P<rest>.*?[\d)])(?P<trail>[\s"'`;,:.]*)$"""
_RE_FORMULA = r'^=\s*"(?P<rest>.*)"$'
_RE_DOUBLE_PLUS = r"^\+[\s+]*\+"
_RE_SIMPLE = r"^\+?[\d \-.()/]*\d[\d \-.()/]*$"  # ASCII digits and separators
_RE_SEPARATORS = r"[\s\-.()\[\]/]+"
_RE_CONTROL = r"[\x{00}-\x{08}\x{0E}-\x{1F}\x{7F}-\x{9F}]"
_RE_NON_ASCII = r"[^\x{00}-\x{7F}]"
_RE_LETTER = r"\pL"
_RE_VANITY = r"^\+?[\d\s\-.()/]*(?:[A-Za-z][\d\s\-.()/]*){2,}$"  # + ≥ 3 digits, below
_RE_FLOAT_WHOLE = r"^[1-9]\d*\.0+$"  # "447400123456.0", "...456.000000" (printf %f)
_RE_FLOAT_SCI = r"^[+]?\d(?:[.,]\d+)?[eE][+-]?\d{1,3}$"  # "4.47400123456e11", "4.47911E+11"
_RE_BRACKET_CLUE = r"^\(\s*\d"
_ANNOTATION = r"[(\[](?P<word>[^()\[\]\d]*\pL[^()\[\]]*|\d+\s*\pL[^()\[\]]*)[)\]]"  # word(s)
_RE_ANNOTATION_BEFORE = rf"^{_ANNOTATION}[\s:\-]*(?P<rest>[+(\d].*)$"  # "(Freephone) 0800 ..."
_RE_ANNOTATION_AFTER = rf"^(?P<rest>.*\d[)\]]?)\s*[,;]?\s*{_ANNOTATION}$"  # "... (24h)", "(ext. 2)"
_RE_EXT_WORD = rf"(?i)^(?:{_EXT})\.?\s*[:=.#]?\s*(?P<ext>\d{{1,10}})$"
#: Annotations that say the number is not to be used: the cell is not read.
_RE_DO_NOT_USE = (
    r"(?i)\b(?:old|former|previous|wrong|invalid|disconnected|dead|deceased|inactive|"
    r"obsolete|fake|test|do\s*not|don'?t|no\s+longer|not\s+in\s+service|unsubscribed)\b"
)
_RE_TRUNK_IN_BRACKETS = r"^\+\s*(\d{1,3})[\s\-.]*\(\s*0\s*\)"  # "+44 (0) 1302 ...": a trunk 0


# --------------------------------------------------------------------------------------------
# The decision table (documented once: the docs render it with decision_table_markdown)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionRow:
    """One row of the decision table: a cell shape, an example cell and the region of the
    table's "with default_region" column."""

    shape: str
    cell: object
    region: str


#: Cell shapes and what each gets, without and with ``default_region`` (the outcomes are
#: computed by running each example cell through `normalize`).
DECISION_TABLE: tuple[DecisionRow, ...] = (
    DecisionRow("E.164", "+447911123456", "GB"),
    DecisionRow("international, any separators, a trunk (0)", "+44 (0)7911 123-456", "GB"),
    DecisionRow("`00` international prefix", "0044 7911 123456", "GB"),
    DecisionRow("the region's own international prefix", "011 44 7911 123456", "US"),
    DecisionRow("`00` where the region dials abroad with another prefix", "0044 7911 123456", "US"),
    DecisionRow("`00…` that is a national number there", "0066-33-123456", "JP"),
    DecisionRow("`00` + too few digits", "0049 7484", "AU"),
    DecisionRow("national format: trunk 0", "07911 123456", "GB"),
    DecisionRow("national format: brackets", "(201) 555-0123", "US"),
    DecisionRow("national format: brackets, not a valid number", "(358)956-9256", "US"),
    DecisionRow("national format, not a valid number (another country's)", "06 89 80 78 86", "GB"),
    DecisionRow("bare digits: another country's number, valid there", "4938352808", "GB"),
    DecisionRow("bare digits: a national number in several countries", "3232861639", "IT"),
    DecisionRow("bare digits: written without an optional trunk 0", "4902084369", "IN"),
    DecisionRow("bare digits with a country code (CRM export)", "447911123456", "GB"),
    DecisionRow("bare digits that also read as a national number", "2015550123", "US"),
    DecisionRow("bare digits: a national number elsewhere", "15526018159", "CN"),
    DecisionRow("bare digits: national length of the region", "5977443142", "US"),
    DecisionRow("bare digits: the region's own code", "491701234567", "DE"),
    DecisionRow("a whole number that lost its trunk 0", 1302778473, "GB"),
    DecisionRow("a float from a CSV", 447911123456.0, "GB"),
    DecisionRow("a float printed with six decimals", "447911123456.000000", "GB"),
    DecisionRow("float text", "4.47911123456e11", "GB"),
    DecisionRow("scientific text that lost digits", "4.47911E+11", "DE"),
    DecisionRow("national, a dot in it", "0207946.0000", "GB"),
    DecisionRow("full-width digits", "００６１４１２３４６５８６", "AU"),
    DecisionRow("Arabic-Indic digits", "+٤٤ ٧٩١١ ١٢٣٤٥٦", "GB"),
    DecisionRow("spreadsheet apostrophe", "'+44 7911 123456", "GB"),
    DecisionRow("quotes, trailing punctuation", '"+44 7911 123456";', "GB"),
    DecisionRow("doubled +", "++44 7911 123456", "GB"),
    DecisionRow("label and extension", "Mobile: +44 7911 123456 ext. 12", "GB"),
    DecisionRow("words in brackets", "Tel. (01234) 567890 (24h)", "GB"),
    DecisionRow("words in brackets saying not to use it", "+44 7911 123456 (old)", "GB"),
    DecisionRow("a katakana long-vowel mark as a dash", "090ー1234ー5678", "JP"),
    DecisionRow("a bracketed (0) that is part of the number", "+39 (0)6 6988 3000", "IT"),
    DecisionRow("extension in another language", "+7 912 345-67-89 доб. 12", "RU"),
    DecisionRow("vanity letters", "1-800-FLOWERS", "US"),
    DecisionRow("unknown country code", "+999 1234 5678", "GB"),
    DecisionRow("not a possible number", "+44 7911 1234", "GB"),
    DecisionRow("possible, not valid (unassigned range)", "+1 200 555 0123", "US"),
    DecisionRow("the same after `00`", "001 200 555 0123", "GB"),
    DecisionRow("`00`, or a longer international prefix (AU's `0011`)", "0011 61 16 312 34", "AU"),
    DecisionRow("valid, but shorter than the API accepts", "+683 4002", "NU"),
    DecisionRow("blank or a null word", "n/a", "GB"),
    DecisionRow("not a phone number at all (a list)", ["+44 7911 123456"], "GB"),
)


def _outcome_text(row: dict[str, Any]) -> str:
    if row["hlr_number"] is not None:
        text = f"`{row['hlr_number']}`"
        return f"{text} ({row['hlr_note']})" if row["hlr_note"] else text
    error = (row["hlr_error"] or "").replace("|", "\\|")
    if row["hlr_source"] == "ambiguous" or not error:
        return error or str(row["hlr_source"])
    return f"{row['hlr_source']}: {error}"


def decision_table_markdown() -> str:
    """The decision table as a markdown table, each outcome computed by `normalize`."""
    lines = [
        "| cell shape | example | without `default_region` | with `default_region` |",
        "|---|---|---|---|",
    ]
    for case in DECISION_TABLE:
        outcomes = []
        for region in (None, case.region):
            out = normalize(pd.Series([case.cell], dtype=object), default_region=region)
            row = {str(k): (None if v is pd.NA else v) for k, v in out.iloc[0].items()}
            outcomes.append(_outcome_text(row))
        cell = repr(case.cell) if not isinstance(case.cell, str) else case.cell
        cell = cell.replace("|", "\\|").replace("`", "'")
        lines.append(f"| {case.shape} | `{cell}` | {outcomes[0]} | {case.region}: {outcomes[1]} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def normalize(
    values: pd.Series | pd.Index | Iterable[Any] | str,
    *,
    default_region: str | None = None,
    regions: pd.Series | Iterable[Any] | RegionColumn | None = None,
    msisdn: bool = True,
    strict: bool | None = None,
    only_mobile: bool = False,
    ambiguous: Literal["skip", "international", "national"] = "skip",
) -> pd.DataFrame:
    """Normalise phone cells into lookup keys, local verdicts and offline facts.

    Returns a new frame on ``values.index`` (one row per input row, in order) with the columns
    `NORMALIZED_COLUMNS`, all ``pd.StringDtype("pyarrow")``. The input is never modified and no
    cell raises: each gets a key or a verdict (`LOCAL_VERDICTS`).

    ``default_region`` reads national numbers (and decides bare digits, see the module doc);
    ``strict`` decides numbers that are possible but that libphonenumber does not know as
    valid: ``None`` (default) withholds a national reading of them (digits written without
    ``+``/``00`` and read in ``default_region``: often another country's number) and sends an
    international one with a note (metadata lags new ranges); ``True`` withholds both,
    ``False`` sends both with a note;
    ``only_mobile=True`` skips numbers that are certainly not mobile (`NOT_MOBILE_TYPES`);
    ``msisdn=False`` keeps the content of cells that are not a possible number as written
    (for the API's non-canonical mode), while every possible number still gets its E.164 key;
    ``ambiguous`` decides cells with two readings: ``"skip"`` (not sent), ``"international"``
    or ``"national"`` (needs ``default_region``).
    ``regions``: each row's country (codes, names, calling codes: `pd_hlr.regions`), one per
    row: a row's national number is read in its own region (one pass per region, see
    `pd_hlr._regional`), with ``default_region`` the fallback for blank or unrecognised values
    (noted in ``hlr_note``).

    >>> normalize(pd.Series(["030 901820", "(212) 555-0123"]),
    ...           regions=["Deutschland", "USA"])["hlr_number"].tolist()
    ['+4930901820', '+12125550123']
    >>> out = normalize(pd.Series(["+44 7400 123456", "01302 778473", None, "abc"]),
    ...                 default_region="GB")
    >>> out["hlr_number"].tolist()
    ['+447400123456', '+441302778473', <NA>, <NA>]
    >>> out["hlr_source"].tolist()
    [<NA>, <NA>, 'missing', 'invalid']
    >>> out["hlr_number_type"].tolist()
    ['mobile', 'fixed_line', <NA>, <NA>]
    >>> normalize(pd.Series(["2015550123"]))["hlr_error"].iloc[0]  # doctest: +NORMALIZE_WHITESPACE
    'ambiguous: +1 201-555-0123 (national US), +52 201 555 0123 (national MX),
     +20 15 550123 (international) or 1 more reading'
    """
    series = _as_series(values)
    codes, state = _normalize_distinct(
        series, default_region, msisdn, strict, only_mobile, ambiguous, regions
    )
    return _frame(state, pa.array(codes, type=pa.int64()), series.index)


def normalize_cells(
    values: pd.Series | pd.Index | Iterable[Any] | str,
    *,
    default_region: str | None = None,
    regions: pd.Series | Iterable[Any] | RegionColumn | None = None,
    msisdn: bool = True,
    strict: bool | None = None,
    only_mobile: bool = False,
    ambiguous: Literal["skip", "international", "national"] = "skip",
) -> tuple[np.ndarray, pd.DataFrame]:
    """`normalize` before the rows are laid out: ``(codes, cells)``.

    ``cells`` has one line per distinct cell (first-seen order; a categorical's categories,
    used or not; with ``regions``, per distinct cell and region), then one line for the
    missing cell, with the columns of `normalize`;
    ``codes[i]`` is the line of row ``i``. So ``normalize(values)`` is ``cells.take(codes)``
    on the values' index, and work per row can be done once per distinct cell instead.

    >>> codes, cells = normalize_cells(pd.Series(["+44 7400 123456", None, "+44 7400 123456"]))
    >>> codes.tolist()
    [0, 1, 0]
    >>> cells["hlr_number"].tolist(), cells["hlr_source"].tolist()
    (['+447400123456', <NA>], [<NA>, 'missing'])
    """
    codes, state = _normalize_distinct(
        _as_series(values), default_region, msisdn, strict, only_mobile, ambiguous, regions
    )
    return codes, _frame(state)


def _normalize_distinct(
    series: pd.Series,
    default_region: str | None,
    msisdn: bool,
    strict: bool | None,
    only_mobile: bool,
    ambiguous: str,
    regions: Any = None,
) -> tuple[np.ndarray, _State]:
    """The work of `normalize`, once per distinct cell (with ``regions``: per distinct cell
    and region): each row's line (``n`` for a missing cell) and the state of the ``n`` lines."""
    region = parse_region(default_region)  # the options' own validators (pd_hlr.settings)
    ambiguous = parse_ambiguous(ambiguous)
    strict = parse_strict(strict)
    check_national(ambiguous, region, regions)
    codes, uniq = _factorize(series)

    def read(cells: Any, in_region: str | None, row_region: bool = False) -> _State:
        choice = "skip" if ambiguous == "national" and in_region is None else ambiguous
        return _read_distinct(cells, in_region, msisdn, strict, only_mobile, choice, row_region)

    if regions is not None:
        return _regional.by_row_region(codes, uniq, regions, region, read, _State)
    state = read(uniq, region)
    return np.where(codes < 0, state.n, codes), state


def _read_distinct(
    uniq: Any, region: str | None, msisdn: bool, strict: bool | None, only_mobile: bool,
    ambiguous: str, row_region: bool = False,
) -> _State:
    """Every verdict for distinct raw values ``uniq``, read in ``region`` (``row_region``: the
    rows' own country, from a region column, rather than a default for the whole list)."""
    state = _State(len(uniq))
    texts, numeric = _uniques_to_text(uniq, state)
    cells = _read_text(texts, numeric, state)
    _decide(cells, state, region, ambiguous, strict, row_region)
    if not msisdn:
        _as_written(cells, state)
    if only_mobile:
        _apply_only_mobile(state)
    return state


# --------------------------------------------------------------------------------------------
# Input handling: any column, any object
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
    if isinstance(values, np.ndarray):
        return pd.Series(values)
    return pd.Series(list(values), dtype=object)


_IS_BOOL = np.frompyfunc(lambda v: isinstance(v, bool | np.bool_), 1, 1)


class _Opaque:
    """Stands in for an unhashable cell (a list, a dict, ``Decimal('sNaN')``) while factorizing:
    all cells of one type share one verdict."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Opaque) and other.type_name == self.type_name

    def __hash__(self) -> int:
        return hash(("_Opaque", self.type_name))


def _hashable(v: Any) -> Any:
    try:
        hash(v)
    except Exception:
        if isinstance(v, Decimal) and v.is_snan():
            return _Opaque("Decimal('sNaN')")
        return _Opaque(type(v).__name__)
    return v


def _factorize(series: pd.Series) -> tuple[np.ndarray, Any]:
    """Codes per row (-1 = null) and the distinct raw values (categories for categoricals)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = np.asarray(series.cat.codes, dtype=np.intp)
        return codes, series.cat.categories
    try:
        codes, uniq = pd.factorize(series, use_na_sentinel=True)
    except Exception:  # unhashable cells: factorize stand-ins for them
        codes, uniq = _factorize_objects(np.asarray(series, dtype=object), unhashable=True)
    else:
        # True == 1 and False == 0 for hashing: if a 0 / 1 / boolean is among the values, do
        # it again with the booleans apart from the numbers
        if series.dtype == object and len(uniq) and pd.Index(uniq).isin([0, 1]).any():
            codes, uniq = _factorize_objects(np.asarray(series, dtype=object), unhashable=False)
    return np.asarray(codes, dtype=np.intp), uniq


def _factorize_objects(objs: np.ndarray, unhashable: bool) -> tuple[np.ndarray, Any]:
    """Factorize an object array with booleans (and, if asked, unhashable cells) replaced by
    stand-ins."""
    keys = objs.copy()
    if objs.size:
        is_bool = _IS_BOOL(objs).astype(bool)
        keys[is_bool] = _Opaque("boolean")
    if unhashable:
        keys[:] = [_hashable(v) for v in keys]
    return pd.factorize(keys, use_na_sentinel=True)


class _State:
    """Per distinct raw value: the six output columns."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.number = np.full(n, None, dtype=object)
        self.source = np.full(n, None, dtype=object)
        self.error = np.full(n, None, dtype=object)
        self.note = np.full(n, None, dtype=object)
        self.region = np.full(n, None, dtype=object)
        self.ntype = np.full(n, None, dtype=object)
        #: invalid because of what the digits read as (not the text): msisdn=False sends those
        self.reading_invalid = np.zeros(n, dtype=bool)

    def open(self) -> np.ndarray:
        return self.source == None  # noqa: E711 (element-wise on an object array)

    def mark(self, idx: Any, source: str, error: str | np.ndarray | None) -> None:
        self.source[idx] = source
        self.error[idx] = error
        self.number[idx] = None

    def add_note(self, idx: ArrayLike, text: str | Iterable[str]) -> None:
        texts = [text] * len(np.atleast_1d(idx)) if isinstance(text, str) else list(text)
        for i, t in zip(np.atleast_1d(idx), texts, strict=True):
            old = self.note[i]
            self.note[i] = t if old is None else f"{old}; {t}"


def _uniques_to_text(uniq: Any, state: _State) -> tuple[pa.Array, np.ndarray]:
    """The distinct raw values as strings (null = already decided) and a numeric flag (the value
    was a number, so it carries no '+', no brackets and may have lost a leading 0)."""
    n = state.n
    numeric = np.zeros(n, dtype=bool)
    if n == 0:
        return pa.array([], type=LARGE), numeric
    dtype = getattr(uniq, "dtype", None)
    if dtype is not None and dtype != np.dtype(object):
        if pd.api.types.is_bool_dtype(dtype):
            state.mark(np.arange(n), "invalid", f"{ERR_NOT_A_NUMBER} (boolean)")
            return pa.nulls(n, type=LARGE), numeric
        if pd.api.types.is_integer_dtype(dtype):
            return _ints_to_text(_as_int_objects(uniq), np.arange(n), state, numeric), numeric
        if pd.api.types.is_float_dtype(dtype):
            floats = np.asarray(uniq, dtype=np.float64)
            return _floats_to_text(floats, np.arange(n), state, numeric), numeric
        if pd.api.types.is_string_dtype(dtype):
            try:
                return pa.array(uniq).cast(LARGE), numeric
            except (pa.ArrowException, TypeError, ValueError):
                pass
    objs = np.asarray(uniq, dtype=object)
    if pd.api.types.infer_dtype(objs, skipna=False) == "string":
        try:
            return pa.array(objs.tolist(), type=LARGE), numeric
        except (pa.ArrowException, UnicodeError):
            pass  # a lone surrogate: sorted out one by one below
    return _objects_to_text(objs, state, numeric), numeric


def _as_int_objects(uniq: Any) -> list[int]:
    return [int(v) for v in np.asarray(uniq, dtype=object)]


_KIND_CODES: dict[type, int] = {str: 1, float: 2, int: 3}  # the common kinds, exactly


def _objects_to_text(objs: np.ndarray, state: _State, numeric: np.ndarray) -> pa.Array:
    """Mixed Python objects: strings, numbers and bytes are read; anything else is invalid."""
    n = objs.size
    kinds = np.fromiter((_KIND_CODES.get(type(v), 0) for v in objs), dtype=np.int8, count=n)
    is_str, is_float, is_int = kinds == 1, kinds == 2, kinds == 3
    texts = pa.nulls(n, type=LARGE)
    if is_str.any():
        pos = np.flatnonzero(is_str)
        texts = nb.scatter(texts, pos, _strings(objs[is_str], pos, state))
    ints: list[tuple[int, int]] = [(int(i), int(objs[i])) for i in np.flatnonzero(is_int)]
    floats = np.flatnonzero(is_float)
    if floats.size:
        vals = objs[floats].astype(np.float64)
        texts = nb.scatter(texts, floats, _floats_to_text(vals, floats, state, numeric))
    others: list[str | None] = []
    other_pos = np.flatnonzero(~(is_str | is_float | is_int))
    for i in other_pos:
        others.append(_other_cell(int(i), objs[i], state, ints))
    if other_pos.size:
        texts = nb.scatter(texts, other_pos, pa.array(others, type=LARGE))
    if ints:
        pos = np.array([i for i, _ in ints])
        texts = nb.scatter(texts, pos, _ints_to_text([v for _, v in ints], pos, state, numeric))
    return texts


def _strings(values: np.ndarray, pos: np.ndarray, state: _State) -> pa.Array:
    """Python strings as an Arrow array; one that cannot be UTF-8 (a lone surrogate) is
    invalid."""
    try:
        return pa.array(values.tolist(), type=LARGE)
    except (pa.ArrowException, UnicodeError):
        out: list[str | None] = []
        for i, v in zip(pos, values, strict=True):
            if _encodable(v):
                out.append(v)
            else:
                state.mark(i, "invalid", f"{ERR_NOT_A_NUMBER} (text that is not valid Unicode)")
                out.append(None)
        return pa.array(out, type=LARGE)


def _other_cell(i: int, v: Any, state: _State, ints: list[tuple[int, int]]) -> str | None:
    """One cell of a less common kind: its text, or None (decided here, or an int for later)."""
    if isinstance(v, str):
        return _strings(np.array([v], dtype=object), np.array([i]), state)[0].as_py()
    if isinstance(v, bool | np.bool_):
        state.mark(i, "invalid", f"{ERR_NOT_A_NUMBER} (boolean)")
    elif isinstance(v, int | np.integer):
        ints.append((i, int(v)))
    elif isinstance(v, float | np.floating):
        if math.isnan(v):
            state.mark(i, "missing", ERR_MISSING)
        elif math.isfinite(v) and v == math.floor(v):
            ints.append((i, int(v)))
        else:
            state.mark(i, "invalid", f"{ERR_NOT_A_NUMBER} (not a whole number)")
    elif isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            state.mark(i, "invalid", f"{ERR_NOT_A_NUMBER} (bytes that are not UTF-8)")
    elif isinstance(v, Decimal):
        _decimal_cell(i, v, state, ints)
    elif v is None or v is pd.NA or v is pd.NaT:
        state.mark(i, "missing", ERR_MISSING)
    else:
        name = v.type_name if isinstance(v, _Opaque) else type(v).__name__
        state.mark(i, "invalid", f"{ERR_NOT_A_NUMBER} ({name})")
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _decimal_cell(i: int, v: Decimal, state: _State, ints: list[tuple[int, int]]) -> None:
    if v.is_snan():
        state.mark(i, "invalid", f"{ERR_NOT_A_NUMBER} (Decimal('sNaN'))")
    elif v.is_nan():
        state.mark(i, "missing", ERR_MISSING)
    elif v.is_infinite() or v != v.to_integral_value():
        state.mark(i, "invalid", f"{ERR_NOT_A_NUMBER} (not a whole number)")
    else:
        ints.append((i, int(v)))


def _ints_to_text(ints: list[int], pos: np.ndarray, state: _State, numeric: np.ndarray) -> pa.Array:
    out: list[str | None] = []
    for i, v in zip(pos, ints, strict=True):
        if v <= 0:
            state.mark(i, "invalid", f"{ERR_NOT_A_NUMBER} (not a positive integer)")
            out.append(None)
        elif v >= 10**17:
            state.mark(i, "invalid", "too long")
            out.append(None)
        else:
            numeric[i] = True
            out.append(str(v))
    return pa.array(out, type=LARGE)


def _floats_to_text(
    floats: np.ndarray, pos: np.ndarray, state: _State, numeric: np.ndarray
) -> pa.Array:
    nan = np.isnan(floats)
    state.mark(pos[nan], "missing", ERR_MISSING)
    finite = np.isfinite(floats)
    safe = np.where(finite, floats, 0.0)
    whole = finite & (np.floor(safe) == safe)
    state.mark(pos[~nan & ~whole], "invalid", f"{ERR_NOT_A_NUMBER} (not a whole number)")
    positive = whole & (safe > 0) & (safe < 1e17)
    state.mark(pos[whole & (safe <= 0)], "invalid", f"{ERR_NOT_A_NUMBER} (not a positive integer)")
    state.mark(pos[whole & (safe >= 1e17)], "invalid", "too long")
    numeric[pos[positive]] = True
    text = pa.array(np.where(positive, safe, 1.0).astype(np.int64)).cast(LARGE)
    return pc.if_else(pa.array(positive), text, pa.scalar(None, LARGE))


# --------------------------------------------------------------------------------------------
# Text: normalise, unwrap, judge the characters
# --------------------------------------------------------------------------------------------


@dataclass
class _Cells:
    """The distinct values still open after the text rules, as digits plus how they were
    written."""

    uid: np.ndarray  # positions in the state
    digits: pa.Array  # ASCII digits, no "+"
    plus: np.ndarray  # written with a leading "+"
    clue: np.ndarray  # national formatting: starts with a bracketed group
    numeric: np.ndarray  # a number cell (int, float, float text)


def _read_text(texts: pa.Array, numeric: np.ndarray, state: _State) -> _Cells:
    """Decide what the text rules can (missing, letters, symbols ...); return the digits of the
    rest. Cells made only of digits, separators and a leading "+" (most of a column) skip the
    Unicode, unwrapping and letter rules."""
    live = nb._bools(texts.is_valid()) & state.open()
    too_long = live & (nb.lengths(texts) > MAX_CELL_LENGTH)
    state.mark(
        np.flatnonzero(too_long), "invalid",
        f"{ERR_NOT_A_NUMBER} (more than {MAX_CELL_LENGTH} characters)",
    )
    live &= ~too_long
    idx = np.flatnonzero(live)
    text = pc.utf8_trim_whitespace(nb.take(texts, idx))
    text, idx, is_num = _float_text(text, idx, numeric[idx], state)
    simple = nb.search(text, _RE_SIMPLE)
    if not simple.all():
        sub = np.flatnonzero(~simple)
        done, cleaned = _read_complex(nb.take(text, sub), idx[sub], state)
        text = nb.scatter(text, sub, cleaned)
        keep = np.ones(idx.size, dtype=bool)
        keep[sub[done]] = False
        idx, text, is_num = idx[keep], text.filter(pa.array(keep)), is_num[keep]
    text = _trunk_in_brackets(text)
    clue = nb.search(text, _RE_BRACKET_CLUE)
    cleaned = pc.replace_substring_regex(text, _RE_SEPARATORS, "").cast(LARGE)
    empty = nb.lengths(cleaned) == 0
    state.mark(idx[empty & ~nb.search(text, r"\d")], "missing", ERR_MISSING)
    shaped = nb.search(cleaned, r"^\+?\d+$")
    bad = ~shaped & ~empty
    for i, s in zip(idx[bad], cleaned.filter(pa.array(bad)).to_pylist(), strict=True):
        odd = re.sub(r"^\+|\d", "", s)[:1] or "+"
        state.mark(i, "invalid", f"{ERR_NOT_A_NUMBER} ({odd!r} in it)")
    # survivors: a note-carrying extension with nothing else ("x12") ends here too
    keep = shaped & state.open()[idx]
    idx, cleaned = idx[keep], cleaned.filter(pa.array(keep))
    clue, is_num = clue[keep], is_num[keep]
    plus = nb.startmatch(cleaned, r"\+")
    digits = pc.if_else(pa.array(plus), pc.utf8_slice_codeunits(cleaned, 1), cleaned)
    return _Cells(idx, digits.cast(LARGE), plus, clue & ~plus, is_num)


def _trunk_in_brackets(text: pa.Array) -> pa.Array:
    """``+44 (0)20 ...``: the bracketed 0 is a trunk prefix, dropped where the country's numbers
    drop it (its trunk prefix is 0). Elsewhere it stays, unless only the number without it is
    valid: Italian numbers keep their 0 (``+39 (0)6 6988 3000`` is +39 06 6988 3000)."""
    cand = np.flatnonzero(nb.search(text, _RE_TRUNK_IN_BRACKETS))
    if not cand.size:
        return text
    sub = nb.take(text, cand)
    dropped = pc.replace_substring_regex(sub, _RE_TRUNK_IN_BRACKETS, r"+\1 ")
    kept = pc.replace_substring_regex(sub, _RE_TRUNK_IN_BRACKETS, r"+\1 0")
    head = pc.struct_field(pc.extract_regex(sub, r"^\+\s*(?P<cc>\d{1,3})"), "cc")
    cc = np.asarray(pc.cast(head, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    trunk_zero = np.array([nb.trunk_prefix(int(c)) == "0" for c in cc], dtype=bool)
    keep = np.zeros(cand.size, dtype=bool)
    other = np.flatnonzero(~trunk_zero)
    if other.size:
        valid = {}
        for name, arr in (("kept", kept), ("dropped", dropped)):
            digits = pc.replace_substring_regex(nb.take(arr, other), r"\D", "").cast(LARGE)
            r = _Reading.classify(nb.read_international(digits))
            valid[name] = r.status == _VALID
        keep[other] = valid["kept"] | ~valid["dropped"]
    return nb.scatter(text, cand, pc.if_else(pa.array(keep), kept, dropped))


def _read_complex(text: pa.Array, uid: np.ndarray, state: _State) -> tuple[np.ndarray, pa.Array]:
    """The cells that are more than digits and separators: control characters, Unicode, null
    words, wrappers, labels, extensions, letters. Returns which were decided and the text of
    the others."""
    done = nb.search(text, _RE_CONTROL)
    state.mark(uid[done], "invalid", ERR_CONTROL)
    text = pc.utf8_trim_whitespace(_fold_unicode(text))
    nullish = ~done & nb._bools(
        pc.is_in(pc.utf8_lower(text), value_set=pa.array(_NULL_WORDS, LARGE))
    )
    state.mark(uid[nullish], "missing", ERR_MISSING)
    done |= nullish
    text = _unwrap(text, uid, state)
    letters = ~done & nb.search(text, _RE_LETTER)
    vanity = letters & nb.search(text, _RE_VANITY) & nb.search(text, r"(?:\d\D*){3}")
    state.mark(uid[vanity], "invalid", ERR_VANITY)
    state.mark(uid[letters & ~vanity], "invalid", ERR_LETTERS)
    return done | letters, text


_FOLD_CACHE: dict[str, str] = {}
_QUOTE_CHARS = "\u2018\u2019\u201a\u201b\u2032\u00b4\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb"


def _fold_char(ch: str) -> str:
    """One non-ASCII character (after NFKC) as the ASCII rules see it."""
    known = _FOLD_CACHE.get(ch)
    if known is not None:
        return known
    cat = unicodedata.category(ch)
    if cat == "Nd":
        out = str(unicodedata.decimal(ch))
    elif cat in ("Zs", "Zl", "Zp"):
        out = " "
    elif cat == "Pd" or ch in "\u2212\u2796\ufe63\uff0d\u2043\u30fc\u2500\u2501":
        # minus signs, the katakana long-vowel mark and box lines written as dashes
        out = "-"
    elif cat == "Cf":
        out = ""  # zero-width spaces, bidi marks, soft hyphens, BOM
    elif ch in _QUOTE_CHARS:
        out = '"'
    else:
        out = ch
    _FOLD_CACHE[ch] = out
    return out


def _fold_unicode(text: pa.Array) -> pa.Array:
    """NFKC, Unicode decimal digits → ASCII, Unicode spaces / dashes → ' ' / '-', format
    characters dropped. Only the (rare) non-ASCII strings take this path."""
    hit = np.flatnonzero(nb.search(text, _RE_NON_ASCII))
    if not hit.size:
        return text
    folded = [
        "".join(_fold_char(c) if c >= "\x80" else c for c in unicodedata.normalize("NFKC", s))
        for s in nb.take(text, hit).to_pylist()
    ]
    return nb.scatter(text, hit, pa.array(folded, LARGE))


def _extract(text: pa.Array, pattern: str) -> tuple[np.ndarray, Any]:
    m = pc.extract_regex(text, pattern)
    return nb._bools(m.is_valid()), m


def _unwrap(text: pa.Array, uid: np.ndarray, state: _State) -> pa.Array:
    """Take wrappers, labels and extensions off cells that are more than digits and
    separators; note what came off."""
    notes: list[list[str]] = [[] for _ in range(len(text))]

    def apply(quick: str, pattern: str, note: Any) -> None:
        """Take off what ``pattern`` finds (a cheap ``quick`` search picks the candidates)."""
        nonlocal text
        cand = np.flatnonzero(nb.search(text, quick))
        if not cand.size:
            return
        hit, m = _extract(nb.take(text, cand), pattern)
        if not hit.any():
            return
        rows = np.flatnonzero(hit)
        names = [m.type.field(k).name for k in range(m.type.num_fields)]
        fields = {name: nb.take(pc.struct_field(m, name), rows).to_pylist() for name in names}
        for k, j in enumerate(cand[rows]):
            said = note({name: values[k] for name, values in fields.items()})
            if said:
                notes[j].append(said)
        rest = pc.utf8_trim_whitespace(pc.struct_field(m, "rest").filter(pa.array(hit)))
        text = nb.scatter(text, cand[rows], rest)

    def wrapped(f: dict[str, str]) -> str | None:
        lead, trail = f["lead"].strip(), f["trail"].strip()
        said = []
        quotes = lead + re.sub(r"[;,:.]", "", trail)
        if quotes and quotes != "'":  # a lone leading apostrophe is Excel's text marker
            said.append("quotes removed")
        punct = re.sub(r"[\"'`]", "", trail)
        if punct:
            said.append(f"trailing {punct!r} removed")
        return "; ".join(said) or None

    def annotation(f: dict[str, str]) -> str:
        word = " ".join(f["word"].split())
        ext = re.match(_RE_EXT_WORD, word)
        return f"extension {ext['ext']} dropped" if ext else f"({word}) dropped"

    for _ in range(2):
        apply(r"^=", _RE_FORMULA, lambda f: "quotes removed")
        apply(r"""^["'`]|["'`;,:.]$""", _RE_WRAPPED, wrapped)
        apply(r"^[^+(\d]", _RE_LABEL, lambda f: f"label {f['label'].strip()!r} dropped")
        apply(r"[)\]]$", _RE_TRAILING_LABEL, lambda f: f"label {f['label']!r} dropped")
        apply(r"[^\d\s+().\-/]", _RE_EXTENSION, lambda f: f"extension {f['ext']} dropped")
        apply(r"^[(\[]", _RE_ANNOTATION_BEFORE, annotation)  # "(Freephone) ..."
        apply(r"[)\]]$", _RE_ANNOTATION_AFTER, annotation)  # "... (24h)", "... (ext. 2)"
    hit = nb.search(text, _RE_DOUBLE_PLUS)
    if hit.any():
        text = pc.replace_substring_regex(text, _RE_DOUBLE_PLUS, "+").cast(LARGE)
        for j in np.flatnonzero(hit):
            notes[j].append("doubled '+' read as one")
    for j in np.flatnonzero([bool(x) for x in notes]):
        said = "; ".join(dict.fromkeys(notes[j]))
        words = ", ".join(re.findall(r"(\([^()]*\)) dropped", said))  # the annotations
        if re.search(_RE_DO_NOT_USE, words):  # "(old)", "(wrong number)": not to be paid for
            state.mark(uid[j], "invalid", f"marked as not to be used: {words}")
        state.add_note([uid[j]], said)
    return text


def _float_text(
    text: pa.Array, idx: np.ndarray, is_num: np.ndarray, state: _State
) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Floats written as text become their digits ("447400123456.0", "4.47400123456e11"); a
    scientific rendering that lost digits or is not whole is invalid."""
    whole = nb.search(text, _RE_FLOAT_WHOLE)
    sci = nb.search(text, _RE_FLOAT_SCI)
    hit = np.flatnonzero(whole | sci)
    if not hit.size:
        return text, idx, is_num
    out: list[str | None] = []
    keep = np.ones(len(text), dtype=bool)
    for j, cell in zip(hit, nb.take(text, hit).to_pylist(), strict=True):
        digits, error = _float_digits(cell)
        if error:
            state.mark(idx[j], "invalid", error)
            keep[j] = False
            out.append(None)
            continue
        out.append(digits)
        is_num[j] = True
        state.add_note([idx[j]], NOTE_FLOAT_TEXT)
    text = nb.scatter(text, hit, pa.array(out, LARGE))
    return text.filter(pa.array(keep)), idx[keep], is_num[keep]


def _float_digits(cell: str) -> tuple[str | None, str | None]:
    """(digits, None) for a float's text that is an exact whole number, else (None, why)."""
    if "e" not in cell.lower():
        return cell.split(".")[0], None
    mantissa, _, exp = cell.lower().lstrip("+").partition("e")
    head, _, frac = mantissa.replace(",", ".").partition(".")
    exponent = int(exp)
    if exponent < 0 or (frac[exponent:] and frac[exponent:].strip("0")):
        return None, f"{ERR_NOT_A_NUMBER} (not a whole number)"
    kept = len(head + frac[:exponent])
    total = exponent + 1
    if kept < total:
        return None, (
            f"digits lost in scientific notation ({cell!r} keeps {kept} of {total} digits)"
        )
    return (head + frac)[:total], None


# --------------------------------------------------------------------------------------------
# Readings and the decision between them
# --------------------------------------------------------------------------------------------

# how a cell is written
_PLUS, _IDD, _ZZ, _ZERO, _CLUE, _BARE, _PLUS_BAD = 1, 2, 3, 4, 5, 6, 7
# a reading's standing
_NONE, _IMPOSSIBLE, _POSSIBLE, _VALID = 0, 1, 2, 3
# the reading chosen: none, international, national, international after plain "00", ambiguous
_CHOSE_NONE, _CHOSE_I, _CHOSE_N, _CHOSE_I00, _CHOSE_AMBIGUOUS = 0, 1, 2, 3, 4


@dataclass
class _Reading:
    """One reading per cell (country code + national number), and how it stands."""

    cc: np.ndarray
    nsn: pa.Array
    error: np.ndarray  # nb.ParseError
    region: np.ndarray
    ntype: np.ndarray
    poss: np.ndarray
    status: np.ndarray  # _NONE (no reading) .. _VALID

    @classmethod
    def classify(cls, r: nb.Readings) -> _Reading:
        region, ntype, poss = nb.classify(r.cc, r.nsn)
        status = np.where(
            nb.is_valid(region, ntype),
            _VALID,
            np.where(poss == ValidationResult.IS_POSSIBLE, _POSSIBLE, _IMPOSSIBLE),
        )
        status = np.where(r.error != nb.ParseError.OK, _NONE, status).astype(np.int8)
        return cls(r.cc, r.nsn.cast(LARGE), r.error, region, ntype, poss, status)

    def pick(self, rows: np.ndarray) -> _Reading:
        return _Reading(
            self.cc[rows],
            nb.take(self.nsn, rows),
            self.error[rows],
            self.region[rows],
            self.ntype[rows],
            self.poss[rows],
            self.status[rows],
        )

    def e164(self) -> np.ndarray:
        keys = np.asarray(nb.e164(self.cc, self.nsn).to_pylist(), dtype=object)
        keys[self.status == _NONE] = None
        return keys

    def label(self, rows: np.ndarray, how: str | list[str]) -> list[str]:
        """ "+1 201-555-0123 (national US)", "+20 15 550123 (international)" ..."""
        text = nb.format_international(self.cc[rows], nb.take(self.nsn, rows)).to_pylist()
        hows = [how] * len(text) if isinstance(how, str) else how
        return [f"{t} ({h})" for t, h in zip(text, hows, strict=True)]


def _read_all(n: int, parts: list[tuple[np.ndarray, nb.Readings]]) -> list[_Reading]:
    """Classify several kinds of readings of the n cells in one pass: one _Reading per part,
    each of length n (status _NONE where the part has no reading of a cell)."""
    used = [k for k, (idx, _) in enumerate(parts) if len(idx)]
    m = max(len(used), 1)
    cc = np.zeros(n * m, dtype=np.int64)
    error = np.full(n * m, nb.ParseError.INVALID_COUNTRY_CODE, dtype=np.int8)
    pieces = []
    for j, k in enumerate(used):
        idx, r = parts[k]
        pos = j * n + np.asarray(idx, dtype=np.int64)
        cc[pos] = r.cc
        error[pos] = r.error
        pieces.append((pos, r.nsn))
    nsn = nb.scatter_many(pa.array([""] * (n * m), LARGE), pieces)
    whole = _Reading.classify(nb.Readings(cc, nsn, error))
    blocks = [whole.pick(np.arange(j * n, (j + 1) * n)) for j in range(len(used))]
    if not used:
        nothing = whole.pick(np.arange(n))
    elif len(used) == len(parts):
        return blocks
    else:
        nothing = _Reading.classify(
            nb.Readings(np.zeros(n, np.int64), pa.array([""] * n, LARGE),
                        np.full(n, nb.ParseError.INVALID_COUNTRY_CODE, np.int8))
        )
    return [blocks[used.index(k)] if k in used else nothing for k in range(len(parts))]


@dataclass
class _Written:
    """How each cell is written, and where its international reading starts."""

    kind: np.ndarray
    intl: pa.Array  # the digits after "+" / the international prefix (or all of them)
    alt: np.ndarray  # the region's prefix is "00" + more digits: also read after plain "00"
    after_plus: np.ndarray  # "+00 44 ...": a "+" before an international prefix


def _kinds(cells: _Cells, region: str | None) -> _Written:
    d = cells.digits
    n = len(d)
    zero = nb.startmatch(d, "0")
    kind = np.full(n, _BARE, dtype=np.int8)
    kind[zero] = _ZERO
    kind[~zero & cells.clue] = _CLUE
    kind[cells.plus & ~zero] = _PLUS
    kind[cells.plus & zero] = _PLUS_BAD
    open_ = ~cells.plus | zero  # "+0..." is read again without its "+", as phonenumbers does
    intl = d
    alt = np.zeros(n, dtype=bool)
    idd = np.zeros(n, dtype=bool)
    zz_start = nb.startmatch(d, "00[1-9]")
    if region is not None:
        idd, after = nb.strip_idd(d, region)
        idd &= open_
        kind[idd] = _IDD
        intl = pc.if_else(pa.array(idd), after, intl)
        alt = idd & zz_start & (nb.lengths(d) - nb.lengths(after) > 2)
    zz = open_ & ~idd & zz_start
    kind[zz] = _ZZ
    intl = pc.if_else(pa.array(zz), pc.utf8_slice_codeunits(d, 2), intl).cast(LARGE)
    return _Written(kind, intl, alt, cells.plus & (idd | zz))


def _decide(
    cells: _Cells, state: _State, region: str | None, ambiguous: str, strict: bool | None,
    row_region: bool = False,
) -> None:
    """Read each cell's digits every way its writing allows, choose, and give verdicts."""
    n = len(cells.uid)
    if not n:
        return
    w = _kinds(cells, region)
    d = cells.digits
    i_idx = np.flatnonzero(np.isin(w.kind, [_PLUS, _IDD, _ZZ, _BARE, _CLUE]))
    a_idx = np.flatnonzero(w.alt)
    parts = [
        (i_idx, nb.read_international(nb.take(w.intl, i_idx))),
        (a_idx, nb.read_international(pc.utf8_slice_codeunits(nb.take(d, a_idx), 2))),
    ]
    if region is not None:
        n_idx = np.flatnonzero(np.isin(w.kind, [_ZZ, _ZERO, _CLUE, _BARE]))
        parts.append((n_idx, nb.read_national(nb.take(d, n_idx), region)))
    else:
        parts.append((np.zeros(0, np.int64), nb.Readings.empty(0)))
    ri, ri00, rn = _read_all(n, parts)
    chosen = np.full(n, _CHOSE_NONE, dtype=np.int8)
    pairs: dict[int, str] = {}  # ambiguous cell -> its two readings, for hlr_error
    _choose_marked(cells, w, ri, ri00, rn, region, chosen, pairs, state)
    if region is None:
        _choose_bare_without_region(cells, w, ri, chosen, pairs, state)
    else:
        _choose_bare_with_region(cells, w, ri, rn, region, chosen, pairs)
    _resolve_ambiguous(cells, w, chosen, pairs, ambiguous, state)
    _verdicts(cells, w, chosen, (ri, ri00, rn), region if row_region else None, strict, state,
              region)
    if region is None:  # say how bare digits were read when that reading fails
        bare = cells.uid[(w.kind == _BARE) & (chosen == _CHOSE_I)]
        failed = bare[state.source[bare] == "invalid"]
        state.error[failed] = [
            f"digits without '+' and no default_region: {e}" for e in state.error[failed]
        ]


def _choose_marked(
    cells: _Cells,
    w: _Written,
    ri: _Reading,
    ri00: _Reading,
    rn: _Reading,
    region: str | None,
    chosen: np.ndarray,
    pairs: dict[int, str],
    state: _State,
) -> None:
    """Cells with a "+", an international prefix or a trunk 0."""
    kind = w.kind
    chosen[kind == _PLUS] = _CHOSE_I
    bad = kind == _PLUS_BAD
    state.mark(cells.uid[bad], "invalid", f"{ERR_UNKNOWN_CC} ('+' followed by 0)")
    state.reading_invalid[cells.uid[bad]] = True
    idd = kind == _IDD
    chosen[idd] = _CHOSE_I
    if w.alt.any():  # "0055 11 ...": BR's prefix 0055, or 00 then +55?
        a = np.flatnonzero(w.alt)
        pick = _better(ri.status[a], ri00.status[a], _CHOSE_I, _CHOSE_I00)
        pick[_same(ri, ri00, a)] = _CHOSE_I
        chosen[a] = pick
        amb = a[pick == _CHOSE_AMBIGUOUS]
        label = nb.region_facts(region).idd_label if region else ""
        how = f"after {region}'s international prefix {label}"
        for j, text in zip(amb, _pair_texts(ri, ri00, amb, how, "after 00"), strict=True):
            pairs[int(j)] = text
    zz = kind == _ZZ
    zero = kind == _ZERO
    if region is None:
        # "00" is the international prefix of most of the world: what follows is read as "+"
        # would be (a possible number is sent with a note); no number after it is invalid
        ok = zz & (ri.status >= _POSSIBLE)
        chosen[ok] = _CHOSE_I
        _longer_prefixes(cells, np.flatnonzero(zz & (ri.status == _POSSIBLE)), ri, chosen, pairs)
        none = np.flatnonzero(zz & (ri.status < _POSSIBLE))
        keys = ri.pick(none).e164()
        state.mark(
            cells.uid[none],
            "invalid",
            np.array([_weak_00_reason(k) for k in keys], dtype=object),
        )
        state.reading_invalid[cells.uid[none]] = True
        for k, err in ((zero, ERR_NO_REGION), (kind == _CLUE, ERR_NO_REGION_BRACKETS)):
            state.mark(cells.uid[k], "invalid", err)
            state.reading_invalid[cells.uid[k]] = True
        return
    # "00" where the region dials abroad with another prefix: national when that is a valid
    # number there (JP 0066...), else international
    chosen[zz] = np.where(rn.status[zz] == _VALID, _CHOSE_N, _CHOSE_I)
    chosen[zero] = _CHOSE_N


@functools.cache
def _longer_00_prefixes() -> tuple[tuple[str, str], ...]:
    """(a region, its prefix as written) for each international prefix other than plain 00
    (``0011`` in Australia, ``001`` ...), one region per distinct prefix pattern."""
    out: dict[str, tuple[str, str]] = {}
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        facts = nb.region_facts(region)
        idd = facts.international_prefix
        if idd and idd != "00" and idd not in out and re.fullmatch(r"00\d+", facts.idd_label):
            out[idd] = (region, facts.idd_label)
    return tuple(out.values())


def _longer_prefixes(
    cells: _Cells, rows: np.ndarray, ri: _Reading, chosen: np.ndarray, pairs: dict[int, str]
) -> None:
    """No region, "00" then a possible but not valid number: when the digits also start with
    a longer international prefix (Australia's ``0011``) that leaves a valid number,
    ambiguous."""
    if not rows.size:
        return
    digits = nb.take(cells.digits, rows)
    length = nb.lengths(digits)
    keys = ri.pick(rows).e164()
    found: dict[int, dict[str, str]] = {}
    for region, label in _longer_00_prefixes():
        hit, after = nb.strip_idd(digits, region)
        hit = np.flatnonzero(hit & (length - nb.lengths(after) > 2))
        if not hit.size:
            continue
        other = _Reading.classify(nb.read_international(nb.take(after, hit)))
        stands = np.flatnonzero(other.status == _VALID)
        texts = other.label(stands, f"after {region}'s international prefix {label}")
        for k, key, text in zip(stands, other.pick(stands).e164(), texts, strict=True):
            j = int(hit[k])
            if key != keys[j]:
                found.setdefault(j, {}).setdefault(key, text)
    for j, alternatives in found.items():
        row = rows[j]
        chosen[row] = _CHOSE_AMBIGUOUS
        mine = ri.label(np.array([row]), "after 00")
        pairs[int(row)] = _either([*alternatives.values(), *mine])


def _weak_00_reason(key: str | None) -> str:
    what = f"{key} is not a possible number" if key else "no number follows"
    return f"'00' and no default_region: {what} (set default_region to read the prefix)"


def _better(s1: np.ndarray, s2: np.ndarray, one: int, two: int) -> np.ndarray:
    """One reading against another: the valid one, else the possible one; a tie between
    readings that stand is ambiguous, and when neither stands the first gives its reason."""
    pick = np.where(s1 >= s2, one, two).astype(np.int8)
    pick[(s1 == s2) & (s1 >= _POSSIBLE)] = _CHOSE_AMBIGUOUS
    return pick


def _same(r1: _Reading, r2: _Reading, rows: np.ndarray) -> np.ndarray:
    """Both readings stand and are the same number."""
    ok = (r1.status[rows] != _NONE) & (r2.status[rows] != _NONE) & (r1.cc[rows] == r2.cc[rows])
    return ok & nb._bools(pc.equal(nb.take(r1.nsn, rows), nb.take(r2.nsn, rows)))


def _pair_texts(
    r1: _Reading, r2: _Reading, rows: np.ndarray, how1: str | list[str], how2: str
) -> list[str]:
    return [f"{a} or {b}" for a, b in zip(r1.label(rows, how1), r2.label(rows, how2), strict=True)]


def _choose_bare_with_region(
    cells: _Cells,
    w: _Written,
    ri: _Reading,
    rn: _Reading,
    region: str,
    chosen: np.ndarray,
    pairs: dict[int, str],
) -> None:
    """Digits with no "+", prefix or trunk 0, in a list with a default region: its national
    number, or international digits? (`_bare_rule`)"""
    sel = np.flatnonzero(np.isin(w.kind, [_BARE, _CLUE]))
    if not sel.size:
        return
    own = ri.cc[sel] == nb.region_facts(region).country_code
    s_i = ri.status[sel].copy()
    s_i[(w.kind[sel] == _CLUE) & ~own] = _NONE  # brackets: national (or our own code)
    s_n = rn.status[sel]
    natural = np.zeros(sel.size, dtype=bool)
    need = np.flatnonzero((s_n >= _POSSIBLE) & (s_i >= _POSSIBLE))
    if need.size:
        rows = sel[need]
        natural[need] = nb.written_nationally(
            rn.cc[rows], nb.take(rn.nsn, rows), nb.take(cells.digits, rows)
        )
    pick = _bare_rule(s_i, s_n, own, natural)
    pick[_same(ri, rn, sel)] = _CHOSE_N
    chosen[sel] = pick
    amb = sel[pick == _CHOSE_AMBIGUOUS]
    for j, text in zip(
        amb, _pair_texts(rn, ri, amb, f"national {region}", "international"), strict=True
    ):
        pairs[int(j)] = text


def _bare_rule(
    s_i: np.ndarray, s_n: np.ndarray, own: np.ndarray, natural: np.ndarray
) -> np.ndarray:
    """The rule for bare digits with a default region, from the standing of the international
    reading (s_i), the national one (s_n), whether the international reading has the region's
    own country code, and whether the digits are how the region writes the national number."""
    pick = np.full(s_i.size, _CHOSE_N, dtype=np.int8)  # N, or N's reason when neither stands
    pick[(s_i >= _POSSIBLE) & (s_n < _POSSIBLE)] = _CHOSE_I
    both = (s_i >= _POSSIBLE) & (s_n >= _POSSIBLE)
    v_i, v_n = s_i == _VALID, s_n == _VALID
    amb = _CHOSE_AMBIGUOUS
    # the region's own country code: both readings are numbers of the region
    rule_own = np.select(
        [v_n & v_i & natural, v_n & v_i, v_n, v_i],
        [amb, _CHOSE_I, _CHOSE_N, _CHOSE_I],
        default=amb,
    )
    # a foreign code: the region's national writing wins; otherwise valid beats possible
    rule_foreign = np.select(
        [natural, v_n & v_i, v_n, v_i],
        [_CHOSE_N, amb, _CHOSE_N, _CHOSE_I],
        default=amb,
    )
    pick[both] = np.where(own, rule_own, rule_foreign)[both]
    return pick


def _choose_bare_without_region(
    cells: _Cells,
    w: _Written,
    ri: _Reading,
    chosen: np.ndarray,
    pairs: dict[int, str],
    state: _State,
) -> None:
    """Bare digits without a default region: international, unless the digits are also how
    some country writes a valid number of its own (then ambiguous)."""
    bare = np.flatnonzero(w.kind == _BARE)
    if not bare.size:
        return
    rows, cc, nsn = nb.natural_national_readings(nb.take(cells.digits, bare))
    region, ntype, _ = nb.classify(cc, nsn)
    closed = nb.fixed_length_range(region, ntype)
    # valid readings in open ranges do not make a cell ambiguous, but are counted in its error
    loose: dict[int, set[str]] = {}
    open_keys = nb.e164(cc[~closed], nsn.filter(pa.array(~closed))).to_pylist()
    for r, key in zip(rows[~closed], open_keys, strict=True):
        loose.setdefault(int(r), set()).add(key)
    rows, cc, nsn = rows[closed], cc[closed], nsn.filter(pa.array(closed))
    # a possible, not valid, international reading is sent (as "+" would be) only when the
    # digits are not also some country's national writing of a possible number
    weak = np.flatnonzero(ri.status[bare] == _POSSIBLE)
    weak = weak[~np.isin(weak, rows)]
    if weak.size:
        more, cc2, nsn2 = nb.natural_national_readings(
            nb.take(cells.digits, bare[weak]), possible=True
        )
        rows = np.concatenate([rows, weak[more]])
        cc = np.concatenate([cc, cc2])
        nsn = pa.concat_arrays([nsn.cast(LARGE), nsn2.cast(LARGE)])
    intl_keys = ri.pick(bare).e164()
    keys = nb.e164(cc, nsn).to_pylist()
    seen: dict[int, dict[str, int]] = {}  # bare row -> each other reading's key -> its line
    for j, (r, key) in enumerate(zip(rows, keys, strict=True)):
        if key != intl_keys[r]:
            seen.setdefault(int(r), {}).setdefault(key, j)
    national: dict[int, list[str]] = {}
    if seen:
        js = np.array([j for found in seen.values() for j in found.values()])
        found = _Reading.classify(nb.Readings(cc[js], nb.take(nsn, js), np.zeros(js.size, np.int8)))
        hows = [
            f"national {r or phonenumbers.region_code_for_country_code(int(c))}"
            for r, c in zip(found.region, found.cc, strict=True)
        ]
        texts = iter(found.label(np.arange(js.size), hows))
        for r, keyed in seen.items():
            national[int(bare[r])] = [next(texts) for _ in keyed]
    s_i = ri.status[bare]
    conflict = np.array([int(b) in national for b in bare], dtype=bool)
    # no other reading: international, as with "+" (when not valid: its note, or its reason)
    chosen[bare[~conflict]] = _CHOSE_I
    amb = bare[(s_i >= _POSSIBLE) & conflict]
    chosen[amb] = _CHOSE_AMBIGUOUS
    for j, text in zip(amb, ri.label(amb, "international"), strict=True):
        r = int(np.searchsorted(bare, j))
        others = loose.get(r, set()) - set(seen.get(r, {})) - {intl_keys[r]}
        pairs[int(j)] = _either([*national[int(j)], text], more=len(others))
    only_national = bare[(s_i < _POSSIBLE) & conflict]
    state.mark(
        cells.uid[only_national],
        "invalid",
        np.array(
            [
                f"a national number ({_either(national[int(b)])}) and no default_region"
                for b in only_national
            ],
            dtype=object,
        ),
    )
    state.reading_invalid[cells.uid[only_national]] = True


def _either(readings: list[str], most: int = 4, more: int = 0) -> str:
    """ "A or B", "A, B or C": every plausible reading of a cell (past ``most``, the first
    ones, the last one and how many more; ``more`` readings not listed are counted too)."""
    if len(readings) + (more > 0) > most:
        more += len(readings) - most + 1
        readings = readings[: most - 2] + readings[-1:]
    if more:
        readings = [*readings, f"{more} more reading{'s' if more > 1 else ''}"]
    return " or ".join([", ".join(readings[:-1]), readings[-1]] if len(readings) > 1 else readings)


def _resolve_ambiguous(
    cells: _Cells,
    w: _Written,
    chosen: np.ndarray,
    pairs: dict[int, str],
    ambiguous: str,
    state: _State,
) -> None:
    amb = np.flatnonzero(chosen == _CHOSE_AMBIGUOUS)
    if not amb.size:
        return
    texts = [pairs[int(j)] for j in amb]
    if ambiguous == "skip":
        state.mark(
            cells.uid[amb],
            "ambiguous",
            np.array([f"ambiguous: {t}" for t in texts], dtype=object),
        )
        return
    prefix_case = w.alt[amb]  # international after the region's prefix, or after "00"
    if ambiguous == "international":
        chosen[amb] = np.where(prefix_case, _CHOSE_I00, _CHOSE_I)
    else:
        chosen[amb] = np.where(prefix_case, _CHOSE_I, _CHOSE_N)
    state.add_note(
        cells.uid[amb],
        [f"ambiguous ({t}): read as ambiguous={ambiguous!r} says" for t in texts],
    )


def _verdicts(
    cells: _Cells,
    w: _Written,
    chosen: np.ndarray,
    readings: tuple[_Reading, _Reading, _Reading],
    row_region: str | None,
    strict: bool | None,
    state: _State,
    region: str | None,
) -> None:
    """Keys, verdicts, facts and notes for the chosen readings (``row_region``: the region when
    it is the row's own country, from a region column)."""
    ri, ri00, rn = readings
    open_ = state.open()[cells.uid]
    rows = np.flatnonzero(open_ & np.isin(chosen, [_CHOSE_I, _CHOSE_N, _CHOSE_I00]))
    if not rows.size:
        return
    which = chosen[rows]
    parts = {_CHOSE_I: ri.pick(rows), _CHOSE_N: rn.pick(rows), _CHOSE_I00: ri00.pick(rows)}

    def sel(attr: str) -> np.ndarray:
        return np.select([which == c for c in parts], [getattr(p, attr) for p in parts.values()])

    nsn = parts[_CHOSE_I].nsn
    for c in (_CHOSE_N, _CHOSE_I00):
        nsn = pc.if_else(pa.array(which == c), parts[c].nsn, nsn)
    r = _Reading(
        sel("cc"),
        nsn.cast(LARGE),
        sel("error"),
        sel("region"),
        sel("ntype"),
        sel("poss"),
        sel("status"),
    )
    uid = cells.uid[rows]
    _notes(cells, w, rows, which, ri, rn, region, state)
    failed = r.error != nb.ParseError.OK
    for code, reason in _PARSE_REASONS.items():
        state.mark(uid[failed & (r.error == code)], "invalid", reason)
    known = ~failed
    state.region[uid[known]] = np.where(r.region[known] == "001", None, r.region[known])
    state.ntype[uid[known]] = _type_names(r.ntype[known])
    weak = known & (r.status == _POSSIBLE)
    # a national reading (the digits read in the region, not as some country's code + number)
    national = (which == _CHOSE_N) & ~_same(ri, rn, rows)
    # with strict=None a possible, not valid number is also withheld when it was written
    # internationally for another country than the row's own (two signals against it)
    foreign = np.zeros(len(rows), dtype=bool)
    if row_region is not None:
        foreign = r.cc != phonenumbers.country_code_for_region(row_region)
    withhold = weak & ((national | foreign) if strict is None else bool(strict))
    send = known & ((r.status == _VALID) | (weak & ~withhold))
    key_list = np.asarray(nb.e164(r.cc, r.nsn).to_pylist(), dtype=object)
    state.number[uid[send]] = key_list[send]
    _api_length_check(state, uid[send], key_list[send])
    still = send & (state.number[uid] != None)  # noqa: E711 (element-wise)
    state.add_note(uid[still & weak], NOTE_NOT_VALID)
    state.mark(uid[withhold & ~national & ~foreign], "invalid", ERR_NOT_VALID)
    _withhold_foreign(np.flatnonzero(withhold & ~national & foreign), r, row_region, uid, state)
    _withhold_national(cells, rows[withhold & national], ri, rn, region, state)
    impossible = known & (r.status == _IMPOSSIBLE)
    for i, c, p in zip(uid[impossible], r.cc[impossible], r.poss[impossible], strict=True):
        why = _LENGTH_WORDS.get(int(p), "invalid length")
        state.mark(i, "invalid", f"not a possible number for {_where_label(int(c))} ({why})")
    # (withheld by the strict rule: a possible number, so msisdn=False does not send it either)
    state.reading_invalid[uid[~still & ~withhold]] = True


def _withhold_foreign(
    at: np.ndarray, r: _Reading, row_region: str | None, uid: np.ndarray, state: _State
) -> None:
    """A number written for another country than the row's own, possible but not valid there,
    is not sent: the error names both countries (``at``: positions in ``r`` and ``uid``)."""
    if not at.size:
        return
    errors = [
        ERR_NOT_VALID_FOREIGN.format(where=_where_label(int(c)), region=row_region)
        for c in r.cc[at]
    ]
    state.mark(uid[at], "invalid", np.array(errors, dtype=object))


def _withhold_national(
    cells: _Cells, rows: np.ndarray, ri: _Reading, rn: _Reading, region: str | None,
    state: _State,
) -> None:
    """A national reading that is possible but not valid in the region is not sent (the number
    of another country, or a typo, read in the wrong country): the error names the reading and
    a valid international reading of the same digits, if there is one."""
    if not rows.size:
        return
    texts = rn.label(rows, f"national {region}")
    valid_i = ri.status[rows] == _VALID
    also = dict(zip(rows[valid_i], ri.label(rows[valid_i], "international"), strict=True))
    errors = []
    for j, text in zip(rows, texts, strict=True):
        other = also.get(j)
        alt = f"; the digits also read as {other}, a valid number" if other else ""
        errors.append(f"{ERR_NOT_VALID_NATIONAL.format(reading=text)}{alt}")
    state.mark(cells.uid[rows], "invalid", np.array(errors, dtype=object))


def _notes(
    cells: _Cells,
    w: _Written,
    rows: np.ndarray,
    which: np.ndarray,
    ri: _Reading,
    rn: _Reading,
    region: str | None,
    state: _State,
) -> None:
    """How the digits were read, where that is not plain from the cell."""
    uid = cells.uid[rows]
    k = w.kind[rows]
    pick_i = which != _CHOSE_N
    bare = np.isin(k, [_BARE, _CLUE])
    state.add_note(uid[w.after_plus[rows]], "'+' before an international prefix ignored")
    if region is None:
        state.add_note(uid[pick_i & bare & (ri.status[rows] != _NONE)], NOTE_INTL_DIGITS)
        state.add_note(uid[k == _ZZ], "'00' read as the international prefix")
        return
    same = _same(ri, rn, rows)
    state.add_note(uid[pick_i & bare & ~same], NOTE_INTL_DIGITS)
    state.add_note(uid[~pick_i], f"national format read as {region}")
    facts = nb.region_facts(region)
    state.add_note(
        uid[pick_i & (k == _ZZ)],
        f"'00' read as the international prefix ({region} dials {facts.idd_label})",
    )
    # a valid reading passed over (not when the region's own national writing won)
    alt_i = ~pick_i & bare & ~same & (ri.status[rows] == _VALID) & (rn.status[rows] != _VALID)
    alt_n = pick_i & bare & ~same & (rn.status[rows] == _VALID)
    for mask, reading, how in ((alt_i, ri, "international"), (alt_n, rn, f"national {region}")):
        sel = rows[mask]
        if sel.size:
            texts = reading.label(sel, how)
            state.add_note(cells.uid[sel], [f"also reads as {t}" for t in texts])


_TYPE_NAME_BY_CODE = np.full(128, None, dtype=object)
for _code, _name in nb.TYPE_NAMES.items():
    _TYPE_NAME_BY_CODE[_code] = _name


def _type_names(codes: np.ndarray) -> np.ndarray:
    return _TYPE_NAME_BY_CODE[codes.astype(np.int64)]


def _where_label(cc: int) -> str:
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(cc, ())
    if regions and regions[0] != "001":
        return regions[0]  # possible lengths are judged with the main region's metadata
    return f"+{cc}"


def _api_length_check(state: _State, uid: np.ndarray, keys: np.ndarray) -> None:
    """Keys outside the API's 10-15 characters ("+" counts) are invalid: the API refuses them."""
    if not keys.size:
        return
    lengths = nb.lengths(pa.array(keys.tolist(), LARGE))
    out = (lengths < API_MIN_LEN) | (lengths > API_MAX_LEN)
    rule = ERR_API_LENGTH.format(lo=API_MIN_LEN, hi=API_MAX_LEN)
    for i, n, key in zip(uid[out], lengths[out], keys[out], strict=True):
        state.mark(i, "invalid", f"{key} has {n} characters; {rule}")


# --------------------------------------------------------------------------------------------
# msisdn=False: what is not a possible number is sent as written
# --------------------------------------------------------------------------------------------


def _as_written(cells: _Cells, state: _State) -> None:
    """For the API's non-canonical mode: a cell whose digits are not a possible number (a
    duplicated country code, an unknown range) is sent as written, cleaned of separators, with
    ``+`` for an international prefix; every possible number keeps its E.164 key."""
    redo = state.reading_invalid[cells.uid] & (state.source[cells.uid] == "invalid")
    rows = np.flatnonzero(redo)
    if not rows.size:
        return
    uid = cells.uid[rows]
    intl_digits = _kinds(cells, None).intl
    marked = cells.plus[rows] | nb.startmatch(nb.take(cells.digits, rows), "00[1-9]")
    written = pc.if_else(
        pa.array(marked),
        nb._join(["+", nb.take(intl_digits, rows)], rows.size),
        nb.take(cells.digits, rows),
    )
    keys = np.asarray(written.to_pylist(), dtype=object)
    reasons = state.error[uid].copy()
    state.source[uid] = None
    state.error[uid] = None
    state.number[uid] = keys
    state.add_note(uid, [f"sent as written (msisdn=False): {why}" for why in reasons])
    shaped = np.array([k.startswith("+") for k in keys], dtype=bool)
    if shaped.any():
        digits = pa.array([k[1:] for k in keys[shaped]], LARGE)
        cc, cclen = nb.split_country_code(digits)
        nsn = nb._after_country_code(digits, cclen)
        reg, ntype, _ = nb.classify(cc, nsn)
        sel = uid[shaped]
        known = cc != 0
        state.region[sel[known]] = np.where(reg[known] == "001", None, reg[known])
        state.ntype[sel[known]] = _type_names(ntype[known])
        state.region[sel[~known]] = None
        state.ntype[sel[~known]] = None
    _api_length_check(state, uid, keys)


def _apply_only_mobile(state: _State) -> None:
    sent = state.number != None  # noqa: E711
    for i in np.flatnonzero(sent):
        t = state.ntype[i]
        if t in NOT_MOBILE_TYPES:
            state.mark(i, "skipped", f"not a mobile number ({t})")


# --------------------------------------------------------------------------------------------
# Back to the rows
# --------------------------------------------------------------------------------------------


def _frame(
    state: _State, take: pa.Array | None = None, index: pd.Index | None = None
) -> pd.DataFrame:
    """The output frame: one line per distinct cell then the missing cell, or (``take``) the
    lines at those positions, on ``index``."""
    columns = {
        name: pd.arrays.ArrowStringArray(
            pa.chunked_array([column if take is None else column.take(take)])
        )
        for name, column in _columns(state).items()
    }
    return pd.DataFrame(columns, index=index, copy=False)


def _columns(state: _State) -> dict[str, pa.Array]:
    """The output columns for the ``n`` distinct cells, then the missing cell (line ``n``)."""
    missing_row = {"hlr_source": "missing", "hlr_error": ERR_MISSING}
    columns = {}
    for name, arr in zip(
        NORMALIZED_COLUMNS,
        (state.number, state.source, state.error, state.note, state.region, state.ntype),
        strict=True,
    ):
        full = np.empty(state.n + 1, dtype=object)
        full[: state.n] = arr
        full[state.n] = missing_row.get(name)
        columns[name] = pa.array(full.tolist(), type=LARGE)
    return columns
