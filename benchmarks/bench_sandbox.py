"""How many requests per second does the sandbox sustain at zero latency?

Starts the sandbox in its own process (as ``pd-hlr sandbox`` runs it), then drives it for ~5
seconds from N threads, each with its own keep-alive ``requests.Session``, every request a
distinct UK mobile number. Prints requests/second and the ratio to the 500 req/s target of
issue 2. ``--in-process`` runs the server in this process instead (client and server then share
one GIL, a pessimistic figure).

Example:
    .venv/bin/python benchmarks/bench_sandbox.py --threads 8 --seconds 5
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import Counter

import requests
from _common import TOKEN, sandbox_process, summary

from pd_hlr import sandbox

TARGET_RPS = 500.0


def _drive(url: str, threads: int, seconds: float) -> tuple[int, float, Counter[int]]:
    endpoint = url + "/api/validate/phone"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    counts: list[Counter[int]] = [Counter() for _ in range(threads)]
    start = threading.Barrier(threads + 1)
    deadline = [0.0]

    def worker(k: int) -> None:
        with requests.Session() as s:
            # warm the connection before the clock starts
            s.post(endpoint, json={"phone": "+447400000000"}, headers=headers, timeout=10)
            start.wait()
            i = 0
            while time.perf_counter() < deadline[0]:
                phone = f"+44740{(k * 1_000_003 + i) % 10_000_000:07d}"
                r = s.post(endpoint, json={"phone": phone}, headers=headers, timeout=10)
                counts[k][r.status_code] += 1
                i += 1

    pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in pool:
        t.start()
    t0 = time.perf_counter()
    deadline[0] = t0 + seconds
    start.wait()
    for t in pool:
        t.join(seconds + 30)
    elapsed = time.perf_counter() - t0
    total: Counter[int] = Counter()
    for c in counts:
        total.update(c)
    return sum(total.values()), elapsed, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--in-process", action="store_true", help="server in this process")
    args = parser.parse_args(argv)

    if args.in_process:
        with sandbox.serve(token=TOKEN) as sb:
            n, elapsed, statuses = _drive(sb.url, args.threads, args.seconds)
        where = "in-process server"
    else:
        with sandbox_process() as child:
            n, elapsed, statuses = _drive(child.url, args.threads, args.seconds)
        where = "server in its own process"
    rps = n / elapsed
    print(
        f"sandbox ({where}), latency 0, {args.threads} keep-alive clients, {elapsed:.1f} s: "
        f"{n} requests, statuses {dict(statuses)}"
    )
    ratio = rps / TARGET_RPS
    print(f"throughput: {rps:,.0f} req/s  (target {TARGET_RPS:.0f} req/s, ratio {ratio:.2f}x)")
    summary(
        "sandbox",
        f"zero latency, {args.threads} keep-alive clients",
        f"{rps:,.0f} req/s",
        f"target {TARGET_RPS:.0f} req/s",
        f"{ratio:.1f}x",
    )
    return 0 if set(statuses) == {200} and rps >= TARGET_RPS else 1


if __name__ == "__main__":
    raise SystemExit(main())
