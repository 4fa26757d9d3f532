"""Benchmark: `pd_hlr.normalize.normalize` against phonenumbers once per distinct value.

Question: how long does normalising 1,000,000 rows holding 200,000 distinct numbers in mixed
formats take, compared with the honest baseline, ``phonenumbers.parse`` + ``format_number(E164)``
**once per distinct raw value** (factorize, parse each distinct value, map back to the rows), and
with the naive one, the same per row? ``--compare-src /work/main`` also times another checkout's
normalize on the same frame, back to back with this one (each in a fresh process, alternating,
best of the runs), so a change is measured against the code it replaces in the same conditions.

The frame is deterministic (seeded): E.164, international with spaces / dashes / dots and
brackets, ``00`` prefix, GB national format (``default_region="GB"``), whole-number floats as a
CSV leaves them (``4.41302778473e11``), junk and blanks, for GB / US / DE / FR / IT / NL / ES
numbers. The per-row baseline is timed on a sample and extrapolated (said so in the output); the
per-distinct one runs in full. Keys that differ from the per-distinct baseline are counted and
explained.

**Per-row region** (``--part regional``, also run by default): the same sizes as a
12-country contact list, national formats mostly, with a country column written every way CRM
exports write it (``GB``, ``gb``, ``Germany``, ``Deutschland``, ``+49``, ``49``), read with
``normalize(..., regions=country)``; the baseline is ``phonenumbers.parse(cell, region)`` +
``format_number(E164)`` once per distinct *(cell, ISO region)* pair (given the ISO code, so
the country names cost it nothing). Then the same frame with no region at all: ``normalize``
without ``default_region`` against ``parse(cell, None)`` once per distinct cell.

Run: ``.venv/bin/python benchmarks/bench_normalize.py [--rows 1000000] [--distinct 200000]
[--compare-src /work/main] [--repeat 2] [--part all|mixed|regional]``; small (CI-sized) mode:
``--rows 20000 --distinct 4000 --sample 5000 --repeat 1``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers

REGION = "GB"
HERE = Path(__file__).resolve().parent

# (country code, national prefix digits, number of random digits after it)
RANGES: list[tuple[int, str, int]] = [
    (44, "7400", 6),  # GB mobile
    (44, "7700", 6),
    (44, "7911", 6),
    (44, "1302", 6),  # GB fixed (Doncaster)
    (44, "20", 8),  # London
    (44, "161", 7),  # Manchester
    (1, "201", 7),  # US (NJ)
    (1, "212", 7),
    (1, "415", 7),
    (49, "30", 8),  # DE Berlin
    (49, "151", 8),  # DE mobile
    (33, "6", 8),  # FR mobile
    (39, "06", 8),  # IT Rome (Italian leading zero)
    (31, "6", 8),  # NL mobile
    (34, "6", 8),  # ES mobile
]
JUNK = ["n/a", "unknown", "call me", "12345", "+999 123 4567", "*123#", "tel: ask reception"]


def build_distinct(n: int, rng: np.random.Generator) -> list[str]:
    """n distinct valid E.164 numbers (filtered with phonenumbers.is_valid_number)."""
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        which = rng.integers(0, len(RANGES), size=n)
        for k in which:
            cc, prefix, width = RANGES[k]
            if cc == 1:
                # NANPA exchange code starts 2-9
                tail = f"{rng.integers(2, 10)}{rng.integers(0, 10**6):06d}"
            else:
                tail = f"{rng.integers(0, 10**width):0{width}d}"
            e164 = f"+{cc}{prefix}{tail}"
            if e164 in seen:
                continue
            if not phonenumbers.is_valid_number(phonenumbers.parse(e164)):
                continue
            seen.add(e164)
            out.append(e164)
            if len(out) == n:
                break
    return out


def formats_of(e164: str) -> list[object]:
    """The ways one number may appear in a column (one chosen per row)."""
    num = phonenumbers.parse(e164)
    intl = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    ways: list[object] = [
        e164,
        intl,
        intl.replace(" ", "-"),
        "00" + intl[1:],
        float(e164[1:]),
    ]
    if num.country_code == 44:
        ways.append(phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL))
    if num.country_code == 1:
        ways.append(f"+1 ({e164[2:5]}) {e164[5:8]}.{e164[8:]}")
    return ways


def build_frame(rows: int, distinct: int, seed: int = 7) -> pd.Series:
    rng = np.random.default_rng(seed)
    numbers = build_distinct(distinct, rng)
    home: list[object] = []
    alts: list[list[object]] = []
    for i, e164 in enumerate(numbers):
        ways = formats_of(e164)
        home.append(ways[i % len(ways)])
        alts.append(ways)
    # every number appears at least once, the rest skewed (some numbers appear many times)
    picks = np.concatenate(
        [np.arange(distinct), (rng.pareto(1.5, rows - distinct) * 1000).astype(int) % distinct]
    )
    rng.shuffle(picks)
    other_format = rng.random(rows) < 0.1
    junk_or_blank = rng.random(rows)
    cells: list[object] = [None] * rows
    fmt_choice = rng.integers(0, 7, size=rows)
    for r in range(rows):
        j = junk_or_blank[r]
        if j < 0.01:
            cells[r] = JUNK[r % len(JUNK)] + ("" if r % 3 else f" {r % 1000}")
        elif j < 0.02:
            cells[r] = (None, "", "  ", float("nan"))[r % 4]
        elif other_format[r]:
            ways = alts[picks[r]]
            cells[r] = ways[fmt_choice[r] % len(ways)]
        else:
            cells[r] = home[picks[r]]
    return pd.Series(cells, dtype=object, name="phone")


def baseline_one(value: object) -> str | None:
    """The libphonenumber way: parse, keep possible numbers, format E.164."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(int(value)) if isinstance(value, float) else str(value)
    try:
        num = phonenumbers.parse(text, REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def baseline_distinct(series: pd.Series) -> tuple[list[str | None], float, float]:
    """``baseline_one`` once per distinct raw value, mapped back to the rows; its wall and CPU
    seconds."""
    t0, c0 = time.perf_counter(), time.process_time()
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    keys = np.array([baseline_one(v) for v in uniques] + [None], dtype=object)
    out = keys[codes].tolist()  # code -1 (a null cell) takes the final None
    return out, time.perf_counter() - t0, time.process_time() - c0


# --- timing normalize in a fresh process (this checkout, or another one) --------------------

CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import pandas as pd
import pd_hlr.normalize as m
assert m.__file__.startswith(sys.argv[1]), m.__file__
series = pd.read_pickle(sys.argv[2])
m.normalize(series.iloc[:2000], default_region="GB")  # warm metadata and regex caches
t0, c0 = time.perf_counter(), time.process_time()
out = m.normalize(series, default_region="GB")
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
if len(sys.argv) > 3:
    out.to_pickle(sys.argv[3])
print(json.dumps({"seconds": seconds, "cpu": cpu}))
"""


def time_normalize(src: Path, frame: Path, out: Path | None = None) -> tuple[float, float]:
    """Wall and CPU seconds of one normalize call on the frame, in a fresh process."""
    args = [sys.executable, "-c", CHILD, str(src), str(frame)] + ([str(out)] if out else [])
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=True, timeout=900)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), float(result["cpu"])


# --- per-row region: a 12-country list with a country column ---------------------------------

#: The list's countries and how its country column writes each (one chosen per row).
COUNTRIES: dict[str, list[object]] = {
    "GB": ["GB", "gb", "United Kingdom", "UK", "+44", 44],
    "US": ["US", "USA", "United States", "+1"],
    "DE": ["DE", "Germany", "Deutschland", "+49", 49],
    "FR": ["FR", "France", "+33"],
    "IT": ["IT", "Italy", "Italia", "+39"],
    "NL": ["NL", "Netherlands", "Nederland", "+31"],
    "ES": ["ES", "Spain", "España", "+34"],
    "IE": ["IE", "Ireland", "+353"],
    "AU": ["AU", "Australia", "+61"],
    "IN": ["IN", "India", "+91"],
    "CH": ["CH", "Switzerland", "Schweiz", "+41"],
    "AT": ["AT", "Austria", "Österreich", "+43"],
}


def build_regional_distinct(n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """n distinct valid numbers (E.164, region), spread over `COUNTRIES`: libphonenumber's
    example mobile and fixed numbers of each region with their last five digits drawn."""
    bases = []
    for region in COUNTRIES:
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, kind)
            bases.append((region, example.country_code, str(example.national_number)))
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    while len(out) < n:
        region, cc, nsn = bases[int(rng.integers(0, len(bases)))]
        e164 = f"+{cc}{nsn[:-5]}{int(rng.integers(0, 10**5)):05d}"
        if e164 in seen or not phonenumbers.is_valid_number(phonenumbers.parse(e164)):
            continue
        seen.add(e164)
        out.append((e164, region))
    return out


def regional_formats(e164: str) -> list[str]:
    """National format (most rows), its digits alone, E.164, international."""
    num = phonenumbers.parse(e164)
    national = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
    intl = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    digits = "".join(ch for ch in national if ch.isdigit())
    return [national, national, national, digits, e164, intl]


def build_regional(rows: int, distinct: int, seed: int = 11) -> pd.DataFrame:
    """``phone``, ``country`` (written every way) and ``iso`` (the baseline's region)."""
    rng = np.random.default_rng(seed)
    numbers = build_regional_distinct(distinct, rng)
    ways = [regional_formats(e164) for e164, _ in numbers]
    picks = np.concatenate(
        [np.arange(distinct), (rng.pareto(1.5, rows - distinct) * 1000).astype(int) % distinct]
    )
    rng.shuffle(picks)
    fmt = rng.integers(0, 6, size=rows)
    spell = rng.integers(0, 60, size=rows)
    blank = rng.random(rows) < 0.01
    phone: list[object] = [None] * rows
    country: list[object] = [None] * rows
    iso: list[object] = [None] * rows
    for r in range(rows):
        k = picks[r]
        region = numbers[k][1]
        writings = COUNTRIES[region]
        phone[r] = None if blank[r] else ways[k][fmt[r]]
        country[r] = writings[spell[r] % len(writings)]
        iso[r] = region
    return pd.DataFrame(
        {"phone": pd.Series(phone, dtype=object), "country": pd.Series(country, dtype=object),
         "iso": iso}
    )


def baseline_pairs(frame: pd.DataFrame, region: str | None = "iso") -> tuple[list, float, float]:
    """``parse(cell, region)`` + E.164 once per distinct (cell, region) pair (``region=None``:
    once per distinct cell, no region), mapped back to the rows; wall and CPU seconds."""
    t0, c0 = time.perf_counter(), time.process_time()
    cells = frame["phone"]
    if region is None:
        codes, uniq = pd.factorize(cells, use_na_sentinel=True)
        pairs = [(v, None) for v in uniq]
    else:
        idx = pd.MultiIndex.from_arrays([cells, frame[region]])
        codes, uniq = pd.factorize(idx, use_na_sentinel=True)
        pairs = list(uniq)
    keys = []
    for cell, reg in pairs:
        if cell is None or cell != cell:
            keys.append(None)
            continue
        try:
            num = phonenumbers.parse(str(cell), reg)
        except phonenumbers.NumberParseException:
            keys.append(None)
            continue
        keys.append(phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
                    if phonenumbers.is_possible_number(num) else None)
    out = np.array([*keys, None], dtype=object)[np.asarray(codes)].tolist()
    return out, time.perf_counter() - t0, time.process_time() - c0


CHILD_REGIONAL = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import pandas as pd
import pd_hlr.normalize as m
assert m.__file__.startswith(sys.argv[1]), m.__file__
frame = pd.read_pickle(sys.argv[2])
regional = sys.argv[3] == "regional"
kwargs = lambda f: {"regions": f["country"]} if regional else {}
m.normalize(frame["phone"].iloc[:2000], **kwargs(frame.iloc[:2000]))  # warm caches
t0, c0 = time.perf_counter(), time.process_time()
out = m.normalize(frame["phone"], **kwargs(frame))
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
out.to_pickle(sys.argv[4])
print(json.dumps({"seconds": seconds, "cpu": cpu}))
"""


def time_regional(frame: Path, mode: str, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of ``normalize`` (``mode``: "regional" with the country column,
    "none" without any region) on the frame, in a fresh process."""
    src = HERE.parent
    args = [sys.executable, "-c", CHILD_REGIONAL, str(src), str(frame), mode, str(out)]
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=True, timeout=900)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), float(result["cpu"])


