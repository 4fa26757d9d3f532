"""Benchmark 1 — cold enrichment: pd-hlr against the loop analysts write today.

10,000 rows holding 6,000 distinct numbers in mixed formats (``bench_normalize``'s generator),
no cache, against a sandbox in its own process with 50 ms latency per request (the real API's
order of magnitude).

* pd-hlr: ``df.hlr.validate("phone", default_region="GB", cache=False, client=...)`` with 16
  workers (normalise, deduplicate, drop junk, look up concurrently, typed columns).
* naive: ``tqdm.pandas(); df["phone"].progress_apply(lambda p: requests.post(URL, json=
  {"phone": p}, headers=...).json())`` — one sequential request per row, cell sent as it is.
  At 50 ms a request that is ~500 s for 10,000 rows, so it is timed on the first ``--sample``
  rows and extrapolated linearly (it is strictly sequential: every row costs one round trip).

Reported side by side: wall time, requests the sandbox received, lookups it charged, and
throughput as a share of the physical limit ``workers / latency`` (16 / 0.05 s = 320 lookups/s
for pd-hlr; 1 / 0.05 s = 20/s for the sequential loop).

Run: ``.venv/bin/python benchmarks/bench_enrich.py [--rows 10000] [--distinct 6000]
[--latency 0.05] [--workers 16] [--sample 300]``
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import requests
from _common import REGION, TOKEN, machine, mixed_phones, sandbox_process, summary, table
from tqdm.auto import tqdm

import pd_hlr  # noqa: F401  (registers the accessor)
from pd_hlr import HLRClient, sandbox


def naive_loop(phones: pd.Series, url: str) -> pd.Series:
    """What an analyst writes today (kept verbatim-simple on purpose): cells as text (blanks
    as "", since NaN is not JSON), one request per row."""
    tqdm.pandas(desc="naive", mininterval=1.0)
    return (
        phones.fillna("")
        .astype(str)
        .progress_apply(
            lambda p: requests.post(
                url + "/api/validate/phone",
                json={"phone": p},
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=30,
            ).json()
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--distinct", type=int, default=6_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--sample", type=int, default=300, help="rows of the naive loop to time")
    args = parser.parse_args(argv)

    print(machine())
    phones = mixed_phones(args.rows, args.distinct)
    df = pd.DataFrame({"phone": phones})
    print(
        f"frame: {len(df):,} rows, {args.distinct:,} distinct numbers, "
        f"{phones.nunique():,} distinct raw cells; sandbox latency {args.latency * 1000:.0f} ms "
        "in its own process"
    )

    with sandbox_process(latency=args.latency) as sb:
        # pd-hlr, cold (no cache)
        with HLRClient(token=TOKEN, base_url=sb.url, workers=args.workers) as client:
            client.lookup("+447400000001")  # one warm-up request (imports, first connection)
            sb.reset_stats()
            t0 = time.perf_counter()
            out = df.hlr.validate(
                "phone", default_region=REGION, client=client, cache=False, progress=False
            )
            t_ours = time.perf_counter() - t0
        ours = sb.stats()
        looked_up = int(out["hlr_source"].eq("api").sum())
        distinct_sent = int(out["hlr_number"].nunique())
        assert out["hlr_source"].ne("error").all(), out["hlr_error"].value_counts()

        # the naive loop, on a sample
        sample = df["phone"].iloc[: args.sample]
        sb.reset_stats()
        t0 = time.perf_counter()
        naive = naive_loop(sample, sb.url)
        t_sample = time.perf_counter() - t0
        theirs = sb.stats()
    scale = args.rows / len(sample)
    t_naive = t_sample * scale
    naive_req = theirs.requests * scale
    naive_charged = theirs.total_charged * scale
    refused = sum(1 for r in naive if "results" not in r)
    # A charged answer is only right if the cell was sent in exact E.164: the API reads
    # "07400 123456" or "441302778473.0" as a malformed number and charges for a "dead" answer.
    keys = out["hlr_number"].iloc[: len(sample)]
    naive_right = sum(
        1
        for r, key in zip(naive, keys)
        if "results" in r and isinstance(key, str) and r["results"][0] == sandbox.answer(key)
    )

    limit_ours = args.workers / args.latency
    limit_naive = 1 / args.latency
    thr_ours = distinct_sent / t_ours  # lookups answered per second
    thr_naive = theirs.requests / t_sample  # requests per second (one per row)

    print()
    print(
        table(
            [
                ["wall time (s)", t_ours, t_naive, t_naive / t_ours],
                ["rows/s", args.rows / t_ours, args.rows / t_naive, t_naive / t_ours],
                [
                    "rows with the right answer",
                    looked_up,
                    naive_right * scale,
                    looked_up / max(naive_right * scale, 1),
                ],
                ["requests sent", ours.requests, naive_req, naive_req / ours.requests],
                [
                    "lookups charged",
                    ours.total_charged,
                    naive_charged,
                    naive_charged / ours.total_charged,
                ],
                ["lookups/s (answered)", thr_ours, thr_naive, thr_ours / thr_naive],
                [
                    "physical limit (lookups/s)",
                    f"{limit_ours:.0f} ({args.workers}/{args.latency:g}s)",
                    f"{limit_naive:.0f} (1/{args.latency:g}s)",
                    "",
                ],
                [
                    "share of physical limit",
                    f"{thr_ours / limit_ours:.1%}",
                    f"{thr_naive / limit_naive:.1%}",
                    "",
                ],
            ],
            ["cold enrichment", "pd-hlr", "naive loop", "pd-hlr advantage"],
        )
    )
    print(
        f"\nnaive loop: measured on {len(sample):,} rows in {t_sample:.1f}s and scaled "
        f"x{scale:.1f} to {args.rows:,} rows (extrapolated). It sent every cell as typed: of "
        f"{len(sample)} sample rows {refused} were refused (422: blanks, junk, too long as "
        f"typed), {len(sample) - refused - naive_right} were charged for a wrong answer "
        "(spaced, national or CSV-float cells read as malformed numbers), and repeated numbers "
        "were paid for again.\n"
    )
    print(
        f"pd-hlr: {looked_up:,} rows answered from {distinct_sent:,} distinct lookups; "
        f"{int(out['hlr_source'].isin(['invalid', 'missing']).sum()):,} junk/blank rows never "
        f"sent; statuses {dict(sorted(ours.status_counts.items()))}"
    )
    bench = "1 cold enrichment"
    summary(
        bench,
        f"wall time, {args.rows:,} rows",
        f"{t_ours:.1f}s",
        f"{t_naive:.0f}s (extrap.)",
        f"{t_naive / t_ours:.0f}x faster",
    )
    summary(
        bench,
        "rows with the right answer",
        f"{looked_up:,}",
        f"{naive_right * scale:,.0f}",
        f"{looked_up / max(naive_right * scale, 1):.2f}x more",
    )
    summary(
        bench,
        "requests sent",
        f"{ours.requests:,}",
        f"{naive_req:,.0f}",
        f"{naive_req / ours.requests:.2f}x fewer",
    )
    summary(
        bench,
        "share of physical limit",
        f"{thr_ours / limit_ours:.0%} of {limit_ours:.0f}/s",
        f"{thr_naive / limit_naive:.0%} of {limit_naive:.0f}/s",
        f"{thr_ours / thr_naive:.1f}x throughput",
    )


if __name__ == "__main__":
    main()
