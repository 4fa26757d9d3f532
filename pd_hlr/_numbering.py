"""A vectorised mirror of the libphonenumber metadata that :mod:`pd_hlr.normalize` reads.

`phonenumbers` answers one number at a time; this module answers the same questions for whole
pyarrow arrays of ASCII digit strings (no ``+``, no separators, unless said otherwise) at once,
from the same metadata, by running the metadata's own regular expressions as RE2 patterns
(``pyarrow.compute``). Each function names the libphonenumber routine it mirrors;
``tests/test_numbering.py`` compares every one with phonenumbers on many generated numbers of
every region. The functions, by the routine each mirrors: ``docs/internals/normalize.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    PhoneNumber,
    PhoneNumberType,
    ValidationResult,
)
from phonenumbers.phonemetadata import NumberFormat, PhoneMetadata

__all__ = [
    "MAX_NSN_LENGTH",
    "MIN_NSN_LENGTH",
    "TYPE_NAMES",
    "ParseError",
    "Readings",
    "RegionFacts",
    "classify",
    "e164",
    "fixed_length_range",
    "format_international",
    "format_national",
    "national_digits",
    "national_part",
    "natural_national_readings",
    "parse",
    "read_international",
    "read_national",
    "region_facts",
    "split_country_code",
    "strip_idd",
    "strip_national_prefix",
    "trunk_prefix",
    "written_nationally",
]

LARGE = pa.large_string()

#: libphonenumber's limits on a national significant number (``_MIN/_MAX_LENGTH_FOR_NSN``).
MIN_NSN_LENGTH = 2
MAX_NSN_LENGTH = 17

#: PhoneNumberType → the name normalize writes into ``hlr_number_type``.
TYPE_NAMES: dict[int, str] = {
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
UNKNOWN = PhoneNumberType.UNKNOWN

#: Country groups smaller than this are classified with the phonenumbers functions row by row;
#: bigger ones with vectorised regexes (compiling a big pattern costs about as much as ~10 rows).
VECTOR_MIN_GROUP = 64


class ParseError:
    """Why a reading has no number: the NumberParseException error types, plus OK (0)."""

    OK = 0
    INVALID_COUNTRY_CODE = 1
    TOO_SHORT_AFTER_IDD = 2
    TOO_SHORT_NSN = 3
    TOO_LONG = 4
    NOT_A_NUMBER = 5


# --------------------------------------------------------------------------------------------
# Small vectorised helpers
# --------------------------------------------------------------------------------------------


def _bools(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def lengths(arr: pa.Array) -> np.ndarray:
    """Length of each string (0 for nulls)."""
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(
        pc.utf8_length(arr).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64
    )


def search(arr: pa.Array, pattern: str) -> np.ndarray:
    """Regex search hit per string (nulls → False)."""
    if len(arr) == 0:
        return np.zeros(0, dtype=bool)
    return _bools(pc.match_substring_regex(arr, pattern))


def startmatch(arr: pa.Array, pattern: str) -> np.ndarray:
    """``re.match``: the pattern matches at the start."""
    return search(arr, f"^(?:{pattern})")


def fullmatch(arr: pa.Array, pattern: str | None) -> np.ndarray:
    """``re.fullmatch`` per string (False for a missing pattern, like libphonenumber)."""
    if not pattern:
        return np.zeros(len(arr), dtype=bool)
    return search(arr, f"^(?:{pattern})$")


def take(arr: pa.Array, idx: np.ndarray) -> pa.Array:
    return arr.take(pa.array(np.asarray(idx, dtype=np.int64)))


def scatter(base: pa.Array, idx: np.ndarray, values: pa.Array) -> pa.Array:
    """``base`` with ``values`` written at positions ``idx``."""
    return scatter_many(base, [(idx, values)])


def scatter_many(base: pa.Array, parts: list[tuple[np.ndarray, pa.Array]]) -> pa.Array:
    """``base`` with each part's values written at its positions (one take for all)."""
    parts = [(np.asarray(i, dtype=np.int64), v) for i, v in parts if len(i)]
    if not parts:
        return base
    n = len(base)
    index = np.arange(n, dtype=np.int64)
    offset = n
    for idx, _values in parts:
        index[idx] = offset + np.arange(idx.size, dtype=np.int64)
        offset += idx.size
    pool = pa.concat_arrays([base.cast(LARGE)] + [v.cast(LARGE) for _, v in parts])
    return pool.take(pa.array(index))


def groups(keys: np.ndarray) -> Iterable[tuple[int, np.ndarray]]:
    """(key, positions) for each distinct integer key."""
    if not keys.size:
        return
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    ends = np.r_[starts[1:], sk.size]
    for s, e in zip(starts, ends, strict=True):
        yield int(sk[s]), order[s:e]


