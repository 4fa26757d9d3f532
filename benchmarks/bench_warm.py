"""Benchmarks 2 and 4 — a warm re-run (every number cached) and its peak memory.

2. 1,000,000 rows holding 200,000 distinct numbers (``bench_normalize``'s mixed formats), all
   of them already in pd-hlr's cache, seeded without HTTP from ``sandbox.answer``.

   * pd-hlr: ``df.hlr.validate("phone", default_region="GB", cache=<folder>)`` in a **fresh
     process**, so the time includes reading the cache's parquet part, normalising, joining
     and building the typed frame. A second call in the same process is shown too.
   * baseline: the same lookups through ``requests-cache`` (``CachedSession(backend="sqlite",
     allowable_methods=("GET", "POST"))``; its cache key includes the JSON body), one cached
     ``session.post(...).json()`` per row, then ``pd.json_normalize`` to get a frame. The
     baseline is given pd-hlr's normalised E.164 keys for free (junk rows skipped). Its cache is
     filled by real POSTs to a zero-latency sandbox in its own process — for ``--rc-distinct``
     numbers (default 10,000: requests-cache stores ~200 responses/s here, so all 200,000
     would take ~17 minutes; the size of its SQLite file barely changes a hit's cost), and
     the per-row time is measured on ``--rc-sample`` rows drawn from those numbers and
     extrapolated to every row that has a number (stated in the output).

4. Peak memory of the pd-hlr warm run: the child's peak RSS (``ru_maxrss``), its RSS just
   before ``validate`` (interpreter, libraries, the input frame) and the size of the output
   frame (``out.memory_usage(deep=True).sum()``).

Run: ``.venv/bin/python benchmarks/bench_warm.py [--rows 1000000] [--distinct 200000]
[--rc-distinct 20000] [--rc-sample 50000]``
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from _common import (
    REGION,
    TOKEN,
    current_rss_bytes,
    emit_result,
    machine,
    mib,
    mixed_phones,
    peak_rss_bytes,
    run_child,
    sandbox_process,
    summary,
    table,
)

import pd_hlr  # noqa: F401  (registers the accessor)
from pd_hlr import HLRClient, sandbox
from pd_hlr.cache import Entry, HLRCache
from pd_hlr.normalize import normalize
from pd_hlr.pipeline import api_namespace
from pd_hlr.settings import LookupOptions

# ~2 % of the sandbox's numbers answer a temporary error; they are cached too, and served
# (retry_temporary=False) — as requests-cache serves whatever it stored.
WARM_KWARGS = {"default_region": REGION, "retry_temporary": False, "progress": False}

# Never contacted: every number is cached. A client pointed here fails fast if one is not.
DEAD_URL = "http://127.0.0.1:9"


def _client() -> HLRClient:
    return HLRClient(token=TOKEN, base_url=DEAD_URL, max_retries=0, timeout=(0.5, 0.5))


# --- the child: one warm pd-hlr run, measured -----------------------------------------------
def child(workdir: Path) -> None:
    with open(workdir / "input.pkl", "rb") as fh:
        df: pd.DataFrame = pickle.load(fh)
    rss_before = current_rss_bytes()
    with _client() as client:
        t0 = time.perf_counter()
        out = df.hlr.validate("phone", cache=workdir / "cache", client=client, **WARM_KWARGS)
        t_first = time.perf_counter() - t0
        peak = peak_rss_bytes()
        t0 = time.perf_counter()
        again = df.hlr.validate("phone", cache=workdir / "cache", client=client, **WARM_KWARGS)
        t_second = time.perf_counter() - t0
    sources = out["hlr_source"].value_counts().to_dict()
    assert "api" not in sources and "error" not in sources, sources
    assert again["hlr_source"].equals(out["hlr_source"])
    emit_result(
        {
            "t_first": t_first,
            "t_second": t_second,
            "rss_before": rss_before,
            "peak_rss": peak,
            "out_bytes": int(out.memory_usage(deep=True).sum()),
            "in_bytes": int(df.memory_usage(deep=True).sum()),
            "out_shape": list(out.shape),
            "sources": {str(k): int(v) for k, v in sources.items()},
            "client_requests": client.stats.requests,
        }
    )


# --- the parent -------------------------------------------------------------------------------
def seed_cache(path: Path, numbers: list[str], api: str) -> None:
    """Write every number's answer into the cache as one parquet part (no HTTP)."""
    options = LookupOptions().key()
    now = datetime.now(UTC)
    cache = HLRCache(path, flush_every=len(numbers) + 1, flush_seconds=1e9)
    with cache.writer() as writer:
        for n in numbers:
            writer.add(Entry(n, options, api, sandbox.answer(n), now))


