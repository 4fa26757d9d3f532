"""Differential test: `normalize` against libphonenumber, on every region's numbers.

For every region libphonenumber knows, its example number of every type
(``phonenumbers.example_number_for_type``) and generated neighbours (the last digits changed)
are written in the messy forms real columns hold (spaced, dashed, ``00``, the region's own
international prefix, national format, E.164 digits without ``+``, ints, floats, float text,
scientific text, full-width and Arabic-Indic digits, labels, extensions, quotes ...), each read
with and without the matching ``default_region``. The truth of each row is the number it was
written from, so the test counts, independently of normalize's code:

* **wrong keys**: a key that is not the number written (``wrong_silent``: sent as a valid number
  without a note; the target is zero);
* **missed**: a valid number written with an international marker, or read with its own
  region, that is not sent with its key (the target is zero, except cells that are
  ambiguous by the decision table: both readings valid and written as such);
* rows by verdict (``ambiguous`` counted apart).

Where libphonenumber itself defines the reading (an international marker, a national format
read with its region), the key must be exactly what ``phonenumbers.parse`` + ``format_number``
give, with normalize's send rule (possible or valid, 10-15 characters).

``PD_HLR_DIFFERENTIAL=full`` runs the large version (more neighbours, plus a third, unrelated
region per number); ``python tests/test_normalize_differential.py [--full]`` prints the report.
"""

from __future__ import annotations

import functools
import os
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass, field

import hypothesis
import pandas as pd
import phonenumbers
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from pd_hlr.normalize import normalize

FULL = os.environ.get("PD_HLR_DIFFERENTIAL", "") == "full"
TYPES = [t for t in range(11) if t != PhoneNumberType.UNKNOWN]
FULLWIDTH = str.maketrans("0123456789+", "０１２３４５６７８９＋")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

# forms whose cell carries an international marker ("+", "00" with no region) or that are
# read with the number's own region: a valid number written so must be sent
MARKED = {
    "e164",
    "international",
    "dashes",
    "nbsp_endash",
    "rfc3966",
    "fullwidth",
    "arabic_indic",
    "label",
    "label_ru",
    "extension",
    "extension_ru",
    "quoted",
    "apostrophe",
    "semicolon",
    "double_plus",
    "trunk_in_brackets",
    "trunk_zero_kept",
    "float_text_plus",
    "annotated_before",
    "annotated_after",
}
NATIONAL = {
    "national",
    "national_digits",
    "national_fullwidth",
    "national_katakana_dash",
    "national_ext_bracket",
    "national_no_trunk",
}
BARE = {"e164_digits", "int", "float", "float_text", "float_text_zeros", "sci_exact"}
#: Forms libphonenumber reads itself once the cell is cleaned (`_clean`), in the number's region.
READ_IN_REGION = {"national", "national_katakana_dash", "national_ext_bracket"}


@dataclass
class Case:
    cell: object
    region: str | None
    truth: str  # E.164 of the number written
    home: str  # the number's region
    form: str
    valid: bool
    sendable: bool  # valid or possible, and 10-15 characters: what normalize sends
    expected: str | None = None  # phonenumbers' own reading, where it defines one


@dataclass
class Report:
    rows: int = 0
    sent: int = 0
    right: int = 0
    wrong: list[tuple[Case, dict[str, object]]] = field(default_factory=list)
    wrong_silent: list[tuple[Case, dict[str, object]]] = field(default_factory=list)
    missed: list[tuple[Case, dict[str, object]]] = field(default_factory=list)
    disagree: list[tuple[Case, dict[str, object]]] = field(default_factory=list)
    #: ambiguous rows without a region whose error names neither the number written nor
    #: "more readings"
    unnamed: list[tuple[Case, dict[str, object]]] = field(default_factory=list)
    #: wrong keys that are not even a valid number (a weak reading of someone else's number)
    wrong_weak: list[tuple[Case, dict[str, object]]] = field(default_factory=list)
    sources: Counter[str] = field(default_factory=Counter)
    by_form: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def summary(self) -> str:
        return (
            f"rows {self.rows:,}; sent {self.sent:,} ({self.right:,} right); "
            f"wrong keys {len(self.wrong)} (as a valid number without a note: "
            f"{len(self.wrong_silent)}; not a valid number: {len(self.wrong_weak)}); "
            f"valid numbers not sent {len(self.missed)}; "
            f"disagreements with phonenumbers {len(self.disagree)}; ambiguous without the "
            f"number written among its readings {len(self.unnamed)}; verdicts "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(self.sources.items()))
        )