def _name_groups(pattern: str, prefix: str) -> tuple[str, int]:
    """The pattern with each capturing group named ``prefix1``, ``prefix2`` ... (RE2 via
    pyarrow only reports named groups) and the number of groups."""
    out: list[str] = []
    count = 0
    in_class = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(" and not pattern.startswith("?", i + 1):
            count += 1
            out.append(f"(?P<{prefix}{count}>")
            i += 1
            continue
        out.append(c)
        i += 1
    if re.compile(pattern).groups != count:  # pragma: no cover (metadata patterns are simple)
        raise ValueError(f"cannot name the groups of {pattern!r}")
    return "".join(out), count


def _template_pieces(template: str) -> list[str | int]:
    """A ``re.sub`` template such as ``"268\\1"`` as literal pieces and group numbers."""
    pieces: list[str | int] = []
    for i, part in enumerate(re.split(r"\\(\d)", template)):
        if i % 2:
            pieces.append(int(part))
        elif part:
            pieces.append(part)
    return pieces


def _join(parts: list[pa.Array | str], n: int) -> pa.Array:
    """Element-wise concatenation of arrays and literal strings."""
    arrays = [
        p if isinstance(p, pa.Array | pa.ChunkedArray) else pa.array([p] * n, LARGE) for p in parts
    ]
    if not arrays:
        return pa.array([""] * n, LARGE)
    if len(arrays) == 1:
        return arrays[0].cast(LARGE)
    return pc.binary_join_element_wise(*arrays, pa.scalar("", LARGE))


# --------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------


@cache
def main_metadata(cc: int) -> PhoneMetadata | None:
    """Metadata of the main region of a country calling code (or of a non-geographic code)."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(cc)
    if not regions:
        return None
    return PhoneMetadata.metadata_for_region_or_calling_code(cc, regions[0])


@cache
def trunk_prefix(cc: int) -> str | None:
    """The trunk prefix of a country calling code's main region (``"0"`` for 44, None for 39:
    Italian numbers keep their leading 0 after the country code)."""
    md = main_metadata(cc)
    return md.national_prefix if md is not None else None


@cache
def region_metadata(region: str) -> PhoneMetadata:
    md = PhoneMetadata.metadata_for_region(region, None)
    if md is None:
        raise ValueError(f"no metadata for region {region!r}")
    return md


@dataclass(frozen=True)
class RegionFacts:
    """A region's numbering facts, from libphonenumber's metadata."""

    region: str
    country_code: int
    #: regex of the prefix dialled to call abroad (``"00"``, ``"011"``, ``"0011|..."``)
    international_prefix: str | None
    #: the prefix as people write it, when the regex allows several (``"8~10"``)
    preferred_international_prefix: str | None
    #: trunk prefix dialled before national numbers (``"0"``, ``"1"``, ``"8"``), or None
    national_prefix: str | None
    #: national significant number lengths (and lengths only dialable locally)
    national_lengths: tuple[int, ...]
    local_only_lengths: tuple[int, ...]

    @property
    def idd_label(self) -> str:
        """The international prefix as people write it, e.g. ``"011"``."""
        prefix = self.preferred_international_prefix or self.international_prefix or ""
        return prefix if re.fullmatch(r"[\d~]+", prefix) else prefix.split("|")[0]


@cache
def region_facts(region: str) -> RegionFacts:
    md = region_metadata(region)
    gd = md.general_desc
    assert gd is not None and md.country_code is not None  # every region's metadata has both
    return RegionFacts(
        region=region,
        country_code=int(md.country_code),
        international_prefix=md.international_prefix,
        preferred_international_prefix=md.preferred_international_prefix,
        national_prefix=md.national_prefix,
        national_lengths=tuple(sorted(gd.possible_length)),
        local_only_lengths=tuple(sorted(gd.possible_length_local_only)),
    )


_LENGTH_TABLES: dict[int, tuple[PhoneMetadata, np.ndarray]] = {}


def _length_table(md: PhoneMetadata) -> np.ndarray:
    """``_test_number_length(number, md)`` (type UNKNOWN) for lengths 0..63: it only depends on
    the length. (Metadata objects are unhashable singletons: cached by identity.)"""
    known = _LENGTH_TABLES.get(id(md))
    if known is not None and known[0] is md:
        return known[1]
    gd = md.general_desc
    assert gd is not None  # every region's metadata has one
    possible = sorted(gd.possible_length or ())
    local = set(gd.possible_length_local_only or ())
    table = np.full(64, ValidationResult.INVALID_LENGTH, dtype=np.int8)
    for n in range(64):
        if n in local:
            table[n] = ValidationResult.IS_POSSIBLE_LOCAL_ONLY
        elif not possible:
            table[n] = ValidationResult.INVALID_LENGTH
        elif possible[0] == n or n in possible:
            table[n] = ValidationResult.IS_POSSIBLE
        elif possible[0] > n:
            table[n] = ValidationResult.TOO_SHORT
        elif possible[-1] < n:
            table[n] = ValidationResult.TOO_LONG
    _LENGTH_TABLES[id(md)] = (md, table)
    return table


def length_verdict(lens: np.ndarray, md: PhoneMetadata) -> np.ndarray:
    """libphonenumber's ``_test_number_length`` for numbers of these lengths."""
    return _length_table(md)[np.minimum(lens, 63)]