def requests_cache_baseline(
    keys: pd.Series, numbers: list[str], workdir: Path, rc_distinct: int, rc_sample: int
) -> dict[str, float]:
    import requests_cache

    populated = numbers[:rc_distinct]
    wanted = set(populated)
    sample = [k for k in keys if k in wanted][:rc_sample]
    with sandbox_process(latency=0.0) as sb:
        url = sb.url + "/api/validate/phone"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        session = requests_cache.CachedSession(
            str(workdir / "rc"),
            backend="sqlite",
            allowable_methods=("GET", "POST"),
            expire_after=-1,
        )
        t0 = time.perf_counter()
        for n in populated:
            session.post(url, json={"phone": n}, headers=headers, timeout=30).raise_for_status()
        t_fill = time.perf_counter() - t0
        sent_fill = sb.stats().requests

        t0 = time.perf_counter()
        results = []
        hits = 0
        for k in sample:
            r = session.post(url, json={"phone": k}, headers=headers, timeout=30)
            hits += bool(getattr(r, "from_cache", False))
            results.append(r.json()["results"][0])
        t_rows = time.perf_counter() - t0
        t0 = time.perf_counter()
        frame = pd.json_normalize(results)
        t_frame = time.perf_counter() - t0
        sent_total = sb.stats().requests
        session.close()
    assert hits == len(sample), f"only {hits} of {len(sample)} were cache hits"
    assert sent_total == sent_fill, "the per-row pass reached the server"
    assert len(frame) == len(sample)
    return {
        "t_fill": t_fill,
        "filled": len(populated),
        "t_rows": t_rows,
        "t_frame": t_frame,
        "sample": len(sample),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--distinct", type=int, default=200_000)
    parser.add_argument("--rc-distinct", type=int, default=10_000)
    parser.add_argument("--rc-sample", type=int, default=50_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child)
        return

    print(machine())
    t0 = time.perf_counter()
    phones = mixed_phones(args.rows, args.distinct)
    df = pd.DataFrame({"phone": phones})
    keys = normalize(phones, default_region=REGION)["hlr_number"]
    numbers = [str(n) for n in keys.dropna().unique()]
    with_key = int(keys.notna().sum())
    with tempfile.TemporaryDirectory(prefix="pd-hlr-bench-warm-") as tmp:
        workdir = Path(tmp)
        with _client() as probe:
            api = api_namespace(probe)
        seed_cache(workdir / "cache", numbers, api)
        with open(workdir / "input.pkl", "wb") as fh:
            pickle.dump(df, fh, protocol=pickle.HIGHEST_PROTOCOL)
        cache_bytes = sum(f.stat().st_size for f in (workdir / "cache").iterdir())
        print(
            f"frame: {len(df):,} rows ({with_key:,} with a number), {len(numbers):,} distinct "
            f"numbers, all cached ({mib(cache_bytes)} of parquet); "
            f"setup {time.perf_counter() - t0:.0f}s"
        )

        ours = run_child([os.path.abspath(__file__), "--child", str(workdir)])
        assert ours["client_requests"] == 0
        rc = requests_cache_baseline(keys, numbers, workdir, args.rc_distinct, args.rc_sample)

    per_row = (rc["t_rows"] + rc["t_frame"]) / rc["sample"]
    t_rc = per_row * with_key
    t_ours = ours["t_first"]
    print()
    print(
        table(
            [
                ["wall time (s)", t_ours, t_rc, t_rc / t_ours],
                ["rows/s", args.rows / t_ours, args.rows / t_rc, t_rc / t_ours],
                ["second call, same process (s)", ours["t_second"], t_rc, t_rc / ours["t_second"]],
                ["requests sent", 0, 0, ""],
            ],
            ["warm re-run, all cached", "pd-hlr", "requests-cache", "pd-hlr advantage"],
        )
    )
    print(
        f"\npd-hlr: fresh process, cache part read included, retry_temporary=False (the ~2 % "
        f"temporary answers served from the cache too); sources {ours['sources']}."
        f"\nrequests-cache: per row {per_row * 1e6:,.0f} µs (cached post + .json(), then "
        f"pd.json_normalize), measured on {rc['sample']:,} rows drawn from {rc['filled']:,} "
        f"cached numbers and extrapolated to the {with_key:,} rows with a number; filling its "
        f"cache took {rc['t_fill']:.1f}s for {rc['filled']:,} POSTs at zero latency "
        f"({rc['filled'] / rc['t_fill']:,.0f}/s)."
    )

    out_b, peak, before = ours["out_bytes"], ours["peak_rss"], ours["rss_before"]
    print()
    print(
        table(
            [
                ["output frame (memory_usage deep)", mib(out_b), f"{out_b / len(df):.0f} B/row"],
                ["input frame", mib(ours["in_bytes"]), ""],
                ["RSS before validate", mib(before), ""],
                ["peak RSS of the process", mib(peak), f"{peak / out_b:.1f}x output"],
                [
                    "peak RSS - RSS before",
                    mib(peak - before),
                    f"{(peak - before) / out_b:.1f}x output",
                ],
            ],
            ["peak memory, warm run", "size", "ratio"],
        )
    )
    print(f"output shape {tuple(ours['out_shape'])}")

    bench = "2 warm re-run"
    summary(
        bench,
        f"wall time, {args.rows:,} rows cached",
        f"{t_ours:.1f}s",
        f"{t_rc:.0f}s (extrap.)",
        f"{t_rc / t_ours:.0f}x faster",
    )
    summary(
        "4 peak memory",
        "peak RSS vs output frame",
        f"{mib(peak)} peak",
        f"{mib(out_b)} output",
        f"{peak / out_b:.1f}x ({(peak - before) / out_b:.1f}x above start)",
    )


if __name__ == "__main__":
    sys.exit(main())
