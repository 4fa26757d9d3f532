"""Does the client's rate limit hold in real time? About 15 seconds.

The tests check the limiter's logic on a fake clock; this measures it on the wall clock, where a
busy 2-core machine adds jitter. Against a sandbox in its own process that enforces 50 req/s
itself (answering 429 beyond it) with 50 ms latency:

1. pd-hlr: ``HLRClient(rate_limit=50, workers=16)``: the 429s the server had to send (target 0:
   the sandbox counts arrivals in a sliding 1-second window, so none means it never saw more
   than 50 in any second), the sustained rate (target >= 95 % of 50), and the most sends in any
   1-second window as the client made them (target <= 51).
2. Baseline, in the same run: the same client without ``rate_limit`` and with
   ``adaptive=False`` (so only the server's 429s and ``Retry-After`` hold it back): its 429s,
   i.e. requests sent only to be refused. (The adaptive pace, the default without
   ``rate_limit``, has its own benchmark: ``bench_adaptive.py``.)

Run: ``.venv/bin/python benchmarks/bench_ratelimit.py [--seconds 5]``
"""

from __future__ import annotations

import argparse
import time

from _common import TOKEN, machine, sandbox_process, summary

from pd_hlr.client import HLRClient

LIMIT = 50.0
LATENCY = 0.05
WORKERS = 16
NUMBERS = [f"+4479{i:08d}" for i in range(20_000)]


def max_in_window(times: list[float], width: float = 1.0) -> int:
    """Most timestamps in any closed window of ``width`` seconds."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] < t - width:
            start += 1
        best = max(best, end - start + 1)
    return best


def run(rate_limit: float | None, n: int, offset: int) -> dict[str, float]:
    with sandbox_process(latency=LATENCY, rate_limit=LIMIT) as sb:
        with HLRClient(
            token=TOKEN,
            base_url=sb.url,
            workers=WORKERS,
            rate_limit=rate_limit,
            max_retries=50,
            adaptive=rate_limit is not None,  # the baseline: neither a limit nor adaptation
        ) as client:
            sent: list[float] = []
            if client._limiter is not None:
                acquire = client._limiter.acquire

                def recording() -> float:
                    waited = acquire()
                    sent.append(time.monotonic())
                    return waited

                client._limiter.acquire = recording  # type: ignore[method-assign]
            started = time.perf_counter()
            out = client.lookup_many(NUMBERS[offset : offset + n])
            elapsed = time.perf_counter() - started
        stats = sb.stats()
    answered = sum(isinstance(v, dict) for v in out.values())
    return {
        "answered": answered,
        "requests": stats.requests,
        "refused": stats.status_counts.get(429, 0),
        "elapsed": elapsed,
        "rate": answered / elapsed,
        "client_peak": max_in_window(sent) if sent else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    args = parser.parse_args()
    print(machine())
    n = int(LIMIT * args.seconds)

    print(f"1. pd-hlr: rate_limit={LIMIT:g}/s, {WORKERS} workers, {n} lookups")
    limited = run(LIMIT, n, 0)
    print(
        f"  answered {limited['answered']} in {limited['elapsed']:.2f}s = {limited['rate']:.1f}/s "
        f"= {limited['rate'] / LIMIT:.1%} of the limit (target >= 95%)"
    )
    print(
        f"  429s from the server: {limited['refused']:.0f}; most sends in any 1 s window as the "
        f"client sent them: {limited['client_peak']:.0f} (limit + 1 = {LIMIT + 1:g})"
    )

    print(f"2. baseline: the same client without rate_limit nor adaptation, {n} lookups")
    free = run(None, n, n)
    print(
        f"  answered {free['answered']} in {free['elapsed']:.2f}s = {free['rate']:.1f}/s; "
        f"{free['refused']:.0f} requests refused with 429 ({free['requests']:.0f} sent)"
    )
    summary(
        "rate limit",
        f"429s for {n} lookups at {LIMIT:g}/s",
        f"{limited['refused']:.0f}",
        f"{free['refused']:.0f} without rate_limit",
        f"{free['refused'] - limited['refused']:.0f} fewer refused",
    )
    summary(
        "rate limit",
        "sustained rate / limit",
        f"{limited['rate']:.1f}/s",
        f"{LIMIT:g}/s",
        f"{limited['rate'] / LIMIT:.1%}",
    )


if __name__ == "__main__":
    main()
