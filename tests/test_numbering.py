"""Oracle tests for pd_hlr._numbering: the vectorised mirror against phonenumbers itself.

Every function is compared with the libphonenumber routine it mirrors, on example numbers of
every type of every region, their neighbours, the forms they are written in, and random digit
strings, each read with its own region, no region and an unrelated one.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Iterator

import numpy as np
import phonenumbers
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from pd_hlr import _numbering as nb

# libphonenumber's own choice of national format (private, used here as the oracle)
choose_format = phonenumbers.phonenumberutil._choose_formatting_pattern_for_number

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
LARGE = pa.large_string()
PARSE_ERRORS = {
    nb.ParseError.INVALID_COUNTRY_CODE: phonenumbers.NumberParseException.INVALID_COUNTRY_CODE,
    nb.ParseError.NOT_A_NUMBER: phonenumbers.NumberParseException.NOT_A_NUMBER,
    nb.ParseError.TOO_SHORT_AFTER_IDD: phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD,
    nb.ParseError.TOO_SHORT_NSN: phonenumbers.NumberParseException.TOO_SHORT_NSN,
    nb.ParseError.TOO_LONG: phonenumbers.NumberParseException.TOO_LONG,
}


@contextlib.contextmanager
def vector_threshold(value: int) -> Iterator[None]:
    """Force the vectorised (0) or the per-row phonenumbers (huge) classification."""
    old = nb.VECTOR_MIN_GROUP
    nb.VECTOR_MIN_GROUP = value
    try:
        yield
    finally:
        nb.VECTOR_MIN_GROUP = old


def _examples(neighbours: int = 2, seed: int = 1) -> list[phonenumbers.PhoneNumber]:
    rng = random.Random(seed)
    out = []
    for region in REGIONS:
        for t in range(11):
            ex = phonenumbers.example_number_for_type(region, t)
            if ex is None:
                continue
            nsn = phonenumbers.national_significant_number(ex)
            out.append(ex)
            for _ in range(neighbours):
                tail = f"{rng.randint(0, 999):03d}"
                num = phonenumbers.PhoneNumber(
                    country_code=ex.country_code, national_number=int(nsn[:-3] + tail)
                )
                out.append(num)
    for cc in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        ex = phonenumbers.example_number_for_non_geo_entity(cc)
        if ex is not None:
            out.append(ex)
    return out


def _idd_digits(region: str) -> str:
    facts = nb.region_facts(region)
    prefix = facts.preferred_international_prefix or facts.international_prefix or "00"
    return re.sub(r"\D", "", prefix) if re.fullmatch(r"[\d~]+", prefix) else "00"


def _parse_cases() -> list[tuple[str, str | None]]:
    """ "[+]digits" texts: every example written every way, plus random digits."""
    rng = random.Random(7)
    cases: list[tuple[str, str | None]] = []
    for num in _examples():
        e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)
        cc, nsn = str(num.country_code), phonenumbers.national_significant_number(num)
        home = phonenumbers.region_code_for_country_code(num.country_code)
        home = home if home in phonenumbers.SUPPORTED_REGIONS else rng.choice(REGIONS)
        national = re.sub(r"\D", "", phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL))
        texts = [
            e164,
            national,
            cc + nsn,
            "00" + cc + nsn,
            _idd_digits(home) + cc + nsn,
            nsn,
            "0" + nsn,
            "+0" + nsn,
            f"+{cc}0{nsn}",
            f"+00{cc}{nsn}",
        ]
        for text in texts:
            for region in (home, None, rng.choice(REGIONS)):
                cases.append((text, region))
    for _ in range(5000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 19)))
        cases.append((("+" if rng.random() < 0.3 else "") + digits, rng.choice([*REGIONS, None])))
    return cases


def _expected_parse(text: str, region: str | None) -> tuple[object, object]:
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        return "error", exc.error_type
    return num.country_code, phonenumbers.national_significant_number(num)


def _ours_parse(cases: list[tuple[str, str | None]]) -> list[tuple[object, object]]:
    out: list[tuple[object, object] | None] = [None] * len(cases)
    by_region: dict[str | None, list[int]] = {}
    for i, (_, region) in enumerate(cases):
        by_region.setdefault(region, []).append(i)
    for region, idx in by_region.items():
        r = nb.parse(pa.array([cases[i][0] for i in idx], LARGE), region)
        nsn = r.nsn.to_pylist()
        for j, i in enumerate(idx):
            err = int(r.error[j])
            out[i] = ("error", PARSE_ERRORS[err]) if err else (int(r.cc[j]), nsn[j])
    return out  # type: ignore[return-value]


def test_parse_matches_phonenumbers_on_every_region() -> None:
    cases = _parse_cases()
    ours = _ours_parse(cases)
    wrong = [
        (case, got, want)
        for case, got in zip(cases, ours, strict=True)
        if got != (want := _expected_parse(*case))
    ]
    assert not wrong, wrong[:10]
    assert len(cases) > 100_000  # every region, many forms


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(r"\+?[0-9]{1,18}", fullmatch=True),
    st.sampled_from([None, *REGIONS]),
)
def test_parse_property(text: str, region: str | None) -> None:
    assert _ours_parse([(text, region)]) == [_expected_parse(text, region)]


def _numbers_table() -> tuple[np.ndarray, pa.Array, list[phonenumbers.PhoneNumber]]:
    rng = random.Random(3)
    nums = _examples(neighbours=3)
    for _ in range(3000):
        cc = rng.choice(sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE))
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(2, 15)))
        nums.append(nb._numobj(cc, digits))
    cc = np.array([n.country_code for n in nums], dtype=np.int64)
    nsn = pa.array([phonenumbers.national_significant_number(n) for n in nums], LARGE)
    return cc, nsn, nums


@pytest.mark.parametrize("threshold", [0, 10**9])
def test_classify_matches_phonenumbers(threshold: int) -> None:
    cc, nsn, nums = _numbers_table()
    with vector_threshold(threshold):
        region, ntype, poss = nb.classify(cc, nsn)
    valid = nb.is_valid(region, ntype)
    got = list(zip(region, ntype.tolist(), poss.tolist(), valid.tolist(), strict=True))
    want = [
        (
            phonenumbers.region_code_for_number(n),
            phonenumbers.number_type(n),
            phonenumbers.is_possible_number_with_reason(n),
            phonenumbers.is_valid_number(n),
        )
        for n in nums
    ]
    assert got == want


def test_formats_match_phonenumbers() -> None:
    cc, nsn, nums = _numbers_table()
    national = nb.format_national(cc, nsn).to_pylist()
    international = nb.format_international(cc, nsn).to_pylist()
    digits = nb.national_digits(cc, nsn).to_pylist()
    e164 = nb.e164(cc, nsn).to_pylist()
    for i, num in enumerate(nums):
        nat = phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL)
        assert national[i] == nat
        assert international[i] == phonenumbers.format_number(num, PhoneNumberFormat.INTERNATIONAL)
        assert digits[i] == re.sub(r"\D", "", nat)
        assert e164[i] == phonenumbers.format_number(num, PhoneNumberFormat.E164)


def _natural_brute_force(digits: str) -> set[tuple[int, str]]:
    """Valid numbers that their country's national format writes as exactly these digits (one
    of its formats lays them out; libphonenumber writes uncovered numbers as bare digits, which
    _numbering does not count unless the country has no formats at all)."""
    found = set()
    for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        if cc in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
            continue
        md = nb.main_metadata(cc)
        for k in (0, 1, 2):
            nsn = digits[k:]
            if len(nsn) < 2 or len(nsn) > 17:
                continue
            num = nb._numobj(cc, nsn)
            if not phonenumbers.is_valid_number(num):
                continue
            written = re.sub(r"\D", "", phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL))
            fmt = choose_format(md.number_format, nsn)
            covered = not md.number_format or fmt is not None
            # a format that lets the trunk prefix out: also written without it (India, Turkey)
            optional = fmt is not None and fmt.national_prefix_optional_when_formatting
            trunk = md.national_prefix or ""
            if covered and (
                written == digits or (optional and trunk and written == trunk + digits)
            ):
                found.add((cc, nsn))
    return found


def test_natural_national_readings_match_brute_force() -> None:
    rng = random.Random(4)
    samples: set[str] = {
        "2015550123", "15526018159", "447911123456", "84951234567", "4902084369", "5321234567"
    }
    while len(samples) < 80:
        num = rng.choice(_examples(neighbours=0))
        nat = re.sub(r"\D", "", phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL))
        e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)[1:]
        samples |= {d for d in (nat, e164) if d and d[0] != "0"}
    digits = sorted(samples)
    rows, cc, nsn = nb.natural_national_readings(pa.array(digits, LARGE))
    got: dict[str, set[tuple[int, str]]] = {d: set() for d in digits}
    for r, c, s in zip(rows, cc, nsn.to_pylist(), strict=True):
        got[digits[r]].add((int(c), s))
    for d in digits:
        assert got[d] == _natural_brute_force(d), d
    assert (1, "2015550123") in got["2015550123"]
    assert (86, "15526018159") in got["15526018159"]
    assert (7, "4951234567") in got["84951234567"]  # Russia writes its trunk 8
    assert got["447911123456"] == set()
    # India writes 0490 208 4369 with or without its trunk 0 (not only +49 208 4369)
    assert (91, "4902084369") in got["4902084369"]


def test_region_facts() -> None:
    us, au, gb = nb.region_facts("US"), nb.region_facts("AU"), nb.region_facts("GB")
    assert (us.country_code, us.international_prefix, us.national_prefix) == (1, "011", "1")
    assert us.idd_label == "011" and au.idd_label == "0011" and gb.idd_label == "00"
    assert nb.region_facts("RU").idd_label == "8~10"
    assert gb.national_lengths == (7, 9, 10) and us.national_lengths == (10,)
    for region in REGIONS:
        md = phonenumbers.PhoneMetadata.metadata_for_region(region)
        facts = nb.region_facts(region)
        assert facts.country_code == md.country_code
        assert facts.national_lengths == tuple(sorted(md.general_desc.possible_length))


def test_split_country_code_short_and_zero() -> None:
    digits = pa.array(["1", "44", "447", "0044", "999", "8", "3", "", "38"], LARGE)
    cc, width = nb.split_country_code(digits)
    assert cc.tolist() == [1, 44, 44, 0, 0, 0, 0, 0, 0]
    assert width.tolist() == [1, 2, 2, 0, 0, 0, 0, 0, 0]


def test_strip_idd_follows_the_regions_prefix() -> None:
    digits = pa.array(["0114479", "0044", "00447", "0011447", "0104479", "01104"], LARGE)
    hit, rest = nb.strip_idd(digits, "US")
    assert hit.tolist() == [True, False, False, False, False, False]
    assert rest.to_pylist()[0] == "4479"
    hit, rest = nb.strip_idd(digits, "AU")
    assert hit.tolist() == [False, False, False, True, False, False]
    hit, _ = nb.strip_idd(digits, "JP")
    assert hit.tolist() == [False, False, False, False, True, False]  # "010" then not 0


def test_fixed_length_range() -> None:
    region = np.array(["US", "LU", "LU", "CN", None], dtype=object)
    ntype = np.array(
        [
            PhoneNumberType.FIXED_LINE_OR_MOBILE,
            PhoneNumberType.FIXED_LINE,
            PhoneNumberType.MOBILE,
            PhoneNumberType.MOBILE,
            PhoneNumberType.UNKNOWN,
        ]
    )
    assert nb.fixed_length_range(region, ntype).tolist() == [True, False, True, True, False]
