"""Country values → the regions libphonenumber reads national numbers in (pure: no I/O).

`resolve_region` reads one country value as a CRM export holds it (``GB``, ``GBR``, ``United
Kingdom``, ``UK``, ``Deutschland``, ``+44``, ``0044``, 44, ...); `resolve_regions` a whole
column, once per distinct value. Accepted: ISO codes, pycountry's names in English and in every
language of its catalogues, a few informal names (`ALIASES`), and calling codes (read as the
code's main region). Invariants: only regions libphonenumber supports are returned, anything
else is *unrecognised* (``None``); a name meaning two countries is dropped, never guessed;
nothing raises. What is accepted, in full: ``docs/internals/normalize.md``.

>>> [resolve_region(v) for v in ["gb", "GBR", "United Kingdom", "UK", "Deutschland", "+44", 49]]
['GB', 'GB', 'GB', 'GB', 'DE', 'GB', 'DE']
>>> resolve_region("Narnia") is None, resolve_region(None) is None
(True, True)
"""

from __future__ import annotations

import decimal
import functools
import gettext
import math
import numbers
import os
import re
import unicodedata
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers

__all__ = [
    "ALIASES",
    "BLANK",
    "OWN",
    "UNRECOGNISED",
    "RegionColumn",
    "is_blank",
    "resolve_region",
    "resolve_regions",
]

#: Outcomes of a row's region value (the run report counts rows by them).
OWN = "own"  #: recognised: the row is read in its own region
BLANK = "blank"  #: no value in the row
UNRECOGNISED = "unrecognised"  #: a value that names no region libphonenumber supports

#: Informal names pycountry does not carry (its names and translations cover the rest).
ALIASES: dict[str, str] = {
    "UK": "GB",
    "U.K.": "GB",
    "Great Britain": "GB",
    "Britain": "GB",
    "England": "GB",
    "Scotland": "GB",
    "Wales": "GB",
    "Northern Ireland": "GB",
    "USA": "US",
    "U.S.": "US",
    "U.S.A.": "US",
    "America": "US",
    "United States of America": "US",
    "Holland": "NL",
    "Russia": "RU",
    "Czech Republic": "CZ",
    "Turkey": "TR",
    "Ivory Coast": "CI",
    "UAE": "AE",
    "Emirates": "AE",
    "Vatican": "VA",
    "Macedonia": "MK",
    "Swaziland": "SZ",
    "Burma": "MM",
    "Cape Verde": "CV",
    "Palestine": "PS",
    "Россия": "RU",
    "Hong Kong SAR": "HK",
    "Korea": "KR",
    "EL": "GR",  # the EU's code for Greece
}

#: Text that means "no value" in a country column ("NA" is Namibia, so it is not here).
_BLANK_WORDS = frozenset(
    {"", "nan", "none", "null", "nil", "n/a", "n.a.", "<na>", "#n/a", "-", "--", "?", "unknown"}
)
_RE_CALLING_CODE = re.compile(r"^(?:\+|00|\+00)?\s*(\d{1,3})$")
_RE_NOT_WORD = re.compile(r"[^\w+]+")


def _fold(text: str) -> str:
    """Case, accents, punctuation and spacing away: ``" España "`` → ``"espana"``."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = _RE_NOT_WORD.sub(" ", text.replace("'", "").replace("’", "")).strip()
    return text[4:] if text.startswith("the ") else text


def _reordered(name: str) -> list[str]:
    """ISO's inverted names also in reading order: "Korea, Republic of" → "Republic of Korea"."""
    head, sep, tail = name.partition(", ")
    return [name, f"{tail} {head}"] if sep else [name]


@functools.cache
def _table() -> dict[str, str]:
    """Folded name or code → alpha-2, built once per process."""
    with warnings.catch_warnings():  # pycountry < 24 warns on a name a country lacks
        warnings.simplefilter("ignore", UserWarning)
        return _build_table()


def _build_table() -> dict[str, str]:
    import pycountry  # the runtime dependency for names; imported on first use only

    supported = phonenumbers.SUPPORTED_REGIONS
    english: dict[str, str] = {}
    local: dict[str, set[str]] = {}
    msgids: dict[str, str] = {}
    for country in pycountry.countries:
        alpha2 = country.alpha_2
        if alpha2 not in supported:
            continue
        english[_fold(alpha2)] = alpha2
        english[_fold(country.alpha_3)] = alpha2
        for attr in ("name", "official_name", "common_name"):
            name = getattr(country, attr, None)
            if name:
                msgids[name] = alpha2
                for variant in _reordered(name):
                    english.setdefault(_fold(variant), alpha2)
    locales = pycountry.LOCALES_DIR
    for lang in sorted(os.listdir(locales)):
        if not os.path.exists(os.path.join(locales, lang, "LC_MESSAGES", "iso3166-1.mo")):
            continue
        catalog = gettext.translation("iso3166-1", locales, languages=[lang])
        for msgid, alpha2 in msgids.items():
            translated = catalog.gettext(msgid)
            if translated != msgid:
                for variant in _reordered(translated):
                    local.setdefault(_fold(variant), set()).add(alpha2)
    table = {k: next(iter(v)) for k, v in local.items() if len(v) == 1 and k}
    table.update(english)  # English names and codes win over a translation that collides
    table.update({_fold(r): r for r in supported})  # XK, AC, TA: libphonenumber's, not ISO's
    table.update({_fold(k): v for k, v in ALIASES.items()})
    return table


