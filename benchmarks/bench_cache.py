"""Benchmark (issue 15): warm runs against the merge floor, on a cache left by real cold runs.

The cache is seeded **through the pipeline** (``--seed cold``, the default): cold ``validate``
runs against a zero-latency sandbox in its own process, exactly as users fill it (journals, parts
every 1,000 answers, size-tiered compaction at the end of each run). ``--seed writer`` writes the
same runs through the cache's own writer (``HLRCache.writer()``: the same journals, parts and
compaction) with ``sandbox.answer`` computed in-process, without HTTP: the same folders, minutes
sooner. The seeded folders are kept under ``benchmarks/_out/cache`` so a re-run reuses them
(``--reseed`` starts over).

Measured, each in a **fresh process** (time of the call; peak RSS of the process, its
``VmHWM``), interleaved and repeated (``--reps``, fastest time, highest peak):

* **warm** — ``df.hlr.validate("phone", cache=<folder>)`` on N rows holding N/5 distinct E.164
  numbers, all cached (normalisation, cache read and the join back to rows included);
* **merge floor** — what a skilled analyst would hand-write: ``pd.read_parquet`` of a file
  holding exactly those answers (the same columns the cache serves) and ``DataFrame.merge`` on
  the E.164 key, on the same input frame;

at 100k, 1M and 5M rows (caches of 20k, 200k and 1M entries, left by three nested cold runs:
20k, then 180k more, then 800k more), plus the **history test**: 20 cold runs of 10,000 new
numbers into one folder; a warm lookup of run 1's 10,000 rows after run 1 and after run 20.

Targets: warm ≤ 1.5× the floor at 1M and 5M rows; peak RSS ≤ 1.2× the floor's; 1M → 5M rows
≤ 5.5× the time; run 20's lookup ≤ 1.2× run 1's.

``--small`` (what CI runs, well under a minute): 10,000 rows, a history of 3 runs of 1,000
numbers, one repetition, seeded by the writer into a temporary folder.

Run: ``.venv/bin/python benchmarks/bench_cache.py [--sizes 100000,1000000,5000000] [--reps 3]
[--reseed] [--seed cold|writer] [--md tables.md] [--small]`` (the figures are in
``benchmarks/README.md``)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from _common import (
    TOKEN,
    current_rss_bytes,
    emit_result,
    machine,
    mib,
    peak_rss_bytes,
    run_child,
    sandbox_process,
    summary,
    table,
)

import pd_hlr  # noqa: F401  (registers the accessor)
from pd_hlr import HLRCache, HLRClient, sandbox
from pd_hlr.cache import Entry
from pd_hlr.pipeline import api_namespace, cached_numbers
from pd_hlr.settings import ValidateSettings

OUT = Path(__file__).resolve().parent / "_out" / "cache"
#: Never contacted: every number is cached. A client pointed here fails fast if one is not.
DEAD_URL = "http://127.0.0.1:9"
WARM = {"retry_temporary": False, "progress": False}  # temporary answers are served too
FLOOR_COLUMNS = [
    "number",
    "checked_at",
    "to",
    "status",
    "live",
    "dead",
    "out_of_network",
    "current_network",
    "original_network",
    "hlr_extra",
]
HISTORY_RUNS = 20
HISTORY_NUMBERS = 10_000
#: ``--small``: sizes, history (RUNSxNUMBERS), repetitions.
SMALL = ("10000", "3x1000", 1)


# --- data ------------------------------------------------------------------------------------
def distinct_numbers(n: int, seed: int = 15) -> np.ndarray:
    """``n`` distinct valid UK mobile numbers in E.164, in random order (object array)."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(10**8, size=n, replace=False)
    return np.array([f"+4474{x:08d}" for x in picks], dtype=object)


def rows_of(numbers: np.ndarray, rows: int, seed: int = 16) -> pd.DataFrame:
    """``rows`` cells: every number once, the rest drawn uniformly, shuffled."""
    rng = np.random.default_rng(seed)
    picks = np.concatenate(
        [np.arange(len(numbers)), rng.integers(0, len(numbers), rows - len(numbers))]
    )
    rng.shuffle(picks)
    return pd.DataFrame({"phone": pd.array(numbers[picks], dtype="str")})