def run_regional(args: argparse.Namespace) -> None:
    from _common import summary

    t0 = time.perf_counter()
    frame = build_regional(args.rows, args.distinct)
    pairs = len(frame[["phone", "iso"]].dropna().drop_duplicates())
    print(
        f"\nregional frame: {len(frame):,} rows, {args.distinct:,} distinct numbers in "
        f"{len(COUNTRIES)} countries, {frame['phone'].nunique():,} distinct cells, {pairs:,} "
        f"distinct (cell, region) pairs, {frame['country'].nunique()} distinct country values "
        f"(built in {time.perf_counter() - t0:.1f}s)"
    )
    n = len(frame)
    with tempfile.TemporaryDirectory() as tmp:
        path, result = Path(tmp) / "frame.pkl", Path(tmp) / "out.pkl"
        frame.to_pickle(path)
        figures = {}
        for mode in ("regional", "none"):
            runs = [time_regional(path, mode, result) for _ in range(args.repeat)]
            figures[mode] = (min(w for w, _ in runs), min(c for _, c in runs))
            if mode == "regional":
                out = pd.read_pickle(result)
    base, t_base, c_base = baseline_pairs(frame)
    _, t_none, c_none = baseline_pairs(frame, None)
    (t_reg, c_reg), (t_nr, c_nr) = figures["regional"], figures["none"]
    print(f"{'method':<66} {'wall s':>8} {'CPU s':>8}")
    for label, wall, cpu in [
        ("normalize(phone, regions=country) (fresh process, best of runs)", t_reg, c_reg),
        ("phonenumbers parse(cell, region)+format, per distinct pair", t_base, c_base),
        ("normalize(phone), no region at all", t_nr, c_nr),
        ("phonenumbers parse(cell, None)+format, per distinct cell", t_none, c_none),
    ]:
        print(f"{label[:66]:<66} {wall:8.2f} {cpu:8.2f}")
    print(f"ratio per-pair baseline / normalize with regions: {t_base / t_reg:.2f}x wall, "
          f"{c_base / c_reg:.2f}x CPU (target >= 2x)")
    print(f"ratio per-cell baseline / normalize with no region: {t_none / t_nr:.2f}x wall, "
          f"{c_none / c_nr:.2f}x CPU")
    summary("3 normalise", f"12-country region column, {n:,} rows",
            f"{t_reg:.2f} s (CPU {c_reg:.2f} s)",
            f"{t_base:.2f} s (CPU {c_base:.2f} s; parse once per (cell, region))",
            f"{t_base / t_reg:.2f}x wall, {c_base / c_reg:.2f}x CPU")
    summary("3 normalise", f"no region, same frame, {n:,} rows",
            f"{t_nr:.2f} s (CPU {c_nr:.2f} s)",
            f"{t_none:.2f} s (CPU {c_none:.2f} s; parse once per cell, no region)",
            f"{t_none / t_nr:.2f}x wall, {c_none / c_nr:.2f}x CPU")
    keys = out["hlr_number"].astype(object).where(out["hlr_number"].notna(), None).tolist()
    truth = frame["iso"].tolist()
    diffs = Counter()
    examples: dict[str, tuple[object, object, object, object]] = {}
    for cell, region, b, o in zip(frame["phone"], truth, base, keys, strict=True):
        if b != o:
            kind = "baseline sends" if b and not o else ("normalize sends" if o and not b
                                                          else "different keys")
            diffs[kind] += 1
            examples.setdefault(kind, (cell, region, b, o))
    print(f"rows where the keys differ from the per-pair baseline: {sum(diffs.values()):,}")
    for kind, count in diffs.most_common():
        cell, region, b, o = examples[kind]
        print(f"  {count:8,}  {kind} (e.g. {cell!r} in {region}: baseline {b!r}, "
              f"normalize {o!r})")


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(HERE))
    from _common import machine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--distinct", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=100_000, help="per-row baseline sample")
    parser.add_argument("--repeat", type=int, default=2, help="fresh-process runs per side")
    parser.add_argument("--compare-src", type=Path, help="another checkout to time alongside")
    parser.add_argument("--part", choices=("all", "mixed", "regional"), default="all",
                        help="the mixed-format column, the 12-country region column, or both")
    args = parser.parse_args(argv)
    print(machine())
    if args.part in ("all", "mixed"):
        run_mixed(args)
    if args.part in ("all", "regional"):
        run_regional(args)


