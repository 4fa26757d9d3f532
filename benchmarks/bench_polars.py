"""Benchmark: the Polars LazyFrame path vs the pandas accessor vs the Dask path, warm cache,
parquet in and out, in one run.

Question (issue 17): on a warm cache, how many rows/s does each path enrich, from a folder of
parquet files to parquet, and how much memory does the largest process of each take at its
peak? Target: the Polars path at >= 2x the pandas path's rows/s, at <= 0.25 of its peak memory.

Setup (shared with ``bench_dask.py`` through ``_common.py``): a folder of parquet files
(``--rows-per-file`` rows each) with ``--rows`` rows holding ``--distinct`` distinct numbers
(GB / DE / FR / NL / US) in six formats, 1% junk and 1% blanks/nulls, an ``id`` and an
``amount`` column; the cache seeded without HTTP with an answer for every lookup key. Every path
gets a client pointed at a local sandbox: a miss would show up as a request (the run reports
how many there were: 0 expected).

Each path runs in its own fresh process, timed from reading the input to the output written
(imports, and the Dask cluster's start-up, excluded):

* pandas (``bench_dask.py``'s): ``pd.read_parquet(folder)`` → ``df.hlr.validate`` →
  ``out.hlr.to_parquet(file)``;
* Dask (``bench_dask.py``'s): a 2-worker ``LocalCluster``, ``dd.read_parquet`` →
  ``ddf.hlr.validate`` → ``out.to_parquet(folder)``; its peak is the largest of the calling
  process and the workers;
* Polars: ``pl.scan_parquet(folder/*.parquet)`` → ``lf.hlr.validate`` (the distinct cells
  found with the streaming engine, the lookups served from the cache) →
  ``out.hlr.sink_parquet(file, compression="snappy")`` (the join to the rows streamed to the
  file; snappy is what the pandas path writes, pyarrow's default).

Peaks are each process's ``VmHWM`` (its peak resident set; see ``bench_dask.py`` for why not
``ru_maxrss``), with the orchestrator's RSS sampler over all of a run's processes as a check.
``--limit-gb X`` kills any run whose process passes X GiB resident ("did not fit").

Run (default, a few minutes on 2 cores)::

    .venv/bin/python benchmarks/bench_polars.py              # 4,000,000 rows / 400,000 distinct

The issue's full size::

    .venv/bin/python benchmarks/bench_polars.py --rows 20000000 --distinct 2000000 --limit-gb 16

``--workdir DIR`` keeps the data (input + seeded cache) and ``results.json`` for re-runs;
``--only polars pandas`` runs some of the paths; ``--repeat N`` runs the paths in turn N times
and reports each path's fastest round (the machine is shared: the round least disturbed by other
jobs), with every round's time listed. CPU seconds (all threads) are given beside wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from _common import (
    SMALL,
    cpu_seconds,
    gib,
    machine,
    prepare_dataset,
    run_measured,
    status_bytes,
    summary,
    vmhwm_bytes,
)
from bench_dask import OPTS, TOKEN  # the pandas and Dask children are bench_dask.py's

BENCH_DASK = str(Path(__file__).with_name("bench_dask.py"))
#: The pandas path writes snappy (pyarrow's default): the Polars path writes the same codec, so
#: both write the same kind of file (Polars' own default, zstd, costs ~4 % more time here and
#: makes files ~25 % smaller).
CODEC = "snappy"
PATHS = ("pandas", "dask", "polars")


def run_polars(folder: Path, cache_dir: Path, out: Path, url: str) -> dict[str, Any]:
    """The Polars path in this (fresh) process: scan → validate → sink_parquet."""
    import polars as pl

    import pd_hlr.polars  # noqa: F401  (registers the namespaces)
    from pd_hlr import HLRClient

    base = status_bytes("VmRSS")
    with HLRClient(token=TOKEN, base_url=url) as client:
        t0, c0 = time.perf_counter(), cpu_seconds()
        lf = pl.scan_parquet(folder / "*.parquet")
        res = lf.hlr.validate("phone", client=client, cache=cache_dir, **OPTS)
        t_validate = time.perf_counter() - t0
        res.hlr.sink_parquet(out, compression=CODEC)
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    peak = vmhwm_bytes()
    report = res.hlr.report()
    return {
        "rows": pl.scan_parquet(out).select(pl.len()).collect().item(),
        "seconds": elapsed,
        "validate_s": t_validate,
        "sink_s": elapsed - t_validate,
        "cpu_s": cpu,
        "peak_largest": peak,
        "baseline": base,
        "report": report.to_dict(),
    }


def _run(path: str, paths: list[str], limit_gb: float | None) -> dict[str, Any] | None:
    if path == "polars":
        return run_measured(__file__, ["--child", "polars", "--paths", *paths], limit_gb)
    return run_measured(BENCH_DASK, ["--child", path, "--paths", *paths], limit_gb)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--distinct", type=int, default=400_000)
    parser.add_argument("--rows-per-file", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", default=None, help="keep data here (default: a temp dir)")
    parser.add_argument(
        "--small", action="store_true", help="CI's small mode: {:,} rows, {:,} distinct, "
        "{:,} per file (proves the script runs; its figures mean little)".format(*SMALL)
    )
    parser.add_argument("--limit-gb", type=float, default=None, help="per-process RSS limit")
    parser.add_argument("--only", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of the paths, in turn; each path's fastest round is reported (the others "
        "are listed): on a shared machine, the round least disturbed by other jobs",
    )
    parser.add_argument("--child", choices=("polars",), help=argparse.SUPPRESS)
    parser.add_argument("--paths", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.small:
        args.rows, args.distinct, args.rows_per_file = SMALL

    if args.child:
        folder, cache_dir, out, url = args.paths
        result = run_polars(Path(folder), Path(cache_dir), Path(out), url)
        print(json.dumps(result, default=str))
        return

    from pd_hlr import sandbox

    print(machine())
    work, folder, cache_dir = prepare_dataset(
        args.workdir, "bench-polars-", args.rows, args.distinct, args.rows_per_file, args.seed
    )
    rounds: dict[str, list[dict[str, Any] | None]] = {p: [] for p in PATHS if p in args.only}
    with sandbox.serve(token=TOKEN) as sb:
        outputs = {"pandas": "out-pandas.parquet", "dask": "out-dask", "polars": "out.parquet"}
        for i in range(args.repeat):
            for path in rounds:
                out = work / outputs[path]
                if out.exists():
                    shutil.rmtree(out) if out.is_dir() else out.unlink()
                print(f"running the {path} path (round {i + 1}/{args.repeat}) ...", flush=True)
                paths = [str(folder), str(cache_dir), str(out), sb.url]
                rounds[path].append(_run(path, paths, args.limit_gb))
        requests = sb.stats().requests
    results = {
        path: min((r for r in runs if r), key=lambda r: r["seconds"], default=None)
        for path, runs in rounds.items()
    }
    if args.repeat > 1:
        for path, runs in rounds.items():
            times = ", ".join(f"{r['seconds']:.1f}" if r else "-" for r in runs)
            print(f"{path}: seconds per round {times}")
    report(args, results, requests)
    (work / "results.json").write_text(json.dumps(rounds, indent=1, default=str))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, results: dict[str, Any], requests: int) -> None:
    """The results table and the ratios against the targets."""
    print()
    print(f"requests sent to the sandbox (should be 0 on a warm cache): {requests}")
    print(
        f"{'path':<8} {'rows':>12} {'seconds':>9} {'rows/s':>12} {'largest process peak':>22}"
        f" {'(sampled)':>11}"
    )
    for name in PATHS:
        r = results.get(name)
        if name not in args.only:
            continue
        if r is None:
            print(f"{name:<8} {'did not run to the end (see above)':>12}")
            continue
        print(
            f"{name:<8} {r['rows']:>12,} {r['seconds']:9.1f} {r['rows'] / r['seconds']:12,.0f} "
            f"{gib(r['peak_largest']):>22} {gib(r['watchdog_peak_largest']):>11}"
        )
    p, d, q = results.get("pandas"), results.get("dask"), results.get("polars")
    if p:
        print(
            f"pandas: read {p['read_s']:.1f}s, validate {p['validate_s']:.1f}s, write "
            f"{p['write_s']:.1f}s, CPU {p['cpu_s']:.1f}s; RSS after imports "
            f"{gib(p['baseline']).strip()}"
        )
    if q:
        rep = q["report"]
        print(
            f"polars: validate (distinct cells + cache) {q['validate_s']:.1f}s, join + sink "
            f"{q['sink_s']:.1f}s, CPU {q['cpu_s']:.1f}s; {rep['distinct']:,} distinct numbers, "
            f"{rep['cached']:,} cached; RSS after imports {gib(q['baseline']).strip()}"
        )
    for base, name in ((p, "pandas"), (d, "dask")):
        if not (q and base):
            continue
        speed = (q["rows"] / q["seconds"]) / (base["rows"] / base["seconds"])
        mem = q["peak_largest"] / base["peak_largest"]
        target = " (target >= 2: {}); ".format("met" if speed >= 2 else "NOT met")
        mem_target = " (target <= 0.25: {})".format("met" if mem <= 0.25 else "NOT met")
        is_pandas = name == "pandas"
        print(
            f"polars vs {name}: rows/s x{speed:.2f}{target if is_pandas else '; '}"
            f"peak memory x{mem:.2f}{mem_target if is_pandas else ''}"
        )
        if is_pandas:
            print(f"polars vs pandas: CPU seconds x{base['cpu_s'] / q['cpu_s']:.2f} fewer")
        summary(
            f"polars vs {name} (warm, {args.rows:,} rows)",
            "rows/s; largest process peak",
            f"{q['rows'] / q['seconds']:,.0f}/s; {gib(q['peak_largest']).strip()}",
            f"{base['rows'] / base['seconds']:,.0f}/s; {gib(base['peak_largest']).strip()}",
            f"{speed:.2f}x speed; {mem:.2f}x memory",
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
