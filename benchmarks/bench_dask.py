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
  peak = the process's ``ru_maxrss``.
* Dask: a ``distributed.LocalCluster(n_workers=2, threads_per_worker=1)``,
  ``dd.read_parquet(folder)`` → ``ddf.hlr.validate`` → ``out.to_parquet(folder)``; peaks = the
  calling process's and each worker process's ``ru_maxrss`` (lifetime peak, asked of the
  workers with ``Client.run`` at the end), plus a psutil sampler over all of them as a check.

``--limit-gb X`` additionally runs both paths with the address space of every process capped
at X GiB (``RLIMIT_AS``, inherited by the Dask workers) and reports which completed: the way to
show the Dask path still completes where the pandas path no longer fits.

Run (default, a few minutes on 2 cores)::

    .venv/bin/python benchmarks/bench_dask.py                # 4,000,000 rows / 400,000 distinct

The issue's full size::

    .venv/bin/python benchmarks/bench_dask.py --rows 20000000 --distinct 2000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TOKEN = "bench-dask-token"
REGION = "GB"
OPTS: dict[str, Any] = {"default_region": REGION, "retry_temporary": False, "progress": False}
# (country code, national prefix, random digits after it)
RANGES = [
    ("44", "7400", 6),
    ("44", "7700", 6),
    ("44", "7911", 6),
    ("49", "151", 8),
    ("33", "6", 8),
    ("31", "6", 8),
    ("1", "201", 7),
]
JUNK = ["n/a", "unknown", "call me", "12345", "*123#", "tel: ask reception", "+999 123 4567"]


