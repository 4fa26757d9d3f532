"""How fast is HLRClient, what do its defences cost, and how soon does it give up on a dead API?
One run, about 30 seconds. (Rate-limit adherence: ``bench_ratelimit.py``.)

1. Throughput: ``lookup_many`` with 16 workers against a sandbox with 50 ms latency, compared
   with the ideal ``workers / latency`` (320 lookups/s) and with a naive sequential
   ``requests.post`` loop (no session, no threads). The sandbox runs in its own process, as the
   real API would.
2. Overhead of the defences (a streamed, size-capped read under a per-attempt deadline, the
   answer checks): ``lookup_many`` against a zero-latency sandbox vs 16 threads of plain
   keep-alive ``requests.Session.post(...).json()`` (no checks at all), and vs 16 threads on one
   raw urllib3 keep-alive pool (the wire's speed from Python), same process layout.
3. A dead API: the time until ``lookup_many`` of 8,000 numbers against a URL that refuses
   connections stops (circuit breaker, ``ServiceUnavailableError``), vs the same client with the
   breaker disabled, timed on 16 numbers and extrapolated to 8,000 (what issue 13 row 16 saw).

Run: ``.venv/bin/python benchmarks/bench_client.py [--seconds 5]``
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable

import requests
import urllib3
from _common import TOKEN, machine, sandbox_process, summary

from pd_hlr import sandbox
from pd_hlr.client import HLRClient
from pd_hlr.errors import ServiceUnavailableError
from pd_hlr.retry import RetryPolicy

LATENCY = 0.05
WORKERS = 16
NUMBERS = [f"+4479{i:08d}" for i in range(60_000)]


def throughput(seconds: float) -> None:
    ideal = WORKERS / LATENCY
    n = int(ideal * seconds)
    with sandbox_process(latency=LATENCY) as sb:
        with HLRClient(token=TOKEN, base_url=sb.url, workers=WORKERS) as client:
            client.lookup_many(NUMBERS[-WORKERS * 2 :])  # warm-up: imports, first connections
            start = time.perf_counter()
            out = client.lookup_many(NUMBERS[:n])
            elapsed = time.perf_counter() - start
        assert all(isinstance(v, dict) for v in out.values())
        rate = n / elapsed
        print(f"  HLRClient.lookup_many: {n} lookups in {elapsed:.2f}s = {rate:.0f}/s")
        print(f"  ideal workers/latency: {ideal:.0f}/s -> {rate / ideal:.1%} of ideal (>= 90%)")

        n_naive = 40
        endpoint = sb.url + "/api/validate/phone"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        start = time.perf_counter()
        for phone in NUMBERS[n : n + n_naive]:
            response = requests.post(endpoint, json={"phone": phone}, headers=headers, timeout=10)
            response.raise_for_status()
        naive = n_naive / (time.perf_counter() - start)
    print(f"  naive sequential requests.post loop: {naive:.1f}/s -> client is {rate / naive:.1f}x")
    summary(
        "client",
        f"lookup_many, {WORKERS} workers, {LATENCY * 1000:.0f} ms",
        f"{rate:.0f}/s = {rate / ideal:.0%} of {ideal:.0f}/s",
        f"sequential loop {naive:.1f}/s",
        f"{rate / naive:.1f}x",
    )


def _threaded(work: Callable[[list[str]], None], numbers: list[str]) -> float:
    """``work`` on WORKERS threads, each given its share of ``numbers``; lookups/s."""
    threads = [threading.Thread(target=work, args=(numbers[k::WORKERS],)) for k in range(WORKERS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(numbers) / (time.perf_counter() - start)


def _plain_sessions(url: str, numbers: list[str]) -> float:
    """16 threads of keep-alive sessions posting and parsing JSON, no checks; lookups/s."""
    endpoint = url + "/api/validate/phone"
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def work(chunk: list[str]) -> None:
        with requests.Session() as s:
            for phone in chunk:
                s.post(endpoint, json={"phone": phone}, headers=headers, timeout=10).json()

    return _threaded(work, numbers)


def _raw_pool(url: str, numbers: list[str]) -> float:
    """16 threads sharing one raw urllib3 keep-alive pool, posting bytes, parsing JSON; /s."""
    parts = urllib3.util.parse_url(url)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    with urllib3.HTTPConnectionPool(parts.host, parts.port, maxsize=WORKERS) as pool:

        def work(chunk: list[str]) -> None:
            for phone in chunk:
                body = json.dumps({"phone": phone}).encode()
                r = pool.urlopen("POST", "/api/validate/phone", body=body, headers=headers)
                json.loads(r.data)

        return _threaded(work, numbers)


def overhead(seconds: float) -> None:
    """Two alternating rounds each (the machine is shared); the best round of each counts.
    Beside the rates, the CPU seconds this process spends per lookup (the sandbox runs in its
    own process), which a busy machine disturbs far less than the rates."""
    ours_rounds, plain_rounds, raw_rounds = [], [], []
    ours_cpu, raw_cpu = [], []
    n = 0
    with (
        sandbox_process() as sb,
        HLRClient(token=TOKEN, base_url=sb.url, workers=WORKERS) as client,
    ):
        client.lookup_many(NUMBERS[-WORKERS * 2 :])
        for _ in range(2):
            start, cpu, done = time.perf_counter(), time.process_time(), 0
            while time.perf_counter() - start < seconds / 2:
                batch = NUMBERS[n : n + 500]
                client.lookup_many(batch)
                n, done = n + len(batch), done + len(batch)
            ours_rounds.append(done / (time.perf_counter() - start))
            ours_cpu.append((time.process_time() - cpu) / done)
            batch = NUMBERS[n : n + done]
            plain_rounds.append(_plain_sessions(sb.url, batch))
            n += len(batch)
            batch, cpu = NUMBERS[n : n + done], time.process_time()
            raw_rounds.append(_raw_pool(sb.url, batch))
            raw_cpu.append((time.process_time() - cpu) / len(batch))
            n += len(batch)
    ours, plain, raw = max(ours_rounds), max(plain_rounds), max(raw_rounds)
    rounds = ", ".join(f"{r:.0f}" for r in ours_rounds)
    print(f"  HLRClient.lookup_many at zero latency: {ours:.0f}/s (rounds {rounds})")
    print(f"  plain sessions, no checks: {plain:.0f}/s -> pd-hlr at {ours / plain:.0%} of it")
    print(f"  raw urllib3 keep-alive pool: {raw:.0f}/s -> pd-hlr at {ours / raw:.0%} of it")
    mine, wire = min(ours_cpu) * 1e6, min(raw_cpu) * 1e6
    print(f"  CPU per lookup: pd-hlr {mine:.0f} us, raw pool {wire:.0f} us ({wire / mine:.2f})")
    summary(
        "client",
        "zero latency: checked, deadline-bound reads",
        f"{ours:.0f}/s",
        f"plain sessions {plain:.0f}/s",
        f"{ours / plain:.2f}x",
    )


def dead_api() -> None:
    with sandbox.serve(token=TOKEN, faults=sandbox.Faults(unreachable=True)) as sb:
        numbers = NUMBERS[:8000]
        with HLRClient(token=TOKEN, base_url=sb.url, workers=8) as client:
            start = time.perf_counter()
            try:
                client.lookup_many(numbers)
            except ServiceUnavailableError as exc:
                stopped = time.perf_counter() - start
                print(f"  breaker: stopped after {stopped:.2f}s, {client.stats.requests} attempts")
                print(f"  ({exc.kind}; {len(exc.pending)} numbers pending)")
        off = RetryPolicy(breaker_threshold=10**9)
        with HLRClient(token=TOKEN, base_url=sb.url, workers=8, retry=off) as client:
            start = time.perf_counter()
            client.lookup_many(numbers[:16])
            sample = time.perf_counter() - start
    grind = sample / 16 * len(numbers)
    print(f"  no breaker: 16 numbers in {sample:.2f}s -> {grind / 60:.0f} min for 8,000 (extrap.)")
    summary(
        "client",
        "unreachable API, 8,000 numbers: time to stop",
        f"{stopped:.1f} s",
        f"{grind / 60:.0f} min (no breaker, extrap.)",
        f"{grind / stopped:.0f}x sooner",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each timed phase")
    args = parser.parse_args()
    began = time.perf_counter()
    print(machine())
    print(f"1. throughput: latency {LATENCY * 1000:.0f} ms, {WORKERS} workers")
    throughput(args.seconds)
    print(f"2. overhead of the defences: zero latency, {WORKERS} workers")
    overhead(args.seconds)
    print("3. an unreachable API (connection refused), default retry policy")
    dead_api()
    print(f"total {time.perf_counter() - began:.1f}s")


if __name__ == "__main__":
    main()