def is_blank(value: Any) -> bool:
    """True for a null, NaN, empty or placeholder value ("n/a", "unknown", "-").

    >>> is_blank(None), is_blank(float("nan")), is_blank(" n/a "), is_blank("NA")
    (True, True, True, False)
    """
    try:
        if value is None or value is pd.NA or value is pd.NaT:
            return True
        if isinstance(value, float | np.floating) and math.isnan(value):
            return True
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return isinstance(value, str) and value.strip().casefold() in _BLANK_WORDS
    except Exception:
        return False


def _calling_code(code: int) -> str | None:
    region = phonenumbers.region_code_for_country_code(code)
    return region if region in phonenumbers.SUPPORTED_REGIONS else None


def resolve_region(value: Any) -> str | None:
    """The alpha-2 region a country value names, or ``None`` (blank or unrecognised). Never
    raises.

    >>> resolve_region("+1"), resolve_region("0049"), resolve_region("Österreich")
    ('US', 'DE', 'AT')
    >>> resolve_region("United States of America"), resolve_region(" great britain ")
    ('US', 'GB')
    """
    try:
        return _resolve(value)
    except Exception:  # any object with a hostile __str__ / __eq__: unrecognised
        return None


def _resolve(value: Any) -> str | None:
    if is_blank(value) or isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, numbers.Integral):
        return _calling_code(int(value)) if 0 < int(value) < 1000 else None
    if isinstance(value, numbers.Real | decimal.Decimal):
        f = float(value)
        return _calling_code(int(f)) if f.is_integer() and 0 < f < 1000 else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    text = value.strip()
    match = _RE_CALLING_CODE.match(text)
    if match:
        return _calling_code(int(match.group(1)))
    if text.endswith(".0") and _RE_CALLING_CODE.match(text[:-2]):  # 44.0 from a float column
        return _resolve(text[:-2])
    return _table().get(_fold(text))


@dataclass(frozen=True)
class RegionColumn:
    """A column of country values, read once per distinct value (`resolve_regions`).

    ``codes[i]``: row ``i``'s position in ``values`` (-1: a null); ``regions[j]``: the region
    of ``values[j]`` (``None``: blank or unrecognised); ``outcomes[j]``: `OWN`, `BLANK` or
    `UNRECOGNISED`.
    """

    codes: np.ndarray
    values: list[Any]
    regions: list[str | None]
    outcomes: list[str]

    def row_outcomes(self) -> dict[str, int]:
        """Rows per outcome (`OWN`, `BLANK`, `UNRECOGNISED`; all three keys)."""
        return self.weighted_outcomes(None)

    def weighted_outcomes(self, weights: Any) -> dict[str, int]:
        """Rows per outcome when value ``i`` of the column stands for ``weights[i]`` rows."""
        counts = np.bincount(self.codes + 1, weights=weights, minlength=len(self.values) + 1)
        counts = np.rint(counts).astype(np.int64)
        out = {OWN: 0, BLANK: int(counts[0]), UNRECOGNISED: 0}
        for outcome, n in zip(self.outcomes, counts[1:], strict=True):
            out[outcome] += int(n)
        return out

    def unrecognised(self) -> list[Any]:
        """The distinct values not recognised (blank ones aside), in first-seen order."""
        return [v for v, o in zip(self.values, self.outcomes, strict=True) if o == UNRECOGNISED]


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except Exception:
        return f"<{type(value).__name__}>"
    return value


def resolve_regions(values: Any) -> RegionColumn:
    """Read a column of country values (any dtype: strings, categoricals, ints, mixed objects,
    nulls), once per distinct value.

    >>> col = resolve_regions(pd.Series(["DE", "Germany", None, "Narnia", 44, "DE"]))
    >>> col.codes.tolist(), col.regions
    ([0, 1, -1, 2, 3, 0], ['DE', 'DE', None, 'GB'])
    >>> col.row_outcomes()
    {'own': 4, 'blank': 1, 'unrecognised': 1}
    """
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = np.asarray(series.cat.codes, dtype=np.intp)
        uniq = list(series.cat.categories)
    else:
        try:
            codes, uniq_arr = pd.factorize(series, use_na_sentinel=True)
        except TypeError:  # unhashable values (a list, a dict): by their text, unrecognised
            keys = pd.Series([_hashable(v) for v in series], dtype=object)
            codes, uniq_arr = pd.factorize(keys, use_na_sentinel=True)
        codes = np.asarray(codes, dtype=np.intp)
        uniq = list(np.asarray(uniq_arr, dtype=object))
    regions = [resolve_region(v) for v in uniq]
    outcomes = [
        OWN if r is not None else (BLANK if is_blank(v) else UNRECOGNISED)
        for v, r in zip(uniq, regions, strict=True)
    ]
    return RegionColumn(codes, uniq, regions, outcomes)