# --- data -------------------------------------------------------------------------------------
def _distinct_numbers(n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """n distinct E.164 numbers and the index of the range each comes from."""
    which = rng.integers(0, len(RANGES), size=n)
    out: list[str] = []
    for k, (cc, prefix, width) in enumerate(RANGES):
        m = int((which == k).sum())
        low = 2 * 10 ** (width - 1) if cc == "1" else 0  # NANPA exchange codes start 2-9
        tails = np.unique(rng.integers(low, 10**width, size=int(m * 1.2) + 10))
        tails = rng.permutation(tails)[:m]
        out.extend(f"+{cc}{prefix}{t:0{width}d}" for t in tails)
    numbers = np.array(out, dtype=object)
    order = rng.permutation(len(numbers))
    ranges = np.repeat(np.arange(len(RANGES)), [int((which == k).sum()) for k in range(7)])
    return list(numbers[order]), ranges[order]


def _formats(e164: list[str], ranges: np.ndarray) -> list[pa.Array]:
    """Each number written six ways (the national format only for GB; E.164 otherwise)."""
    spaced, dashed, zeros, national, digits = [], [], [], [], []
    for n, k in zip(e164, ranges):
        cc, prefix, _ = RANGES[k]
        rest = n[1 + len(cc) :]
        body = rest[len(prefix) :]
        spaced.append(f"+{cc} {prefix} {body}")
        dashed.append(f"+{cc}-{prefix}-{body[:3]}-{body[3:]}")
        zeros.append(f"00{cc} {rest}")
        national.append(f"0{prefix} {body}" if cc == "44" else n)
        digits.append(n[1:])
    return [pa.array(x, pa.large_string()) for x in (e164, spaced, dashed, zeros, national, digits)]


def build_dataset(folder: Path, rows: int, distinct: int, rows_per_file: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    e164, ranges = _distinct_numbers(distinct, rng)
    table = pa.concat_arrays(_formats(e164, ranges))
    # every number at least once, the rest skewed (some numbers appear many times)
    picks = np.concatenate(
        [np.arange(distinct), (rng.pareto(1.5, rows - distinct) * 1000).astype(np.int64) % distinct]
    )
    rng.shuffle(picks)
    fmt = rng.integers(0, 6, size=rows)
    phones = table.take(pa.array(fmt * distinct + picks))
    kind = rng.random(rows)
    junk = pa.array([JUNK[i % len(JUNK)] for i in range(len(JUNK))], pa.large_string())
    blank = pa.array([None, "", "  "], pa.large_string())
    junk_rows = np.flatnonzero(kind < 0.01)
    blank_rows = np.flatnonzero((kind >= 0.01) & (kind < 0.02))
    phones_np = np.array(phones.to_pylist(), dtype=object)
    phones_np[junk_rows] = np.array(junk.to_pylist(), dtype=object)[junk_rows % len(JUNK)]
    phones_np[blank_rows] = np.array(blank.to_pylist(), dtype=object)[blank_rows % 3]
    folder.mkdir(parents=True, exist_ok=True)
    amount = rng.random(rows) * 100
    for i, start in enumerate(range(0, rows, rows_per_file)):
        stop = min(rows, start + rows_per_file)
        part = pa.table(
            {
                "id": pa.array(np.arange(start, stop, dtype=np.int64)),
                "phone": pa.array(phones_np[start:stop], pa.large_string()),
                "amount": pa.array(amount[start:stop]),
            }
        )
        pq.write_table(part, folder / f"part-{i:05d}.parquet")


def seed_cache(cache_dir: Path, folder: Path, api: str) -> int:
    """Answer every lookup key the data holds, without HTTP, as cache parts."""
    import pandas as pd

    from pd_hlr import pipeline, sandbox
    from pd_hlr.cache import Entry, HLRCache, _entries_to_table
    from pd_hlr.settings import LookupOptions, ValidateSettings

    settings = ValidateSettings.from_kwargs(default_region=REGION)
    keys: set[str] = set()
    for f in sorted(folder.glob("*.parquet")):
        col = pq.read_table(f, columns=["phone"]).column("phone").to_pandas()
        uniq = pd.Series(pd.unique(col), dtype=object)
        keys.update(pipeline.distinct_numbers(pipeline.normalize_column(uniq, settings)))
    cache = HLRCache(cache_dir)
    options = LookupOptions().key()
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    ordered = sorted(keys)
    for start in range(0, len(ordered), 250_000):
        chunk = ordered[start : start + 250_000]
        entries = [Entry(n, options, api, sandbox.answer(n), now) for n in chunk]
        cache._write_part(_entries_to_table(entries))
    return len(ordered)


# --- measuring --------------------------------------------------------------------------------
class Sampler:
    """Peak RSS per process of a set of pids, sampled every ``interval`` seconds."""

    def __init__(self, pids: Any, interval: float = 0.1) -> None:
        import psutil

        self._psutil = psutil
        self._pids = pids  # callable → iterable of pids
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.interval = interval

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in list(self._pids()):
                try:
                    rss = self._psutil.Process(pid).memory_info().rss
                except self._psutil.Error:
                    continue
                self.peaks[pid] = max(self.peaks.get(pid, 0), rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def run_pandas(folder: Path, cache_dir: Path, out: Path, url: str) -> dict[str, Any]:
    import pandas as pd

    import pd_hlr  # noqa: F401
    from pd_hlr import HLRClient

    base = _maxrss_bytes()
    with HLRClient(token=TOKEN, base_url=url) as client:
        t0 = time.perf_counter()
        df = pd.read_parquet(folder)
        t_read = time.perf_counter() - t0
        res = df.hlr.validate("phone", client=client, cache=cache_dir, **OPTS)
        t_validate = time.perf_counter() - t0 - t_read
        res.hlr.to_parquet(out)
        elapsed = time.perf_counter() - t0
    return {
        "rows": len(res),
        "seconds": elapsed,
        "read_s": t_read,
        "validate_s": t_validate,
        "write_s": elapsed - t_read - t_validate,
        "peak_largest": _maxrss_bytes(),
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

    base = _maxrss_bytes()
    with Sampler(pids) as sampler, HLRClient(token=TOKEN, base_url=url) as client:
        t0 = time.perf_counter()
        ddf = dd.read_parquet(folder)
        res = ddf.hlr.validate("phone", client=client, cache=cache_dir, **OPTS)
        t_scan = time.perf_counter() - t0
        res.to_parquet(out, write_index=False)
        elapsed = time.perf_counter() - t0
    worker_peaks = dclient.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    rows = int(dd.read_parquet(out, columns=["id"]).shape[0].compute())
    nparts = ddf.npartitions
    dclient.close()
    cluster.close()
    client_peak = _maxrss_bytes()
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
    def cap() -> None:
        if limit_gb:
            lim = int(limit_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (lim, lim))

    proc = subprocess.run(
        [sys.executable, __file__, *argv],
        capture_output=True,
        text=True,
        preexec_fn=cap,
        check=False,
    )
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            return json.loads(line)
    tail = (proc.stderr or "").strip().splitlines()[-3:]
    print(f"  child {argv[:2]} failed (exit {proc.returncode}): {' | '.join(tail)}")
    return None


def _gb(n: float) -> str:
    return f"{n / 2**30:6.2f} GiB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--distinct", type=int, default=400_000)
    parser.add_argument("--rows-per-file", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", default=None, help="keep data here (default: a temp dir)")
    parser.add_argument("--limit-gb", type=float, default=None, help="also run with RLIMIT_AS")
    parser.add_argument("--child", choices=("pandas", "dask"), help=argparse.SUPPRESS)
    parser.add_argument("--paths", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        folder, cache_dir, out, url = args.paths
        fn = run_pandas if args.child == "pandas" else run_dask
        print(json.dumps(fn(Path(folder), Path(cache_dir), Path(out), url), default=str))
        return

    from pd_hlr import sandbox

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-dask-"))
    folder, cache_dir = work / "input", work / "cache"
    t0 = time.perf_counter()
    if not folder.exists():
        build_dataset(folder, args.rows, args.distinct, args.rows_per_file, args.seed)
    t_data = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in folder.glob("*.parquet"))
    with sandbox.serve(token=TOKEN) as sb:
        t0 = time.perf_counter()
        if not cache_dir.exists():
            keys = seed_cache(cache_dir, folder, "127.0.0.1")
        else:
            keys = -1
        t_seed = time.perf_counter() - t0
        print(
            f"input: {args.rows:,} rows, {args.distinct:,} distinct numbers, "
            f"{len(list(folder.glob('*.parquet')))} files ({size / 2**20:.0f} MiB) in {work} "
            f"(built in {t_data:.0f}s); cache seeded with {keys:,} keys in {t_seed:.0f}s"
        )
        results: dict[str, Any] = {}
        for name in ("pandas", "dask"):
            out = work / (f"out-{name}" + ("" if name == "dask" else ".parquet"))
            if out.exists():
                shutil.rmtree(out) if out.is_dir() else out.unlink()
            print(f"running the {name} path ...", flush=True)
            paths = [str(folder), str(cache_dir), str(out), sb.url]
            results[name] = _child(["--child", name, "--paths", *paths], None)
        requests = sb.stats().requests
        capped: dict[str, bool] = {}
        if args.limit_gb:
            for name in ("pandas", "dask"):
                out = work / (f"capped-{name}" + ("" if name == "dask" else ".parquet"))
                print(f"running the {name} path under RLIMIT_AS={args.limit_gb} GiB ...")
                paths = [str(folder), str(cache_dir), str(out), sb.url]
                capped[name] = (
                    _child(["--child", name, "--paths", *paths], args.limit_gb) is not None
                )

    p, d = results.get("pandas"), results.get("dask")
    print()
    print(f"requests sent to the sandbox (should be 0 on a warm cache): {requests}")
    if not p or not d:
        print("a path failed; no comparison")
        return
    print(f"{'path':<8} {'rows':>12} {'seconds':>9} {'rows/s':>12} {'largest process peak':>22}")
    for name, r in (("pandas", p), ("dask", d)):
        print(
            f"{name:<8} {r['rows']:>12,} {r['seconds']:9.1f} {r['rows'] / r['seconds']:12,.0f} "
            f"{_gb(r['peak_largest']):>22}"
        )
    print(
        f"pandas: read {p['read_s']:.1f}s, validate {p['validate_s']:.1f}s, write "
        f"{p['write_s']:.1f}s; baseline RSS after imports {_gb(p['baseline'])}"
    )
    print(
        f"dask:   {d['partitions']} partitions; scan + resolve {d['scan_resolve_s']:.1f}s, join + "
        f"write {d['join_write_s']:.1f}s; cluster start {d['startup_s']:.1f}s (not counted); "
        f"peaks: client {_gb(d['peak_client'])}, workers "
        f"{', '.join(_gb(w) for w in d['peak_workers'])}; psutil-sampled largest "
        f"{_gb(d['sampled_peak_largest'])}"
    )
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
    if capped:
        print(
            f"under RLIMIT_AS={args.limit_gb} GiB per process: "
            + ", ".join(f"{k} {'completed' if v else 'FAILED'}" for k, v in capped.items())
        )
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
