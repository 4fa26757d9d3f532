"""Benchmark (issue 28): a warm run from an ``s3://`` cache against the merge floor, same server.

N distinct E.164 numbers (default 200,000), all cached, seeded without HTTP from
``sandbox.answer`` as one compacted part (what a cache looks like after its writers closed),
on an S3-compatible server on 127.0.0.1 (moto's ``moto_server`` in its own process, unless
``AWS_ENDPOINT_URL`` names a loopback one). Measured, each in a **fresh process**, interleaved
and repeated (``--reps``, fastest time):

* **warm s3** — ``df.hlr.validate("phone", cache="s3://bucket/cache")``: listing, the key
  column, the row groups holding hits (ranged GETs) and the join back to rows; a sandbox in its
  own process counts the requests sent (must be 0);
* **floor s3** — ``pd.read_parquet("s3://bucket/floor/answers.parquet", filesystem=<the same
  pyarrow S3 filesystem>)`` of exactly those answers + ``DataFrame.merge`` on the E.164 key;
* the same two on a local folder and a local parquet file, for the ratio the folder reaches.

Target: warm s3 ≤ 2.0× floor s3. Then a **cold** run (``--cold`` numbers, default 2,000,
none cached) into a new ``s3://`` prefix vs into a new local folder, same sandbox (20 ms
latency, its own process), fresh processes, interleaved: the ratio says what the store's
requests per commit group and per claim cost. ``--small``: 20,000 numbers warm, 300 cold,
one repetition (CI).

Run: ``.venv/bin/python benchmarks/bench_s3.py [--numbers 200000] [--cold 2000] [--reps 3]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from _common import TOKEN, emit_result, machine, run_child, sandbox_process, summary, table

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import os, sys, time, json
import pandas as pd
import pd_hlr
kind, target, numbers_file, url = sys.argv[1:5]
phones = pd.read_parquet(numbers_file)
t0 = time.perf_counter()
if kind in ("warm", "cold"):
    client = pd_hlr.HLRClient(token=os.environ["T"], base_url=url, workers=8)
    out = phones.hlr.validate(
        "phone", cache=target, client=client, progress=False, retry_temporary=False
    )
    served = int((out["hlr_source"] == ("cache" if kind == "warm" else "api")).sum())
else:
    if target.startswith("s3://"):
        from pd_hlr.cache.s3 import S3Store
        store = S3Store(target.rsplit("/", 1)[0])
        path = f"{store.bucket}/{store.key(target.rsplit('/', 1)[1])}"
        answers = pd.read_parquet(path, filesystem=store.filesystem())
    else:
        answers = pd.read_parquet(target)
    out = phones.merge(answers, left_on="phone", right_on="number", how="left")
    served = int(out["number"].notna().sum())
print("RESULT " + json.dumps({"seconds": time.perf_counter() - t0, "served": served}), flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """A loopback S3 endpoint: ``AWS_ENDPOINT_URL`` if it names one, else moto_server."""
    configured = os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        if not configured.startswith(("http://127.0.0.1", "http://localhost")):
            raise SystemExit(f"refusing a non-loopback AWS_ENDPOINT_URL: {configured}")
        yield configured
        return
    port = _free_port()
    server = Path(__file__).resolve().parents[1] / "tests" / "s3server.py"  # atomic writes
    proc = subprocess.Popen(
        [sys.executable, str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def seed(n: int, folder: Path, work: Path) -> tuple[str, str, str, str]:
    """The cache (s3 and local) and the floor's answers file (s3 and local)."""
    import boto3
    import pandas as pd

    from pd_hlr import sandbox
    from pd_hlr.cache import Entry, HLRCache
    from pd_hlr.cache.parts import encode_part, entries_to_table, write_part
    from pd_hlr.cache.s3 import S3Store
    from pd_hlr.settings import LookupOptions

    options = LookupOptions().key()
    now = datetime.now(UTC)
    numbers = [f"+4474{i:08d}" for i in range(n)]
    entries = [
        Entry(x, options, "127.0.0.1", sandbox.answer(x), now, seq=i + 1)
        for i, x in enumerate(numbers)
    ]
    table, _ = entries_to_table(entries)
    bucket = f"pd-hlr-bench-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    cache_url = f"s3://{bucket}/cache"
    s3cache = HLRCache(cache_url)
    s3cache._own(create=True)
    name, data = encode_part(table)
    s3cache.store.put(name, data)
    local = HLRCache(folder)
    local._own(create=True)
    write_part(folder, table)
    # exactly the answers (and columns) a warm run serves
    served = local.get(numbers, options, "127.0.0.1", include_temporary=True)
    answers = served.rename_axis("number").reset_index()
    local_floor = work / "answers.parquet"
    answers.to_parquet(local_floor, index=False)
    S3Store(f"s3://{bucket}/floor").put("answers.parquet", local_floor.read_bytes())
    pd.DataFrame({"phone": numbers}).sample(frac=1, random_state=1).to_parquet(
        work / "phones.parquet", index=False
    )
    return cache_url, f"s3://{bucket}/floor/answers.parquet", str(folder), str(local_floor)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--numbers", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cold", type=int, default=2_000, help="numbers in the cold runs")
    ap.add_argument(
        "--small", action="store_true", help="20,000 numbers warm, 300 cold, one repetition (CI)"
    )
    args = ap.parse_args()
    if args.small:
        args.numbers, args.cold, args.reps = 20_000, 300, 1
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "pd-hlr-bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "pd-hlr-bench-secret")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.pop("AWS_PROFILE", None)
    print(machine())
    with s3_server() as endpoint, tempfile.TemporaryDirectory() as tmp:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        work = Path(tmp)
        t0 = time.perf_counter()
        s3cache, s3floor, folder, floor = seed(args.numbers, work / "cache", work)
        print(f"seeded {args.numbers:,} answers in {time.perf_counter() - t0:.1f} s")
        script = work / "child.py"
        script.write_text(CHILD)
        phones = str(work / "phones.parquet")
        best: dict[str, float] = {}
        with sandbox_process() as sb:
            os.environ["T"] = TOKEN
            for _ in range(args.reps):
                for label, kind, target in (
                    ("warm s3", "warm", s3cache),
                    ("floor s3", "floor", s3floor),
                    ("warm folder", "warm", folder),
                    ("floor folder", "floor", floor),
                ):
                    r = run_child([str(script), kind, target, phones, sb.url])
                    assert r["served"] == args.numbers, (label, r)
                    best[label] = min(best.get(label, float("inf")), r["seconds"])
            received = sb.stats().requests
        s3_ratio = best["warm s3"] / best["floor s3"]
        local_ratio = best["warm folder"] / best["floor folder"]
        print(
            table(
                [
                    ("s3:// (moto, 127.0.0.1)", best["warm s3"], best["floor s3"], s3_ratio),
                    ("local folder", best["warm folder"], best["floor folder"], local_ratio),
                ],
                ["store", "warm validate (s)", "read_parquet + merge (s)", "ratio"],
            )
        )
        print(f"requests sent to the sandbox (should be 0 on a warm cache): {received}")
        cold = cold_runs(args, work, script, s3cache.rsplit("/", 1)[0])
        summary(
            "s3",
            f"warm {args.numbers:,} numbers from s3:// vs read_parquet+merge",
            f"{best['warm s3']:.2f} s",
            f"{best['floor s3']:.2f} s",
            f"{s3_ratio:.2f}x",
        )
        emit_result(
            {
                "s3_ratio": s3_ratio,
                "local_ratio": local_ratio,
                "received": received,
                "cold_ratio": cold,
            }
        )


def cold_runs(args: argparse.Namespace, work: Path, script: Path, bucket_url: str) -> float:
    """Cold runs of ``args.cold`` new numbers: into a new s3:// prefix and a new folder."""
    import pandas as pd

    phones = work / "cold-phones.parquet"
    pd.DataFrame({"phone": [f"+4475{i:08d}" for i in range(args.cold)]}).to_parquet(phones)
    best: dict[str, float] = {}
    with sandbox_process(latency=0.02) as sb:
        for rep in range(args.reps):
            for label, target in (
                ("cold s3", f"{bucket_url}/cold-{rep}"),
                ("cold folder", str(work / f"cold-{rep}")),
            ):
                r = run_child([str(script), "cold", target, str(phones), sb.url])
                assert r["served"] == args.cold, (label, r)
                best[label] = min(best.get(label, float("inf")), r["seconds"])
    ratio = best["cold s3"] / best["cold folder"]
    print(
        table(
            [(f"cold {args.cold:,} numbers", best["cold s3"], best["cold folder"], ratio)],
            ["run", "s3:// (s)", "local folder (s)", "ratio"],
        )
    )
    return ratio


if __name__ == "__main__":
    main()