# --- seeding: through the pipeline, or through the cache's writer ---------------------------
def cold_run(url: str, folder: Path, numbers: np.ndarray) -> float:
    t0 = time.perf_counter()
    with HLRClient(token=TOKEN, base_url=url, workers=16) as client:
        out = pd.DataFrame({"phone": numbers}).hlr.validate(
            "phone", cache=folder, client=client, progress=False
        )
    assert not out["hlr_source"].eq("error").any(), out["hlr_source"].value_counts()
    return time.perf_counter() - t0


def writer_run(folder: Path, numbers: np.ndarray) -> float:
    """What a cold run of ``numbers`` writes, without HTTP: the answers of the numbers the
    cache does not serve (``pipeline.cached_numbers``, default settings), through the cache's
    own writer (a journal line per answer, a part every ``flush_every`` answers, size-tiered
    compaction on close), under the key a warm run asks and with the sandbox's answer."""
    t0 = time.perf_counter()
    settings = ValidateSettings.from_kwargs()
    api = api_namespace(HLRClient(token=TOKEN, base_url=DEAD_URL))
    wanted = [str(n) for n in numbers]
    served = set(cached_numbers(wanted, settings, HLRCache(folder), api).index)
    now = datetime.now(UTC)
    with HLRCache(folder).writer() as writer:
        for n in wanted:
            if n not in served:
                writer.add(Entry(n, settings.options.key(), api, sandbox.answer(n), now))
    return time.perf_counter() - t0


@contextlib.contextmanager
def seeder(how: str) -> Iterator[tuple[Callable[[Path, np.ndarray], float], Callable[[], str]]]:
    """``(run, charged)``: one run's seeding into a folder, and what the sandbox charged."""
    if how == "writer":
        yield writer_run, lambda: "no lookups (seeded by the cache's writer, no HTTP)"
        return
    with sandbox_process(latency=0.0) as sb:
        yield (
            lambda folder, numbers: cold_run(sb.url, folder, numbers),
            lambda: f"sandbox charged {sb.stats().total_charged:,} lookups in all",
        )