def _numbers(neighbours: int, seed: int = 12) -> list[phonenumbers.PhoneNumber]:
    rng = random.Random(seed)
    out: dict[str, phonenumbers.PhoneNumber] = {}
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for t in TYPES:
            ex = phonenumbers.example_number_for_type(region, t)
            if ex is None:
                continue
            nsn = phonenumbers.national_significant_number(ex)
            variants = [nsn]
            for _ in range(neighbours):
                k = rng.randint(1, min(3, len(nsn) - 1))
                variants.append(nsn[:-k] + "".join(rng.choice("0123456789") for _ in range(k)))
            for v in variants:
                e164 = f"+{ex.country_code}{v}"
                try:
                    num = phonenumbers.parse(e164)
                except phonenumbers.NumberParseException:
                    continue
                if phonenumbers.format_number(num, PhoneNumberFormat.E164) == e164:
                    out.setdefault(e164, num)
    return list(out.values())


def _sendable(num: phonenumbers.PhoneNumber) -> bool:
    e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)
    ok = phonenumbers.is_valid_number(num) or phonenumbers.is_possible_number_with_reason(num) == 0
    return ok and 10 <= len(e164) <= 15


def _forms(num: phonenumbers.PhoneNumber, home: str) -> dict[str, object]:
    e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)
    intl = phonenumbers.format_number(num, PhoneNumberFormat.INTERNATIONAL)
    nat = phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL)
    digits = e164[1:]
    nsn = phonenumbers.national_significant_number(num)
    forms: dict[str, object] = {
        "e164": e164,
        "international": intl,
        "dashes": intl.replace(" ", "-"),
        "nbsp_endash": intl.replace(" ", "\u00a0", 1).replace(" ", "\u2013"),
        "rfc3966": phonenumbers.format_number(num, PhoneNumberFormat.RFC3966),
        "idd00": "00" + intl[1:],
        "national": nat,
        "national_digits": re.sub(r"\D", "", nat),
        "national_fullwidth": nat.translate(FULLWIDTH),
        "e164_digits": digits,
        "int": int(digits),
        "float": float(digits),
        "float_text": digits + ".0",
        "float_text_plus": "+" + digits,
        "sci_exact": f"{digits[0]}.{digits[1:]}e{len(digits) - 1}",
        "fullwidth": e164.translate(FULLWIDTH),
        "arabic_indic": intl.translate(ARABIC_INDIC),
        "label": f"Tel: {intl}",
        "label_ru": f"Моб. {e164}",
        "extension": f"{intl} ext. 12",
        "extension_ru": f"{intl} доб. 12",
        "quoted": f'"{intl}"',
        "apostrophe": f"'{intl}",
        "semicolon": f"{intl};",
        "double_plus": "+" + intl,
    }
    if len(digits) > 7:
        forms["sci_lost"] = f"{digits[0]}.{digits[1:6]}E+{len(digits) - 1}"
    # issue 23's leaks: many zero decimals, words in brackets, a katakana dash, (0)
    forms["float_text_zeros"] = digits + ".000000"
    forms["annotated_before"] = f"(Freephone) {intl}"
    forms["annotated_after"] = f"{intl} (24h)"
    forms["national_katakana_dash"] = re.sub(r"[ \-]", "\u30fc", nat)
    forms["national_ext_bracket"] = f"{nat} (ext. 2)"
    md = phonenumbers.PhoneMetadata.metadata_for_region(home, None)
    if md is not None and md.national_prefix == "0":
        forms["trunk_in_brackets"] = f"+{num.country_code} (0){nsn}"
    if md is not None and not md.national_prefix and nsn.startswith("0"):
        forms["trunk_zero_kept"] = f"+{num.country_code} (0){nsn[1:]}"  # Italy keeps its 0
    fmt = phonenumbers.phonenumberutil._choose_formatting_pattern_for_number(
        md.number_format if md is not None else [], nsn
    )
    if fmt is not None and fmt.national_prefix_optional_when_formatting and md.national_prefix:
        written = re.sub(r"\D", "", nat)
        if written.startswith(md.national_prefix):  # India, Turkey ... also write it without
            forms["national_no_trunk"] = written[len(md.national_prefix) :]
    idd = md.preferred_international_prefix or md.international_prefix if md else None
    if idd and re.fullmatch(r"\d+", idd):
        forms["region_idd"] = f"{idd} {intl[1:]}"
    return forms