def run_mixed(args: argparse.Namespace) -> None:
    from _common import summary

    t0 = time.perf_counter()
    series = build_frame(args.rows, args.distinct)
    n_raw = series.nunique(dropna=True)
    print(
        f"frame: {len(series):,} rows, {args.distinct:,} distinct numbers, "
        f"{n_raw:,} distinct raw cells, dtype={series.dtype} "
        f"(built in {time.perf_counter() - t0:.1f}s)"
    )
    ours_src = HERE.parent
    with tempfile.TemporaryDirectory() as tmp:
        frame = Path(tmp) / "frame.pkl"
        series.to_pickle(frame)
        result = Path(tmp) / "out.pkl"
        ours: list[tuple[float, float]] = []
        theirs: list[tuple[float, float]] = []
        for _ in range(args.repeat):  # alternate, so both sides see the same machine
            if args.compare_src:
                theirs.append(time_normalize(args.compare_src, frame))
            ours.append(time_normalize(ours_src, frame, result))
        out = pd.read_pickle(result)

    base, t_distinct, c_distinct = baseline_distinct(series)
    sample = series.iloc[: args.sample]
    t0 = time.perf_counter()
    for v in sample:
        baseline_one(v)
    t_row = (time.perf_counter() - t0) * len(series) / len(sample)

    n = len(series)
    t_norm, c_norm = min(t for t, _ in ours), min(c for _, c in ours)
    rows = [("normalize, this checkout (fresh process, best of runs)", t_norm, c_norm)]
    if theirs:
        t_old, c_old = min(t for t, _ in theirs), min(c for _, c in theirs)
        rows.append((f"normalize, {args.compare_src}", t_old, c_old))
    rows.append(("phonenumbers parse+format once per distinct value", t_distinct, c_distinct))
    rows.append(("phonenumbers parse+format per row (extrapolated)", t_row, float("nan")))
    print()
    print(f"{'method':<58} {'wall s':>8} {'CPU s':>8} {'rows/s (wall)':>14}")
    for label, wall, cpu in rows:
        print(f"{label[:58]:<58} {wall:8.2f} {cpu:8.2f} {n / wall:14,.0f}")
    print("runs (wall, CPU): this checkout "
          + ", ".join(f"({w:.2f}, {c:.2f})" for w, c in ours)
          + (f"; {args.compare_src}: " + ", ".join(f"({w:.2f}, {c:.2f})" for w, c in theirs)
             if theirs else ""))
    print(f"ratio per-distinct baseline / normalize: {t_distinct / t_norm:.1f}x wall, "
          f"{c_distinct / c_norm:.1f}x CPU")
    print(f"ratio per-row baseline / normalize: {t_row / t_norm:.1f}x wall")
    summary("3 normalise", f"wall time, {n:,} rows", f"{t_norm:.2f} s (CPU {c_norm:.2f} s)",
            f"{t_distinct:.2f} s (CPU {c_distinct:.2f} s; parse once per distinct value)",
            f"{t_distinct / t_norm:.1f}x wall, {c_distinct / c_norm:.1f}x CPU")
    if theirs:
        print(f"ratio {args.compare_src} / this checkout: {t_old / t_norm:.2f}x wall, "
              f"{c_old / c_norm:.2f}x CPU")
        summary("3 normalise", "vs the previous normalize, same frame",
                f"{t_norm:.2f} s (CPU {c_norm:.2f} s)",
                f"{t_old:.2f} s (CPU {c_old:.2f} s; {args.compare_src})",
                f"{t_old / t_norm:.2f}x wall, {c_old / c_norm:.2f}x CPU")

    keys = out["hlr_number"].astype(object).where(out["hlr_number"].notna(), None).tolist()
    print(f"distinct lookup keys: {out['hlr_number'].nunique():,}; "
          f"sources: {out['hlr_source'].value_counts().to_dict()}")
    diffs = Counter()
    examples: dict[str, tuple[object, object, object]] = {}
    for cell, b, o in zip(series, base, keys, strict=True):
        if b != o:
            kind = type(cell).__name__ + (": baseline sends" if b else ": normalize sends")
            diffs[kind] += 1
            examples.setdefault(kind, (cell, b, o))
    print(f"rows where the keys differ from the per-distinct baseline: {sum(diffs.values()):,}")
    for kind, count in diffs.most_common():
        cell, b, o = examples[kind]
        print(f"  {count:8,}  {kind} (e.g. {cell!r}: baseline {b!r}, normalize {o!r})")
    print(
        "  floats: the baseline reads digits in default_region, so +14153127339 written as "
        "14153127339.0 becomes a GB number; normalize reads both ways (the decision table)\n"
        "  text: the baseline sends local-only lengths ('12345' as +4412345) and any text "
        "phonenumbers can parse; normalize withholds numbers that are not possible"
    )


if __name__ == "__main__":
    main()