def seed(sizes: list[int], reseed: bool, how: str = "cold") -> None:
    """Seed what is missing (``--reseed``: everything) by cold runs or the writer (``how``)."""
    if reseed and OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True, exist_ok=True)
    history = OUT / "history"
    todo_history = not (OUT / "input-history.parquet").exists()
    todo_sizes = [r for r in sorted(sizes) if not (OUT / f"floor-{r}.parquet").exists()]
    if not todo_history and not todo_sizes:
        print(f"reusing the seeded caches in {OUT}")
        return
    biggest = distinct_numbers(max(sizes) // 5)
    with seeder(how) as (one_run, charged):
        if todo_history:
            for p in (history, OUT / "history-after-1"):
                shutil.rmtree(p, ignore_errors=True)
            runs = distinct_numbers(HISTORY_RUNS * HISTORY_NUMBERS, seed=20)
            for i in range(HISTORY_RUNS):
                batch = runs[i * HISTORY_NUMBERS : (i + 1) * HISTORY_NUMBERS]
                one_run(history, batch)
                if i == 0:
                    shutil.copytree(history, OUT / "history-after-1")
            pd.DataFrame({"phone": pd.array(runs[:HISTORY_NUMBERS], dtype="str")}).to_parquet(
                OUT / "input-history.parquet"
            )
            print(f"seeded history: {HISTORY_RUNS} {how} runs of {HISTORY_NUMBERS:,} new numbers")
        previous: Path | None = None
        for rows in sorted(sizes):
            folder = OUT / f"cache-{rows}"
            if rows in todo_sizes:
                shutil.rmtree(folder, ignore_errors=True)
                if previous is not None:  # nested: this cache is the smaller one, grown
                    shutil.copytree(previous, folder)
                numbers = biggest[: rows // 5]
                t = one_run(folder, numbers)
                print(f"seeded {folder.name}: {len(numbers):,} numbers by a {how} run ({t:.0f}s)")
                rows_of(numbers, rows).to_parquet(OUT / f"input-{rows}.parquet")
                floor = HLRCache(folder).to_frame(raw=False)[FLOOR_COLUMNS]
                floor.to_parquet(OUT / f"floor-{rows}.parquet", index=False)
            previous = folder
        print(charged())


# --- the children -----------------------------------------------------------------------------
def vm_hwm_bytes() -> int:
    """This process's peak RSS (``VmHWM``). Unlike ``ru_maxrss``, it starts afresh at ``exec``,
    so a child's figure does not inherit the parent's size."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return peak_rss_bytes()


def child(kind: str, input_path: str, source: str) -> None:
    df = pd.read_parquet(input_path)
    rss_before = current_rss_bytes()
    if kind == "warm":
        with HLRClient(token=TOKEN, base_url=DEAD_URL, max_retries=0) as client:
            t0 = time.perf_counter()
            out = df.hlr.validate("phone", cache=source, client=client, **WARM)
            elapsed = time.perf_counter() - t0
            peak = vm_hwm_bytes()
            t0 = time.perf_counter()  # a notebook's re-run: the same call again, same process
            again = df.hlr.validate("phone", cache=source, client=client, **WARM)
            second = time.perf_counter() - t0
            requests = client.stats.requests
        sources = out["hlr_source"].value_counts()
        assert requests == 0 and out["hlr_source"].eq("cache").all(), sources
        assert again["hlr_source"].equals(out["hlr_source"])
    else:
        t0 = time.perf_counter()
        answers = pd.read_parquet(source)
        out = df.merge(answers, left_on="phone", right_on="number", how="left")
        elapsed = time.perf_counter() - t0
        peak, second = vm_hwm_bytes(), None
        assert out["number"].notna().all()
    emit_result(
        {
            "t": elapsed,
            "t2": second,
            "peak": peak,
            "before": rss_before,
            "shape": list(out.shape),
        }
    )


def measure(inp: Path, sources: dict[str, Path], reps: int) -> dict[str, dict[str, float]]:
    """Each kind ``reps`` times, interleaved (so a busy moment hits them alike); the fastest
    run's time and the highest peak of each kind."""
    runs: dict[str, list[dict]] = {kind: [] for kind in sources}
    for _ in range(reps):
        for kind, source in sources.items():
            args = [os.path.abspath(__file__), "--child", kind.split(":")[0], str(inp), str(source)]
            runs[kind].append(run_child(args))
    out = {}
    for kind, results in runs.items():
        best = min(results, key=lambda r: r["t"])
        best["peak"] = max(r["peak"] for r in results)
        out[kind] = best
    return out


# --- the parent -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    global HISTORY_RUNS, HISTORY_NUMBERS, OUT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,5000000")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--md", type=Path, help="also write the tables as markdown here")
    parser.add_argument(
        "--history",
        default=f"{HISTORY_RUNS}x{HISTORY_NUMBERS}",
        help="RUNSxNUMBERS of the history test",
    )
    parser.add_argument("--out", type=Path, help=f"where the seeded caches live ({OUT})")
    parser.add_argument("--seed-only", action="store_true", help="seed the caches and stop")
    parser.add_argument(
        "--seed",
        choices=["cold", "writer"],
        default="cold",
        help="fill the caches by cold runs through the pipeline, or by the cache's writer",
    )
    parser.add_argument(
        "--small",
        action="store_true",
        help="CI: 10,000 rows, a 3x1000 history, 1 rep, writer-seeded in a temporary folder",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return
    if args.small:
        args.sizes, args.history, args.reps = SMALL
        args.seed = "writer"
    HISTORY_RUNS, HISTORY_NUMBERS = (int(x) for x in args.history.split("x"))
    with contextlib.ExitStack() as stack:
        if args.out is None and args.small:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="pd-hlr-bench-cache-"))
            args.out = Path(tmp)
        OUT = args.out or OUT
        report(args)


def report(args: argparse.Namespace) -> None:
    """Seed what is missing, measure, print the tables (and ``--md``)."""
    sizes = sorted(int(s) for s in args.sizes.split(","))
    print(machine())
    t0 = time.perf_counter()
    seed(sizes, args.reseed, args.seed)
    print(f"seeding/setup {time.perf_counter() - t0:.0f}s")
    if args.seed_only:
        return

    rows_out = []
    figures: dict[int, tuple[dict, dict]] = {}
    for rows in sizes:
        folder = OUT / f"cache-{rows}"
        stats = HLRCache(folder).stats()
        inp = OUT / f"input-{rows}.parquet"
        got = measure(inp, {"warm": folder, "floor": OUT / f"floor-{rows}.parquet"}, args.reps)
        ours, floor = got["warm"], got["floor"]
        figures[rows] = (ours, floor)
        rows_out.append(
            [
                f"{rows:,} rows / {rows // 5:,} distinct ({stats['parts']} parts)",
                f"{ours['t']:.2f} s",
                f"{ours['t2']:.2f} s",
                f"{floor['t']:.2f} s",
                f"{ours['t'] / floor['t']:.2f}x",
                mib(ours["peak"]),
                mib(floor["peak"]),
                f"{ours['peak'] / floor['peak']:.2f}x",
            ]
        )
    headers = [
        "warm run, all cached",
        "pd-hlr",
        "same call again",
        "merge floor",
        "time ratio",
        "pd-hlr peak",
        "floor peak",
        "peak ratio",
    ]
    warm_table = table(rows_out, headers)
    print()
    print(warm_table)
    scaling = None
    if 1_000_000 in figures and 5_000_000 in figures:
        scaling = figures[5_000_000][0]["t"] / figures[1_000_000][0]["t"]
        print(f"\n1M -> 5M rows: {scaling:.2f}x the time (target <= 5.5x)")

    before = HLRCache(OUT / "history-after-1").stats()
    after = HLRCache(OUT / "history").stats()
    inp = OUT / "input-history.parquet"
    got = measure(inp, {"warm:1": OUT / "history-after-1", "warm:20": OUT / "history"}, args.reps)
    h1, h20 = got["warm:1"], got["warm:20"]
    hist_rows = [
        [
            "after run 1",
            f"{before['entries']:,}",
            before["parts"],
            f"{h1['t'] * 1000:.0f} ms",
            mib(h1["peak"]),
        ],
        [
            f"after run {HISTORY_RUNS}",
            f"{after['entries']:,}",
            after["parts"],
            f"{h20['t'] * 1000:.0f} ms",
            mib(h20["peak"]),
        ],
        ["ratio", "", "", f"{h20['t'] / h1['t']:.2f}x", f"{h20['peak'] / h1['peak']:.2f}x"],
    ]
    hist_table = table(
        hist_rows,
        [f"history: run 1's {HISTORY_NUMBERS:,} rows", "entries", "parts", "time", "peak RSS"],
    )
    print()
    print(hist_table)
    for rows, (ours, floor) in figures.items():
        summary(
            "15 warm vs merge floor",
            f"{rows:,} rows",
            f"{ours['t']:.2f}s",
            f"{floor['t']:.2f}s",
            f"{ours['t'] / floor['t']:.2f}x",
        )
    summary(
        "15 history",
        f"run {HISTORY_RUNS} vs run 1 lookup",
        f"{h20['t'] * 1000:.0f} ms",
        f"{h1['t'] * 1000:.0f} ms",
        f"{h20['t'] / h1['t']:.2f}x",
    )
    if args.md:
        md = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        md += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows_out]
        md += ["", f"1M → 5M rows: {scaling:.2f}× the time" if scaling else "", ""]
        hh = [f"history: run 1's {HISTORY_NUMBERS:,} rows", "entries", "parts", "time", "peak RSS"]
        md += ["| " + " | ".join(hh) + " |", "|" + "---|" * len(hh)]
        md += ["| " + " | ".join(str(c) for c in r) + " |" for r in hist_rows]
        args.md.write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    sys.exit(main())