def build_cases(neighbours: int, other_region: bool) -> list[Case]:
    rng = random.Random(5)
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    cases: list[Case] = []
    for num in _numbers(neighbours):
        home = phonenumbers.region_code_for_number(
            num
        ) or phonenumbers.region_code_for_country_code(num.country_code)
        if home == "001":
            home = None
        truth = phonenumbers.format_number(num, PhoneNumberFormat.E164)
        valid = phonenumbers.is_valid_number(num)
        sendable = _sendable(num)
        for form, cell in _forms(num, home or "ZZ").items():
            reads = [None] if home is None else [None, home]
            if other_region:
                reads.append(rng.choice(regions))
            for region in reads:
                cases.append(Case(cell, region, truth, home or "001", form, valid, sendable))
    for case in cases:
        case.expected = _reference(case)
    return cases


def _clean(cell: object) -> str:
    text = str(cell).translate(
        str.maketrans("０１２３４５６７８９＋٠١٢٣٤٥٦٧٨٩", "0123456789+0123456789")
    )
    text = re.sub(r"^(Tel:|Моб\.)\s*|\s*(ext\. 12|доб\. 12)$|^['\"+]+(?=\+)|[\"';]", "", text)
    text = re.sub(r"^\(Freephone\) |\s*\((24h|ext\. 2)\)$", "", text)  # annotations
    text = text.replace("\u30fc", "-")  # the katakana long-vowel mark written as a dash
    # "(0)" is a trunk 0 where the country's trunk prefix is 0; Italy's numbers keep it
    m = re.match(r"^\+(\d{1,3}) \(0\)", text)
    if m:
        md = phonenumbers.PhoneMetadata.metadata_for_region(
            phonenumbers.region_code_for_country_code(int(m[1])), None
        )
        keep = md is not None and md.national_prefix != "0"
        text = f"+{m[1]} {'0' if keep else ''}{text[m.end():]}"
    return text.replace("\u00a0", " ").replace("\u2013", "-")


@functools.cache
def _read(text: str, region: str | None) -> tuple[int, str | None]:
    """phonenumbers' reading of a text: its rank (0 not a number, 1 not possible, 2 possible,
    3 valid) and the key normalize's send rule gives it."""
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return 0, None
    if phonenumbers.is_valid_number(num):
        rank = 3
    else:
        rank = 2 if phonenumbers.is_possible_number_with_reason(num) == 0 else 1
    key = phonenumbers.format_number(num, PhoneNumberFormat.E164) if _sendable(num) else None
    return rank, key


def _reference(case: Case) -> str | None:
    """phonenumbers' reading of the cell, with the decision table's rules for prefixes: an
    international marker (libphonenumber's reading), a national format read with the number's
    region (libphonenumber's reading), and a cell starting with 00 or the region's own
    international prefix (the table: region prefix, or 00 + valid national, or 00 + cc)."""
    own = case.region == case.home
    text = _clean(case.cell)
    if case.form in MARKED:
        return _read(text, case.region)[1]
    if case.form in READ_IN_REGION and own:
        # a national reading is sent when valid (possible, not valid: not sent; issue 23)
        rank, key = _read(text, case.region)
        return key if rank == 3 else None
    if case.form not in {"idd00", "region_idd"} or (case.region is not None and not own):
        return None
    digits = re.sub(r"\D", "", text)
    after00 = _read("+" + digits[2:], None) if digits.startswith("00") else (0, None)
    if case.region is None:
        # read as "+" would be, unless a longer prefix (AU's 0011) leaves a valid number too
        longer = [p for p in _longer_00() if digits.startswith(p)]
        if after00[0] == 2 and any(_read("+" + digits[len(p) :], None)[0] == 3 for p in longer):
            return None
        return after00[1] if after00[0] >= 2 else None
    md = phonenumbers.PhoneMetadata.metadata_for_region(case.region, None)
    m = re.match(md.international_prefix or "NonMatch", digits)
    if m and not digits[m.end() :].startswith("0"):
        by_region = _read(text, case.region)  # libphonenumber: after the region's prefix
        if m.end() <= 2 or not digits.startswith("00"):
            return by_region[1]
        if by_region[0] == after00[0] >= 2 and by_region[1] != after00[1]:
            return None  # ambiguous by the table
        return (by_region if by_region[0] >= after00[0] else after00)[1]
    national = _read(text, case.region)
    return national[1] if national[0] == 3 else after00[1]