_CC_VALID = np.zeros(1000, dtype=bool)
for _cc in COUNTRY_CODE_TO_REGION_CODE:
    if 0 < _cc < 1000:
        _CC_VALID[_cc] = True


# --------------------------------------------------------------------------------------------
# Parsing "[+]digits" (phonenumbers.parse)
# --------------------------------------------------------------------------------------------


def split_country_code(digits: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Country calling code at the start of each digit string and its length (0, 0 when there
    is none): ``_extract_country_code``, shortest known code first."""
    n = len(digits)
    cc = np.zeros(n, dtype=np.int64)
    cclen = np.zeros(n, dtype=np.int64)
    if not n:
        return cc, cclen
    lens = lengths(digits)
    ok = (lens > 0) & ~startmatch(digits, "0")
    if not ok.any():
        return cc, cclen
    head = pc.utf8_slice_codeunits(take(digits, np.flatnonzero(ok)), 0, 3)
    v = np.asarray(pc.cast(head, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    width = np.minimum(lens[ok], 3)
    p1 = v // 10 ** (width - 1)
    p2 = np.where(width >= 2, v // 10 ** np.maximum(width - 2, 0), 0)
    p3 = np.where(width >= 3, v, 0)
    v1, v2, v3 = _CC_VALID[p1], (width >= 2) & _CC_VALID[p2], (width >= 3) & _CC_VALID[p3]
    cc[ok] = np.where(v1, p1, np.where(v2, p2, np.where(v3, p3, 0)))
    cclen[ok] = np.where(v1, 1, np.where(v2, 2, np.where(v3, 3, 0)))
    return cc, cclen


def strip_idd(digits: pa.Array, region: str) -> tuple[np.ndarray, pa.Array]:
    """Where the digits start with the region's international prefix, and the digits after it
    (``_parse_prefix_as_idd``: not when the next digit is 0, as no country code starts with 0)."""
    n = len(digits)
    idd = region_metadata(region).international_prefix
    hit = np.zeros(n, dtype=bool)
    if not idd or not n:
        return hit, digits
    named, _ = _name_groups(idd, "i")
    cand = np.flatnonzero(startmatch(digits, named))
    if not cand.size:
        return hit, digits
    rest = pc.struct_field(
        pc.extract_regex(take(digits, cand), f"^(?:{named})(?P<rest>.*)$"), "rest"
    )
    ok = ~startmatch(rest, "0")
    hit[cand[ok]] = True
    return hit, scatter(digits, cand[ok], rest.filter(pa.array(ok)))


def strip_national_prefix(numbers: pa.Array, md: PhoneMetadata) -> tuple[pa.Array, np.ndarray]:
    """``_maybe_strip_national_prefix_carrier_code``: the numbers without a trunk prefix or
    carrier code (or rewritten by the transform rule), and where something was stripped."""
    n = len(numbers)
    strip = np.zeros(n, dtype=bool)
    npfp = md.national_prefix_for_parsing
    if not npfp or not n:
        return numbers, strip
    named, count = _name_groups(npfp, "g")
    cand = np.flatnonzero(startmatch(numbers, named) & (lengths(numbers) > 0))
    if not cand.size:
        return numbers, strip
    sub = take(numbers, cand)
    m = pc.extract_regex(sub, f"^(?P<pfx>{named})(?P<rest>.*)$")
    rest = pc.struct_field(m, "rest").fill_null("")
    candidate = rest
    transform = md.national_prefix_transform_rule
    if transform and count:
        last = pc.struct_field(m, f"g{count}").fill_null("")
        use = _bools(pc.not_equal(last, ""))
        parts: list[pa.Array | str] = [
            pc.struct_field(m, f"g{p}").fill_null("") if isinstance(p, int) else p
            for p in _template_pieces(transform)
        ]
        transformed = _join([*parts, rest], cand.size)
        candidate = pc.if_else(pa.array(use), transformed, rest)
    gd = md.general_desc.national_number_pattern if md.general_desc else None
    # not when the number was viable and what remains is not
    ok = ~(fullmatch(sub, gd) & ~fullmatch(candidate, gd))
    strip[cand[ok]] = True
    return scatter(numbers, cand[ok], candidate.filter(pa.array(ok))), strip


def national_part(numbers: pa.Array, md: PhoneMetadata) -> pa.Array:
    """What ``parse`` keeps as the national number: the trunk prefix is stripped only when what
    remains has a possible length for ``md``."""
    stripped, did = strip_national_prefix(numbers, md)
    if not did.any():
        return numbers
    verdict = length_verdict(lengths(stripped), md)
    short = np.isin(
        verdict,
        [
            ValidationResult.TOO_SHORT,
            ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
            ValidationResult.INVALID_LENGTH,
        ],
    )
    return pc.if_else(pa.array(did & ~short), stripped, numbers).cast(LARGE)


@dataclass
class Readings:
    """One reading per input: a country calling code and national significant number, or the
    ParseError that stopped it (then cc is 0 and nsn is "")."""

    cc: np.ndarray
    nsn: pa.Array
    error: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Readings:
        return cls(
            np.zeros(n, dtype=np.int64),
            pa.array([""] * n, LARGE),
            np.zeros(n, dtype=np.int8),
        )

    def __len__(self) -> int:
        return int(self.cc.size)

    def subset(self, mask: np.ndarray) -> Readings:
        return Readings(self.cc[mask], self.nsn.filter(pa.array(mask)), self.error[mask])

    def put(self, idx: np.ndarray, other: Readings) -> None:
        """Write ``other``'s readings at positions ``idx``."""
        self.cc[idx] = other.cc
        self.error[idx] = other.error
        self.nsn = scatter(self.nsn, idx, other.nsn)

    def _finish(self) -> Readings:
        """Apply parse's final length checks on the NSN."""
        lens = lengths(self.nsn)
        ok = self.error == ParseError.OK
        self.error[ok & (lens < MIN_NSN_LENGTH)] = ParseError.TOO_SHORT_NSN
        self.error[ok & (lens > MAX_NSN_LENGTH)] = ParseError.TOO_LONG
        bad = self.error != ParseError.OK
        self.cc[bad] = 0
        if bad.any():
            self.nsn = pc.if_else(pa.array(bad), pa.scalar("", LARGE), self.nsn).cast(LARGE)
        return self


def _national_part_by_cc(cc: np.ndarray, rest: pa.Array) -> pa.Array:
    """`national_part` of each number with the metadata of its country code's main region."""
    parts = []
    for c, idx in groups(cc):
        md = main_metadata(c)
        if md is not None and md.national_prefix_for_parsing:
            parts.append((idx, national_part(take(rest, idx), md)))
    return scatter_many(rest, parts)


def _after_country_code(digits: pa.Array, cclen: np.ndarray) -> pa.Array:
    out = pc.utf8_slice_codeunits(digits, 3)
    for width in (2, 1):
        out = pc.if_else(pa.array(cclen == width), pc.utf8_slice_codeunits(digits, width), out)
    return out.cast(LARGE)


def read_international(digits: pa.Array) -> Readings:
    """The digits after ``+`` or an international prefix: country code, then national number
    (``parse`` from ``_maybe_extract_country_code`` on)."""
    n = len(digits)
    out = Readings.empty(n)
    if not n:
        return out
    lens = lengths(digits)
    out.error[lens <= MIN_NSN_LENGTH] = ParseError.TOO_SHORT_AFTER_IDD
    cc, cclen = split_country_code(digits)
    out.error[(out.error == 0) & (cc == 0)] = ParseError.INVALID_COUNTRY_CODE
    rest = _after_country_code(digits, cclen)
    ok = out.error == 0
    out.error[ok & (lengths(rest) < MIN_NSN_LENGTH)] = ParseError.TOO_SHORT_NSN
    ok = out.error == 0
    out.cc = np.where(ok, cc, 0)
    out.nsn = _national_part_by_cc(out.cc, rest)
    return out._finish()


def read_national(digits: pa.Array, region: str) -> Readings:
    """The digits as a national number of ``region`` (``parse`` with no country code found)."""
    md = region_metadata(region)
    n = len(digits)
    out = Readings.empty(n)
    if not n:
        return out
    out.error[lengths(digits) < MIN_NSN_LENGTH] = ParseError.TOO_SHORT_NSN
    assert md.country_code is not None  # every region's metadata has one
    out.cc[:] = int(md.country_code)
    out.nsn = national_part(digits, md)
    return out._finish()


def own_country_code(digits: pa.Array, region: str) -> tuple[np.ndarray, pa.Array]:
    """Where parse reads digits without ``+`` as starting with the region's own country code
    (the number is not viable, or too long, as a national number but is without the code), and
    the national part that remains (``_maybe_extract_country_code``, last branch)."""
    md = region_metadata(region)
    code = str(md.country_code)
    n = len(digits)
    starts = startmatch(digits, code)
    if not starts.any():
        return np.zeros(n, dtype=bool), digits
    idx = np.flatnonzero(starts)
    full = take(digits, idx)
    potential, _ = strip_national_prefix(pc.utf8_slice_codeunits(full, len(code)), md)
    gd = md.general_desc.national_number_pattern if md.general_desc else None
    better = ~fullmatch(full, gd) & fullmatch(potential, gd)
    too_long = length_verdict(lengths(full), md) == ValidationResult.TOO_LONG
    hit = np.zeros(n, dtype=bool)
    hit[idx] = better | too_long
    return hit, scatter(
        digits, idx[better | too_long], potential.filter(pa.array(better | too_long))
    )


def parse(texts: pa.Array, region: str | None) -> Readings:
    """``phonenumbers.parse(text, region)`` for texts of the form ``"[+]digits"``.

    A ``+`` whose country code is unknown (``"+0044..."``) is tried again without it, for the
    region's international prefix and own country code, as parse does.
    """
    n = len(texts)
    out = Readings.empty(n)
    if not n:
        return out
    plus = startmatch(texts, r"\+")
    body = pc.if_else(pa.array(plus), pc.utf8_slice_codeunits(texts, 1), texts).cast(LARGE)
    blens = lengths(body)
    out.error[(blens < 2) | (plus & (blens < 3))] = ParseError.NOT_A_NUMBER
    todo = out.error == ParseError.OK
    pieces: list[tuple[np.ndarray, Readings]] = []
    idx = np.flatnonzero(todo & plus)
    retry = np.zeros(n, dtype=bool)
    if idx.size:
        r = read_international(take(body, idx))
        unknown = r.error == ParseError.INVALID_COUNTRY_CODE
        retry[idx[unknown]] = True
        pieces.append((idx[~unknown], r.subset(~unknown)))
    rest_idx = np.flatnonzero((todo & ~plus) | retry)
    if region is not None and rest_idx.size:
        sub = take(body, rest_idx)
        hit, after = strip_idd(sub, region)
        if hit.any():
            pieces.append((rest_idx[hit], read_international(after.filter(pa.array(hit)))))
        own, national = own_country_code(sub, region)
        own &= ~hit
        if own.any():
            cc = region_facts(region).country_code
            r = Readings.empty(int(own.sum()))
            r.cc[:] = cc
            potential = national.filter(pa.array(own))
            r.error[lengths(potential) < MIN_NSN_LENGTH] = ParseError.TOO_SHORT_NSN
            md = main_metadata(cc)
            r.nsn = national_part(potential, md) if md is not None else potential
            pieces.append((rest_idx[own], r._finish()))
        nat = ~hit & ~own & ~retry[rest_idx]
        if nat.any():
            pieces.append((rest_idx[nat], read_national(sub.filter(pa.array(nat)), region)))
    decided = np.zeros(n, dtype=bool)
    for idx, r in pieces:
        out.put(idx, r)
        decided[idx] = True
    out.error[todo & ~decided] = ParseError.INVALID_COUNTRY_CODE
    return out


def e164(cc: np.ndarray, nsn: pa.Array) -> pa.Array:
    """``"+" + cc + nsn`` (what ``format_number(..., E164)`` writes)."""
    if not cc.size:
        return pa.array([], LARGE)
    return _join(["+", pa.array(cc).cast(LARGE), nsn.cast(LARGE)], cc.size)


# --------------------------------------------------------------------------------------------
# Classification: region, type, possible length
# --------------------------------------------------------------------------------------------


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


def _desc_match(desc: object, sub: pa.Array, lens: np.ndarray) -> np.ndarray:
    """libphonenumber's ``_is_number_matching_desc``, vectorised."""
    out = np.zeros(lens.size, dtype=bool)
    pattern = getattr(desc, "national_number_pattern", None)
    if desc is None or not pattern or not lens.size:
        return out
    possible = getattr(desc, "possible_length", ())
    ok = np.isin(lens, possible) if len(possible) else ~out
    cand = np.flatnonzero(ok)
    if not cand.size:
        return out
    arr = sub if cand.size == lens.size else take(sub, cand)
    out[cand[fullmatch(arr, pattern)]] = True
    return out


def _type_vec(sub: pa.Array, lens: np.ndarray, md: PhoneMetadata) -> np.ndarray:
    """libphonenumber's ``_number_type_helper``, vectorised over one region's numbers."""
    out = np.full(lens.size, UNKNOWN, dtype=np.int8)
    rem = np.flatnonzero(_desc_match(md.general_desc, sub, lens))

    def match(desc: object, rows: np.ndarray) -> np.ndarray:
        if not rows.size:
            return np.zeros(0, dtype=bool)
        return _desc_match(desc, take(sub, rows), lens[rows])

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


def classify(cc: np.ndarray, nsn: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Region (str/None), PhoneNumberType and ValidationResult (possible length) per number.

    Equals ``region_code_for_number``, ``number_type`` and ``is_possible_number_with_reason``
    of the PhoneNumber (cc, nsn). A number is valid when its region is not None and its type
    is not UNKNOWN (``is_valid_number``).
    """
    n = cc.size
    region = np.full(n, None, dtype=object)
    ntype = np.full(n, UNKNOWN, dtype=np.int8)
    poss = np.full(n, ValidationResult.INVALID_COUNTRY_CODE, dtype=np.int8)
    if not n:
        return region, ntype, poss
    lens = lengths(nsn)
    for c, idx in groups(cc):
        regions = COUNTRY_CODE_TO_REGION_CODE.get(c)
        md_main = main_metadata(c)
        if not regions or md_main is None:
            continue
        poss[idx] = length_verdict(lens[idx], md_main)
        if idx.size < VECTOR_MIN_GROUP:
            for i, s in zip(idx, take(nsn, idx).to_pylist(), strict=True):
                if not s:
                    continue
                num = _numobj(c, s)
                region[i] = phonenumbers.region_code_for_number(num)
                ntype[i] = phonenumbers.number_type(num)
            continue
        sub = take(nsn, idx)
        sub_lens = lens[idx]
        if len(regions) == 1:
            region[idx] = regions[0]
            ntype[idx] = _type_vec(sub, sub_lens, md_main)
            continue
        rem = np.arange(idx.size)
        for r in regions:
            if not rem.size:
                break
            md = PhoneMetadata.metadata_for_region(r, None)
            if md is None:
                continue
            rem_nsn = take(sub, rem)
            if md.leading_digits is not None:
                m = startmatch(rem_nsn, md.leading_digits)
                hit = rem[m]
                if hit.size:
                    ntype[idx[hit]] = _type_vec(take(sub, hit), sub_lens[hit], md)
            else:
                t = _type_vec(rem_nsn, sub_lens[rem], md)
                m = t != UNKNOWN
                hit = rem[m]
                ntype[idx[hit]] = t[m]
            region[idx[hit]] = r
            rem = rem[~m]
    return region, ntype, poss


def is_valid(region: np.ndarray, ntype: np.ndarray) -> np.ndarray:
    """``is_valid_number`` from `classify`'s answers."""
    return (region != None) & (ntype != UNKNOWN)  # noqa: E711 (element-wise)


# --------------------------------------------------------------------------------------------
# National format (format_number(..., NATIONAL)) and natural national readings
# --------------------------------------------------------------------------------------------

_FIRST_GROUP = re.compile(r"(\\\d)")


def _national_rule(fmt: NumberFormat) -> str:
    """The rewrite ``format_number(..., NATIONAL)`` applies with this format."""
    rule = fmt.format
    assert rule is not None  # a NumberFormat always has its format
    npfr = fmt.national_prefix_formatting_rule
    if npfr:
        rule = _FIRST_GROUP.sub(npfr, rule, count=1)
    return rule


def _format_nsn(cc: np.ndarray, nsn: pa.Array, international: bool) -> tuple[pa.Array, np.ndarray]:
    """``_format_nsn``: each national number laid out by the first of its country's formats
    that fits it (``_choose_formatting_pattern_for_number``), or as it is when none does; and
    whether a format fitted (or the country has none, so bare digits are its format)."""
    out, covered, _ = _format_nsn_optional(cc, nsn, international)
    return out, covered


def _format_nsn_optional(
    cc: np.ndarray, nsn: pa.Array, international: bool
) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """`_format_nsn`, and whether the format that fitted lets the trunk prefix out
    (``national_prefix_optional_when_formatting``: India, Turkey, Russia ... write their
    numbers with or without it)."""
    out = nsn.cast(LARGE)
    covered = np.zeros(cc.size, dtype=bool)
    optional = np.zeros(cc.size, dtype=bool)
    for c, idx in groups(cc):
        md = main_metadata(c)
        if md is None:
            continue
        formats = md.intl_number_format if international and md.intl_number_format else None
        formats = formats or md.number_format
        if not formats:
            covered[idx] = True
        remaining = idx
        for fmt in formats:
            if not remaining.size:
                break
            sub = take(nsn, remaining)
            ok = np.ones(remaining.size, dtype=bool)
            if fmt.leading_digits_pattern:
                ok = startmatch(sub, fmt.leading_digits_pattern[-1])
            cand = np.flatnonzero(ok)
            ok[cand] = fullmatch(take(sub, cand), fmt.pattern)
            if ok.any():
                rule = fmt.format if international else _national_rule(fmt)
                written = pc.replace_substring_regex(sub.filter(pa.array(ok)), fmt.pattern, rule)
                out = scatter(out, remaining[ok], written)
                covered[remaining[ok]] = True
                optional[remaining[ok]] = bool(fmt.national_prefix_optional_when_formatting)
            remaining = remaining[~ok]
    return out, covered, optional


def format_national(cc: np.ndarray, nsn: pa.Array) -> pa.Array:
    """``format_number(PhoneNumber(cc, nsn), NATIONAL)``: the number as written at home."""
    return _format_nsn(cc, nsn, international=False)[0]


def format_international(cc: np.ndarray, nsn: pa.Array) -> pa.Array:
    """``format_number(PhoneNumber(cc, nsn), INTERNATIONAL)``, e.g. ``"+44 7911 123456"``."""
    if not cc.size:
        return pa.array([], LARGE)
    body = _format_nsn(cc, nsn, international=True)[0]
    return _join(["+", pa.array(cc).cast(LARGE), " ", body], cc.size)


def national_digits(cc: np.ndarray, nsn: pa.Array) -> pa.Array:
    """The digits of `format_national`, trunk prefix included."""
    return pc.replace_substring_regex(format_national(cc, nsn), r"\D", "").cast(LARGE)


def written_nationally(cc: np.ndarray, nsn: pa.Array, digits: pa.Array) -> np.ndarray:
    """Whether each number's own country writes it nationally as exactly ``digits``: the digits
    of ``format_number(number, NATIONAL)`` by a format that fits the number (a number no
    format fits has no national writing), or those digits without the trunk prefix where the
    format lets it out (``national_prefix_optional_when_formatting``: ``9876543210`` is how
    India writes +91 98765 43210 as often as ``098765 43210``)."""
    if not cc.size:
        return np.zeros(0, dtype=bool)
    written, covered, optional = _format_nsn_optional(cc, nsn, international=False)
    written = pc.replace_substring_regex(written, r"\D", "").cast(LARGE)
    natural = covered & _bools(pc.equal(written, digits))
    for c, idx in groups(cc):
        md = main_metadata(c)
        prefix = md.national_prefix if md is not None else None
        idx = idx[optional[idx] & ~natural[idx]]
        if not prefix or not idx.size:
            continue
        with_prefix = _join([prefix, take(digits, idx)], idx.size)
        natural[idx] = _bools(pc.equal(take(written, idx), with_prefix))
    return natural


@dataclass(frozen=True)
class _NaturalForm:
    """Digit strings that national formats of one country may write without a leading 0."""

    cc: int
    prefix: str  # digits the formats write before the national number (a trunk such as "8")
    lengths: tuple[int, ...]  # total lengths, prefix included
    pattern: str  # regex: the prefix, then the leading digits of one of the formats

    @property
    def valid_pattern(self) -> str:
        """The prefix, then a number matching one of the country's number types (what every
        valid number does)."""
        return f"^{self.prefix}(?:{_type_patterns(self.cc)})$"


@cache
def _type_patterns(cc: int) -> str:
    patterns: list[str] = []
    for region in COUNTRY_CODE_TO_REGION_CODE.get(cc, ()):
        md = PhoneMetadata.metadata_for_region(region, None)
        if md is None:
            continue
        for desc in (md.fixed_line, md.mobile, md.toll_free, md.premium_rate, md.shared_cost,
                     md.voip, md.personal_number, md.pager, md.uan, md.voicemail):
            pattern = getattr(desc, "national_number_pattern", None)
            if pattern and pattern not in patterns:
                patterns.append(pattern)
    return "|".join(f"(?:{p})" for p in patterns) or "[^0-9]"  # (matches no digits)


def _format_prefix(fmt: NumberFormat) -> str | None:
    """Digits the national format writes before the number, or None when it writes a trunk 0
    or digits inside the number (Argentina's mobile "15")."""
    rule = _national_rule(fmt)
    pieces = re.split(r"\\\d", rule)
    if any(re.search(r"\d", piece) for piece in pieces[1:]):
        return None
    prefix = re.sub(r"\D", "", pieces[0])
    return None if prefix.startswith("0") else prefix


@cache
def _natural_forms() -> tuple[_NaturalForm, ...]:
    forms: list[_NaturalForm] = []
    for cc in sorted(COUNTRY_CODE_TO_REGION_CODE):
        md = main_metadata(cc)
        if md is None or cc in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
            continue
        nsn_lengths: set[int] = set()
        for r in COUNTRY_CODE_TO_REGION_CODE[cc]:
            rmd = PhoneMetadata.metadata_for_region(r, None)
            if rmd is not None and rmd.general_desc is not None:
                nsn_lengths |= set(rmd.general_desc.possible_length)
        by_prefix: dict[str, list[str]] = {}
        for fmt in md.number_format:
            lead = fmt.leading_digits_pattern[-1] if fmt.leading_digits_pattern else r"\d"
            prefix = _format_prefix(fmt)
            if prefix is not None:
                by_prefix.setdefault(prefix, []).append(lead)
            if fmt.national_prefix_optional_when_formatting and prefix != "":
                by_prefix.setdefault("", []).append(lead)  # the number without its trunk
        if not md.number_format:  # no format: the national number is written as it is
            by_prefix[""] = [r"\d"]
        for prefix, leads in by_prefix.items():
            alternatives = "|".join(f"(?:{lead})" for lead in leads)
            forms.append(
                _NaturalForm(
                    cc=cc,
                    prefix=prefix,
                    lengths=tuple(sorted(len(prefix) + k for k in nsn_lengths)),
                    pattern=f"^{prefix}(?:{alternatives})",
                )
            )
    return tuple(forms)


@cache
def _range_lengths(region: str, ntype: int) -> frozenset[int]:
    md = PhoneMetadata.metadata_for_region(region, None)
    if md is None:
        return frozenset()
    general = tuple(md.general_desc.possible_length) if md.general_desc else ()
    descs = {
        PhoneNumberType.FIXED_LINE: [md.fixed_line],
        PhoneNumberType.MOBILE: [md.mobile],
        PhoneNumberType.FIXED_LINE_OR_MOBILE: [md.fixed_line, md.mobile],
        PhoneNumberType.TOLL_FREE: [md.toll_free],
        PhoneNumberType.PREMIUM_RATE: [md.premium_rate],
        PhoneNumberType.SHARED_COST: [md.shared_cost],
        PhoneNumberType.VOIP: [md.voip],
        PhoneNumberType.PERSONAL_NUMBER: [md.personal_number],
        PhoneNumberType.PAGER: [md.pager],
        PhoneNumberType.UAN: [md.uan],
        PhoneNumberType.VOICEMAIL: [md.voicemail],
    }.get(ntype, [])
    out: set[int] = set()
    for desc in descs:
        if desc is not None:
            out |= set(desc.possible_length or general)
    return frozenset(out)


def fixed_length_range(region: np.ndarray, ntype: np.ndarray) -> np.ndarray:
    """Whether each number's range (its region's numbers of its type) has one or two lengths.

    An open range (Luxembourg's fixed lines: 4 to 11 digits) takes almost any digits, so that
    digits read as a number there is no evidence they were meant so."""
    return np.array(
        [
            r is not None and 0 < len(_range_lengths(r, int(t))) <= 2
            for r, t in zip(region, ntype, strict=True)
        ],
        dtype=bool,
    )


@cache
def _natural_forms_by_length() -> dict[int, tuple[_NaturalForm, ...]]:
    out: dict[int, list[_NaturalForm]] = {}
    for form in _natural_forms():
        for length in form.lengths:
            out.setdefault(length, []).append(form)
    return {k: tuple(v) for k, v in out.items()}


def natural_national_readings(
    digits: pa.Array, possible: bool = False
) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """The valid numbers whose own country writes them nationally as exactly these digits
    (the digits of ``format_number(number, NATIONAL)``), for digit strings that start with 1-9:
    rows (into ``digits``), country codes and national numbers.

    ``"2015550123"`` is how the US writes +1 201-555-0123, and ``"15526018159"`` how China
    writes +86 155 2601 8159. ``"447911123456"`` is no country's national writing of a valid
    number: Germany writes +49 4479 11123456 as 04479 11123456. Valid numbers that none of
    their country's formats covers (libphonenumber writes them as bare digits) are not counted.
    """
    none = (np.zeros(0, np.int64), np.zeros(0, np.int64), pa.array([], LARGE))
    lens = lengths(digits)
    rows: list[np.ndarray] = []
    ccs: list[np.ndarray] = []
    cuts: list[np.ndarray] = []
    by_length = _natural_forms_by_length()
    for length in np.unique(lens):
        forms = by_length.get(int(length), ())
        if not forms:
            continue
        cand = np.flatnonzero(lens == length)
        sub = take(digits, cand)
        for form in forms:
            found = search(sub, form.pattern)
            if not possible and found.sum() > VECTOR_MIN_GROUP:  # worth the big pattern
                found[found] = search(sub.filter(pa.array(found)), form.valid_pattern)
            hit = cand[found]
            rows.append(hit)
            ccs.append(np.full(hit.size, form.cc, dtype=np.int64))
            cuts.append(np.full(hit.size, len(form.prefix), dtype=np.int64))
    if not rows or not sum(r.size for r in rows):
        return none
    # one key per (row, country code, prefix length): several formats may find the same one
    keys = np.unique(
        np.concatenate(rows) * 10_000 + np.concatenate(ccs) * 10 + np.concatenate(cuts)
    )
    row, cc, cut = keys // 10_000, keys // 10 % 1000, keys % 10
    nsn = take(digits, row)
    for width in np.unique(cut):
        if width:
            nsn = pc.if_else(pa.array(cut == width), pc.utf8_slice_codeunits(nsn, int(width)), nsn)
    nsn = nsn.cast(LARGE)
    region, ntype, poss = classify(cc, nsn)
    valid = is_valid(region, ntype)
    if possible:  # (``possible=True``: possible numbers too)
        valid |= poss == ValidationResult.IS_POSSIBLE
    row, cc, nsn = row[valid], cc[valid], nsn.filter(pa.array(valid))
    natural = written_nationally(cc, nsn, take(digits, row))
    return row[natural], cc[natural], nsn.filter(pa.array(natural))
