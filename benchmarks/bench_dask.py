"""Benchmark: the pandas accessor vs the Dask path, warm cache, parquet in and out, one run.

Question (issue 9): on a warm cache, how many rows/s does each path enrich, and how much memory
does the largest process of each take at its peak? Targets: the Dask path's largest process
peaks at no more than a quarter of the pandas path's, at no worse than half its rows/s.

Setup: a folder of parquet files (``--rows-per-file`` rows each; Dask reads one partition per
file) with ``--rows`` rows holding ``--distinct`` distinct numbers (GB / DE / FR / NL / US) in
mixed formats (E.164, international with spaces or dashes, ``00`` prefix, GB national format,
bare digits), plus 1% junk and 1% blanks/nulls, an ``id`` and an ``amount`` column. The cache is
seeded without HTTP: every lookup key is answered by :func:`pd_hlr.sandbox.answer` and written
as parquet parts with the cache module's own table builder. Both paths use a client pointed at
a local sandbox (any miss would show up as a request; the run reports how many there were).

Each path runs in its own fresh subprocess, timed from reading the input to the output written
(imports and cluster start-up excluded, reported apart):

* pandas: ``pd.read_parquet(folder)`` → ``df.hlr.validate`` → ``out.hlr.to_parquet(file)``;
  peak = the process's ``VmHWM`` (peak resident set of this program, from
  ``/proc/self/status``).
* Dask: a ``distributed.LocalCluster(n_workers=2, threads_per_worker=1)``,
  ``dd.read_parquet(folder)`` → ``ddf.hlr.validate`` → ``out.to_parquet(folder)``; peaks = the
  calling process's (which also hosts the LocalCluster's scheduler) and each worker process's
  ``VmHWM`` (asked of the workers with ``Client.run`` at the end), plus the parent's psutil
  sampler over all of them as a check.

Peaks are ``VmHWM``, not ``ru_maxrss``: on Linux a child's ``ru_maxrss`` starts at the RSS of
the process that forked it (it survives ``exec``), so it would report this orchestrator's (or,
for a Dask worker, the calling process's) memory instead of the child's own.

``--limit-gb X`` states a memory limit: no single process may hold more than X GiB resident.
It is enforced by an RSS watchdog in this orchestrator, which samples every process of a run
(the child and its descendants: the Dask workers) every 50 ms and kills the run's process
group when one passes X GiB, reporting "did not fit". (``RLIMIT_AS`` is no good for this: it
caps virtual address space, and Arrow's allocator and the threads of Dask and pandas reserve
far more address space than they ever touch, so it fails runs that would fit.) With a limit,
the Dask run is made under the watchdog, and the pandas path is run a second time under it
(the first, unlimited, pandas run gives the ratios).

Run (default, a few minutes on 2 cores)::

    .venv/bin/python benchmarks/bench_dask.py                # 4,000,000 rows / 400,000 distinct

The issue's full size::

    .venv/bin/python benchmarks/bench_dask.py --rows 20000000 --distinct 2000000 --limit-gb 3

``--workdir DIR`` keeps the data (input + seeded cache) and ``results.json`` for re-runs;
``--only dask`` runs one path (e.g. at a size the pandas path cannot run at all).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

# The dataset, the cache seeding, the samplers and the measured child process are shared with
# bench_polars.py (which runs the pandas and Dask paths of this script alongside its own).
from _common import SMALL, Sampler, cpu_seconds, prepare_dataset, run_measured
from _common import gib as _gb
from _common import status_bytes as _status_bytes
from _common import vmhwm_bytes as _peak_bytes

TOKEN = "bench-dask-token"
REGION = "GB"
OPTS: dict[str, Any] = {"default_region": REGION, "retry_temporary": False, "progress": False}


# --- measuring --------------------------------------------------------------------------------
def run_pandas(folder: Path, cache_dir: Path, out: Path, url: str) -> dict[str, Any]:
    import pandas as pd

    import pd_hlr  # noqa: F401
    from pd_hlr import HLRClient

    base = _status_bytes("VmRSS")
    with HLRClient(token=TOKEN, base_url=url) as client:
        t0, c0 = time.perf_counter(), cpu_seconds()
        df = pd.read_parquet(folder)
        t_read = time.perf_counter() - t0
        res = df.hlr.validate("phone", client=client, cache=cache_dir, **OPTS)
        t_validate = time.perf_counter() - t0 - t_read
        res.hlr.to_parquet(out)
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    return {
        "rows": len(res),
        "seconds": elapsed,
        "cpu_s": cpu,
        "read_s": t_read,
        "validate_s": t_validate,
        "write_s": elapsed - t_read - t_validate,
        "peak_largest": _peak_bytes(),
        "baseline": base,
        "sources": res["hlr_source"].value_counts().to_dict(),
    }


def run_dask(folder: Path, cache_dir: Path, out: Path, url: str) -> dict[str, Any]:
    import dask.dataframe as dd
    import psutil
    from distributed import Client, LocalCluster

    import pd_hlr.dask  # noqa: F401
    from pd_hlr import HLRClient

    t_start = time.perf_counter()
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    dclient = Client(cluster)
    dclient.run(lambda: __import__("pd_hlr.dask"))  # warm imports on the workers
    startup = time.perf_counter() - t_start
    me = psutil.Process()

    def pids() -> list[int]:
        return [me.pid, *(p.pid for p in me.children(recursive=True))]

    base = _status_bytes("VmRSS")
    with Sampler(pids) as sampler, HLRClient(token=TOKEN, base_url=url) as client:
        t0 = time.perf_counter()
        ddf = dd.read_parquet(folder)
        res = ddf.hlr.validate("phone", client=client, cache=cache_dir, **OPTS)
        t_scan = time.perf_counter() - t0
        res.to_parquet(out, write_index=False)
        elapsed = time.perf_counter() - t0
    worker_peaks = dclient.run(_peak_bytes)
    rows = int(dd.read_parquet(out, columns=["id"]).shape[0].compute())
    nparts = ddf.npartitions
    dclient.close()
    cluster.close()
    client_peak = _peak_bytes()
    return {
        "rows": rows,
        "partitions": nparts,
        "seconds": elapsed,
        "scan_resolve_s": t_scan,
        "join_write_s": elapsed - t_scan,
        "startup_s": startup,
        "peak_client": client_peak,
        "peak_workers": sorted(worker_peaks.values()),
        "peak_largest": max([client_peak, *worker_peaks.values()]),
        "sampled_peak_largest": max(sampler.peaks.values()),
        "baseline": base,
    }


def _child(argv: list[str], limit_gb: float | None) -> dict[str, Any] | None:
    """Run one path of this script in a fresh process (see :func:`_common.run_measured`)."""
    return run_measured(__file__, argv, limit_gb)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--distinct", type=int, default=400_000)
    parser.add_argument("--rows-per-file", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", default=None, help="keep data here (default: a temp dir)")
    parser.add_argument(
        "--small", action="store_true", help="CI's small mode: {:,} rows, {:,} distinct, "
        "{:,} per file (proves the script runs; its figures mean little)".format(*SMALL)
    )
    parser.add_argument(
        "--limit-gb",
        type=float,
        default=None,
        help="per-process RSS limit (watchdog): run dask under it, and pandas again under it",
    )
    parser.add_argument(
        "--only", choices=("pandas", "dask"), help="run one path (e.g. dask where pandas cannot)"
    )
    parser.add_argument("--child", choices=("pandas", "dask"), help=argparse.SUPPRESS)
    parser.add_argument("--paths", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.small:
        args.rows, args.distinct, args.rows_per_file = SMALL

    if args.child:
        folder, cache_dir, out, url = args.paths
        fn = run_pandas if args.child == "pandas" else run_dask
        print(json.dumps(fn(Path(folder), Path(cache_dir), Path(out), url), default=str))
        return

    from pd_hlr import sandbox

    work, folder, cache_dir = prepare_dataset(
        args.workdir, "bench-dask-", args.rows, args.distinct, args.rows_per_file, args.seed
    )
    with sandbox.serve(token=TOKEN) as sb:
        results: dict[str, Any] = {}
        limit = args.limit_gb
        runs = [
            ("pandas", "out-pandas.parquet", None),  # unlimited: the reference for the ratios
            ("dask", "out-dask", limit),  # under the watchdog when a limit is stated
            ("pandas-limited", "capped-pandas.parquet", limit),
        ]
        for name, out_name, cap in runs:
            path = name.split("-")[0]
            if (args.only and path != args.only) or (name == "pandas-limited" and not limit):
                continue
            out = work / out_name
            if out.exists():
                shutil.rmtree(out) if out.is_dir() else out.unlink()
            where = f" under the {limit} GiB per-process limit" if cap else ""
            print(f"running the {path} path{where} ...", flush=True)
            paths = [str(folder), str(cache_dir), str(out), sb.url]
            results[name] = _child(["--child", path, "--paths", *paths], cap)
            if out.exists() and name == "pandas-limited":
                shutil.rmtree(out) if out.is_dir() else out.unlink()
        requests = sb.stats().requests

    report(args, results, requests)
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, results: dict[str, Any], requests: int) -> None:
    """The results table, the two ratios against the targets, and the memory-limit verdict."""
    p, d = results.get("pandas"), results.get("dask")
    print()
    print(f"requests sent to the sandbox (should be 0 on a warm cache): {requests}")
    print(
        f"{'path':<8} {'rows':>12} {'seconds':>9} {'rows/s':>12} {'largest process peak':>22}"
        f" {'(watchdog-sampled)':>19}"
    )
    for name, r in (("pandas", p), ("dask", d)):
        if r is None:
            print(f"{name:<8} {'not run or failed':>12}")
            continue
        print(
            f"{name:<8} {r['rows']:>12,} {r['seconds']:9.1f} {r['rows'] / r['seconds']:12,.0f} "
            f"{_gb(r['peak_largest']):>22} {_gb(r['watchdog_peak_largest']):>19}"
        )
    if p:
        print(
            f"pandas: read {p['read_s']:.1f}s, validate {p['validate_s']:.1f}s, write "
            f"{p['write_s']:.1f}s; RSS after imports {_gb(p['baseline'])}"
        )
    if d:
        print(
            f"dask:   {d['partitions']} partitions; scan + resolve {d['scan_resolve_s']:.1f}s, "
            f"join + write {d['join_write_s']:.1f}s; cluster start {d['startup_s']:.1f}s (not "
            f"counted); peaks: calling process {_gb(d['peak_client'])} (RSS after imports and "
            f"cluster start {_gb(d['baseline'])}), workers "
            f"{', '.join(_gb(w) for w in d['peak_workers'])}"
        )
    if p and d:
        mem = d["peak_largest"] / p["peak_largest"]
        speed = (d["rows"] / d["seconds"]) / (p["rows"] / p["seconds"])
        print(
            f"memory: dask largest / pandas largest = {mem:.2f} (target <= 0.25: "
            f"{'met' if mem <= 0.25 else 'NOT met'})"
        )
        print(
            f"speed:  dask rows/s / pandas rows/s   = {speed:.2f} (target >= 0.50: "
            f"{'met' if speed >= 0.5 else 'NOT met'})"
        )
    if args.limit_gb:
        verdict = {
            "pandas": results.get("pandas-limited") is not None,
            "dask": results.get("dask") is not None,
        }
        if args.only:
            verdict = {args.only: verdict[args.only]}
        print(
            f"memory limit {args.limit_gb} GiB per process (RSS watchdog): "
            + ", ".join(f"{k} {'completed' if v else 'did NOT fit'}" for k, v in verdict.items())
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