@functools.cache
def _international(e164: str) -> str:
    return phonenumbers.format_number(phonenumbers.parse(e164), PhoneNumberFormat.INTERNATIONAL)


@functools.cache
def _longer_00() -> tuple[str, ...]:
    """International prefixes written as digits longer than 00 (``0011``, ``001`` ...)."""
    found = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        md = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
        idd = md.preferred_international_prefix or md.international_prefix
        if idd and re.fullmatch(r"00\d+", idd):
            found.add(idd)
    return tuple(sorted(found))


def run(cases: list[Case]) -> Report:
    report = Report()
    by_region: dict[str | None, list[int]] = {}
    for i, case in enumerate(cases):
        by_region.setdefault(case.region, []).append(i)
    rows: list[dict[str, object] | None] = [None] * len(cases)
    report.by_form = Counter()
    for region, idx in by_region.items():
        cells = pd.Series([cases[i].cell for i in idx], dtype=object)
        out = normalize(cells, default_region=region)
        assert len(out) == len(idx) and out.index.equals(cells.index)
        records = out.astype(object).where(out.notna(), None).to_dict("records")
        for i, rec in zip(idx, records, strict=True):
            rows[i] = rec
    for case, row in zip(cases, rows, strict=True):
        assert row is not None
        report.rows += 1
        report.sources[row["hlr_source"] or "sent"] += 1
        how = (
            "no region"
            if case.region is None
            else ("own region" if case.region == case.home else "other region")
        )
        report.by_form[(case.form, how, str(row["hlr_source"] or "sent"))] += 1
        key = row["hlr_number"]
        if key is not None:
            report.sent += 1
            if key == case.truth:
                report.right += 1
            else:
                report.wrong.append((case, row))
                if row["hlr_note"] is None and row["hlr_number_type"] != "unknown":
                    report.wrong_silent.append((case, row))
                if row["hlr_number_type"] in (None, "unknown"):
                    report.wrong_weak.append((case, row))
        must_send = (
            case.valid
            and case.sendable
            and case.form != "sci_lost"
            and (
                case.form in MARKED
                or (case.form == "idd00" and case.region is None)
                or case.region == case.home
            )
        )
        if must_send and key != case.truth and row["hlr_source"] != "ambiguous":
            report.missed.append((case, row))
        if case.expected is not None and key != case.expected:
            report.disagree.append((case, row))
        if row["hlr_source"] == "ambiguous" and case.valid and case.region is None:
            named = _international(case.truth)
            if named not in row["hlr_error"] and "more readings" not in row["hlr_error"]:
                report.unnamed.append((case, row))
    return report


def test_differential_every_region() -> None:
    cases = build_cases(neighbours=3 if FULL else 1, other_region=FULL)
    report = run(cases)
    print(report.summary())
    assert not report.wrong_silent, report.wrong_silent[:5]
    assert not report.missed, report.missed[:5]
    assert not report.disagree, report.disagree[:5]
    # a wrong key is at most a valid number of the list's region read from another country's
    # digits (the full run reads cells in unrelated regions); never a weak reading
    assert not report.wrong_weak, report.wrong_weak[:5]
    assert FULL or not report.wrong, report.wrong[:5]
    assert not report.unnamed, report.unnamed[:5]  # ambiguous names the number (or "more")
    # scientific text that lost digits is never sent
    assert all(r["hlr_number"] is None for c, r in report.wrong if c.form == "sci_lost")


if __name__ == "__main__":
    FULL = FULL or "--full" in sys.argv
    built = build_cases(neighbours=3 if FULL else 1, other_region=FULL)
    result = run(built)
    print(result.summary())
    for (form, how, source), count in sorted(result.by_form.items()):
        if source in ("ambiguous", "invalid"):
            print(f"  {form:20} {how:12} {source:10} {count:6,}")
    for name in ("wrong_silent", "wrong_weak", "missed", "disagree", "unnamed", "wrong"):
        items = getattr(result, name)
        print(f"\n{name}: {len(items)}; by form: {Counter(c.form for c, _ in items).most_common()}")
        for c, r in items[:15]:
            print(
                f"  {c.cell!r} region={c.region} truth={c.truth} expected={c.expected} "
                f"form={c.form} -> {r['hlr_number']} {r['hlr_source']} {r['hlr_error']!r} "
                f"note={r['hlr_note']!r}"
            )


