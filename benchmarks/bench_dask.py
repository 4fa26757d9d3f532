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
import contextlib
import json
import os
import shutil
import signal
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


def _status_bytes(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` in bytes (``VmHWM``: peak RSS of this program,
    reset at ``exec``; ``VmRSS``: RSS now)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _peak_bytes() -> int:
    return _status_bytes("VmHWM")


def run_pandas(folder: Path, cache_dir: Path, out: Path, url: str) -> dict[str, Any]:
    import pandas as pd

    import pd_hlr  # noqa: F401
    from pd_hlr import HLRClient

    base = _status_bytes("VmRSS")
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
    """Run one path in a fresh process (its own process group). With ``limit_gb``, an RSS
    watchdog kills the group as soon as any one of its processes passes the limit."""
    import psutil

    proc = subprocess.Popen(
        [sys.executable, __file__, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    parent = psutil.Process(proc.pid)

    def pids() -> list[int]:
        try:
            return [proc.pid, *(c.pid for c in parent.children(recursive=True))]
        except psutil.Error:
            return []

    killed: list[str] = []
    done = threading.Event()

    def watchdog() -> None:
        limit = int(limit_gb * 2**30) if limit_gb else None
        while not done.wait(0.05):
            for pid in pids():
                try:
                    rss = psutil.Process(pid).memory_info().rss
                except psutil.Error:
                    continue
                if limit is not None and rss > limit:
                    killed.append(f"process {pid} reached {_gb(rss).strip()} > {limit_gb} GiB")
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    return

    sampler = Sampler(pids, interval=0.05)
    thread = threading.Thread(target=watchdog, daemon=True)
    with sampler:
        thread.start()
        stdout, stderr = proc.communicate()
        done.set()
        thread.join()
    if killed:
        print(f"  {argv[1]}: did not fit ({killed[0]}); killed")
        return None
    for line in stdout.splitlines()[::-1]:
        if line.startswith("{"):
            result = json.loads(line)
            result["watchdog_peak_largest"] = max(sampler.peaks.values(), default=0)
            return result
    tail = (stderr or "").strip().splitlines()[-3:]
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
            f"(built in {t_data:.0f}s); "
            + (f"cache seeded with {keys:,} keys in {t_seed:.0f}s" if keys >= 0 else "cache reused")
        )
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
