"""Benchmark: `pd_hlr.normalize.normalize` against a naive per-row phonenumbers baseline.

Question: how long does normalising 1,000,000 rows holding 200,000 distinct numbers in mixed
formats take, and how does that compare to calling ``phonenumbers.parse`` +
``format_number(E164)`` on every row?

The frame is deterministic (seeded): E.164, international with spaces / dashes / dots and
brackets, ``00`` prefix, GB national format (``default_region="GB"``), whole-number floats as a
CSV leaves them (``4.41302778473e11``), junk and blanks, for GB / US / DE / FR / IT / NL / ES
numbers. The baseline is timed on a 100,000-row sample and extrapolated (said so in the output);
both are compared on that sample and the disagreements are counted.

Run: ``.venv/bin/python benchmarks/bench_normalize.py [--rows 1000000] [--distinct 200000]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import phonenumbers

from pd_hlr.normalize import normalize

REGION = "GB"

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
    """The naive way: parse every row, keep possible numbers, format E.164."""
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--distinct", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=100_000)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    series = build_frame(args.rows, args.distinct)
    setup = time.perf_counter() - t0
    n_raw = series.nunique(dropna=True)
    print(
        f"frame: {len(series):,} rows, {args.distinct:,} distinct numbers, "
        f"{n_raw:,} distinct raw cells, dtype={series.dtype} (built in {setup:.1f}s)"
    )

    normalize(series.iloc[:2000], default_region=REGION)  # warm metadata / regex caches
    t0 = time.perf_counter()
    out = normalize(series, default_region=REGION)
    t_norm = time.perf_counter() - t0
    keys = out["hlr_number"].nunique()

    sample = series.iloc[: args.sample]
    t0 = time.perf_counter()
    base = [baseline_one(v) for v in sample]
    t_base_sample = time.perf_counter() - t0
    extrapolated = len(sample) < len(series)
    t_base = t_base_sample * len(series) / len(sample)

    print()
    print(f"{'method':<46} {'seconds':>9} {'rows/s':>12}")
    label = "normalize (factorize + vectorised fast path)"
    print(f"{label:<46} {t_norm:9.2f} {len(series) / t_norm:12,.0f}")
    label = "naive parse+format per row" + (" (extrapolated)" if extrapolated else "")
    print(f"{label:<46} {t_base:9.2f} {len(series) / t_base:12,.0f}")
    print(f"{'ratio (baseline / normalize)':<46} {t_base / t_norm:9.1f}x")
    if extrapolated:
        print(
            f"baseline measured on {len(sample):,} rows in {t_base_sample:.2f}s and scaled "
            f"to {len(series):,} rows"
        )
    print(f"distinct lookup keys: {keys:,}; sources: {out['hlr_source'].value_counts().to_dict()}")

    ours = out["hlr_number"].iloc[: args.sample].tolist()
    diffs = [
        (cell, b, o)
        for cell, b, o in zip(sample, base, ours, strict=True)
        if (b if b is not None else None) != (o if o is not pd.NA else None)
    ]
    floats = [d for d in diffs if isinstance(d[0], float)]
    texts = [d for d in diffs if not isinstance(d[0], float)]
    print(
        f"disagreements with the baseline on the {len(sample):,}-row sample: {len(diffs):,} "
        f"({len(floats):,} whole-number floats, {len(texts):,} text cells)"
    )
    print(
        "  floats: the baseline parses digits with default_region, so a CSV-mangled "
        "+14153127339 read as 14153127339.0 becomes a GB national number; normalize tries "
        "both readings (see pd_hlr.normalize)"
    )
    print(
        "  text: local-only lengths such as '12345' (GB), which phonenumbers.is_possible_number "
        "accepts and normalize withholds as invalid"
    )
    for cell, b, o in floats[:2] + texts[:8]:
        print(f"  {cell!r}: baseline {b!r}, normalize {o!r}")


if __name__ == "__main__":
    main()