# --- the same number in every writing (issue 23) ---------------------------------------------


@functools.cache
def _examples() -> tuple[phonenumbers.PhoneNumber, ...]:
    """libphonenumber's example number of every region and type."""
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for t in TYPES:
            ex = phonenumbers.example_number_for_type(region, t)
            if ex is not None:
                found.append(ex)
    return tuple(found)


def _writings(e164: str) -> dict[str, object]:
    """The ways a column may hold one international number, all with the same digits."""
    num = phonenumbers.parse(e164)
    intl = phonenumbers.format_number(num, PhoneNumberFormat.INTERNATIONAL)
    digits = e164[1:]
    return {
        "+": e164,
        "+ spaced": intl,
        "+ dashed": intl.replace(" ", "-"),
        "00": "00" + digits,
        "00 spaced": "00 " + intl[1:],
        "bare": digits,
        "bare spaced": intl[1:],
        "int": int(digits),
        "float": float(digits),
        "float text": digits + ".0",
        "float text %f": digits + ".000000",
    }


@given(
    example=st.sampled_from(_examples()),
    tail=st.text("0123456789", min_size=0, max_size=4),
    cut=st.integers(0, 4),
    strict=st.sampled_from([None, True, False]),
)
@hypothesis.settings(max_examples=300, deadline=None)
def test_property_every_writing_of_a_number_gets_one_verdict(
    example: phonenumbers.PhoneNumber, tail: str, cut: int, strict: bool | None
) -> None:
    """With no default_region, every writing of an international number gets the verdict and
    key of its "+" writing, under the same options. The one exception is what the decision
    table calls ambiguous: digits without "+" that are also some country's national writing
    (or "00" that is also a longer international prefix) are never sent, and the error names
    the "+" reading among the others (or says how many more there are)."""
    nsn = phonenumbers.national_significant_number(example)
    nsn = (nsn[: len(nsn) - cut] + tail) or nsn  # a neighbour: valid, possible or neither
    e164 = f"+{example.country_code}{nsn}"
    try:
        num = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return
    hypothesis.assume(phonenumbers.format_number(num, PhoneNumberFormat.E164) == e164)
    hypothesis.assume(len(e164) <= 17)  # a float keeps every digit
    writings = _writings(e164)
    out = normalize(pd.Series(list(writings.values()), dtype=object), strict=strict)
    out = out.astype(object).where(out.notna(), None)
    rows = dict(zip(writings, out.to_dict("records"), strict=True))
    plus = rows["+"]
    verdict = (plus["hlr_source"], plus["hlr_number"])
    for name, row in rows.items():
        got = (row["hlr_source"], row["hlr_number"])
        if row["hlr_source"] == "ambiguous" and not name.startswith("+"):
            assert plus["hlr_source"] not in ("ambiguous", "missing"), (name, row)
            if plus["hlr_number"] is not None:
                assert (
                    _international(e164) in row["hlr_error"] or "more reading" in row["hlr_error"]
                ), (name, row)
            continue
        assert got == verdict, (name, writings[name], row, plus)
    # the "+" writing follows libphonenumber: valid → sent, possible → sent with a note unless
    # strict=True, and the API's 10-15 characters
    valid = phonenumbers.is_valid_number(num)
    possible = phonenumbers.is_possible_number_with_reason(num) == 0
    fits = 10 <= len(e164) <= 15
    sent = fits and (valid or (possible and strict is not True))
    assert plus["hlr_number"] == (e164 if sent else None), plus
    # in a list whose region dials abroad with 00, the marked writings agree there too
    region = phonenumbers.region_code_for_country_code(example.country_code)
    md = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
    if md is not None and md.international_prefix == "00":
        marked = [writings[k] for k in ("+", "+ spaced", "00", "00 spaced")]
        there = normalize(pd.Series(marked, dtype=object), default_region=region, strict=strict)
        there = there.astype(object).where(there.notna(), None)
        got = set(zip(there["hlr_source"], there["hlr_number"], strict=True))
        assert len(got) == 1, (region, marked, there.to_dict("records"))
