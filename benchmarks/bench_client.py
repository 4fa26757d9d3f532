"""How fast is HLRClient, and does its rate limit hold? One run, about 20 seconds.

1. Throughput: ``lookup_many`` with 16 workers against a sandbox with 50 ms latency, compared
   with the ideal ``workers / latency`` (320 lookups/s) and with a naive sequential
   ``requests.post`` loop (no session, no threads). The sandbox runs in its own process, as the
   real API would; ``--in-process`` runs it in this process (it then competes for the GIL).
2. Rate limit: ``rate_limit=50`` with 16 workers against a sandbox (same placement) that
   enforces 50/s itself; from the sandbox's request log: the most requests in any 1-second
   window (target <= 51), the sustained rate (target >= 95% of 50) and the 429s the server
   had to send. The server stamps a request after its simulated latency, so a stall of the
   (busy, 2-core) machine can bunch its stamps; the same peak from the client's own send
   times is printed next to it.

Run: ``.venv/bin/python benchmarks/bench_client.py``
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import requests

from pd_hlr import sandbox
from pd_hlr.client import HLRClient

TOKEN = "bench-token"
LATENCY = 0.05
WORKERS = 16
NUMBERS = [f"+4479{i:08d}" for i in range(20_000)]


Log = list[tuple[float, int]]  # (monotonic time, status) per request the sandbox saw


def _serve_in_child(conn: Connection, latency: float, rate_limit: float | None) -> None:
    with sandbox.serve(token=TOKEN, latency=latency, rate_limit=rate_limit) as sb:
        conn.send(sb.url)
        while conn.recv() == "log":  # anything else: stop
            conn.send([(r.t, r.status) for r in sb.log()])


@contextlib.contextmanager
def sandbox_process(
    latency: float, rate_limit: float | None = None
) -> Iterator[tuple[str, Callable[[], Log]]]:
    """A sandbox in a child process (CLOCK_MONOTONIC is system-wide, so its log times are
    comparable); yields its base URL and a function fetching its request log."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve_in_child, args=(child, latency, rate_limit), daemon=True)
    proc.start()

    def get_log() -> Log:
        parent.send("log")
        return parent.recv()

    try:
        if not parent.poll(30):
            raise RuntimeError("sandbox process did not start")
        yield parent.recv(), get_log
    finally:
        parent.send("stop")
        proc.join(5)
        if proc.is_alive():
            proc.terminate()


@contextlib.contextmanager
def sandbox_here(
    latency: float, rate_limit: float | None = None
) -> Iterator[tuple[str, Callable[[], Log]]]:
    with sandbox.serve(token=TOKEN, latency=latency, rate_limit=rate_limit) as sb:
        yield sb.url, lambda: [(r.t, r.status) for r in sb.log()]


def max_in_window(times: list[float], width: float = 1.0) -> int:
    """Most timestamps in any closed window of ``width`` seconds."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] < t - width:
            start += 1
        best = max(best, end - start + 1)
    return best


def _record_sends(client: HLRClient) -> list[float]:
    """Timestamp every slot the client's shared limiter hands out (i.e. every send)."""
    limiter = client._limiter
    assert limiter is not None
    sent: list[float] = []
    acquire = limiter.acquire

    def recording_acquire() -> float:
        waited = acquire()
        sent.append(time.monotonic())  # list.append is atomic
        return waited

    limiter.acquire = recording_acquire  # type: ignore[method-assign]
    return sent


def throughput(url: str, seconds: float) -> tuple[float, float]:
    ideal = WORKERS / LATENCY
    n = int(ideal * seconds)
    with HLRClient(token=TOKEN, base_url=url, workers=WORKERS) as client:
        client.lookup_many(NUMBERS[-WORKERS * 2 :])  # warm-up: imports, first connections
        start = time.perf_counter()
        out = client.lookup_many(NUMBERS[:n])
        elapsed = time.perf_counter() - start
    assert all(isinstance(v, dict) for v in out.values())
    rate = n / elapsed
    print(f"  HLRClient.lookup_many: {n} lookups in {elapsed:.2f}s = {rate:.0f}/s")
    print(f"  ideal workers/latency: {ideal:.0f}/s  -> {rate / ideal:.1%} of ideal (target >= 90%)")

    n_naive = 40
    endpoint = url + "/api/validate/phone"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    start = time.perf_counter()
    for phone in NUMBERS[:n_naive]:
        response = requests.post(endpoint, json={"phone": phone}, headers=headers, timeout=10)
        response.raise_for_status()
    naive = n_naive / (time.perf_counter() - start)
    print(f"  naive sequential requests.post loop: {naive:.1f}/s -> client is {rate / naive:.1f}x")
    return rate, ideal


def rate_adherence(server: Callable[..., Any], limit: float, seconds: float) -> None:
    n = int(limit * seconds)
    with server(LATENCY, rate_limit=limit) as (url, get_log):
        with HLRClient(token=TOKEN, base_url=url, workers=WORKERS, rate_limit=limit) as client:
            sent = _record_sends(client)
            out = client.lookup_many(NUMBERS[:n])
        log = get_log()
    times = sorted(t for t, _ in log)
    sustained = (len(times) - 1) / (times[-1] - times[0])
    too_many = sum(1 for _, status in log if status == 429)
    ok = sum(1 for v in out.values() if isinstance(v, dict))
    print(f"  {n} lookups, rate_limit={limit:g}/s, {WORKERS} workers: {ok} answered")
    print(
        f"  max requests in any 1-second window: {max_in_window(times)} as the server logged "
        f"them, {max_in_window(sent)} as the client sent them (limit + 1 = {limit + 1:g})"
    )
    print(
        f"  sustained rate: {sustained:.1f}/s = {sustained / limit:.1%} of the limit "
        f"(target >= 95%); 429s from the server: {too_many}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each timed phase")
    parser.add_argument("--in-process", action="store_true", help="sandbox in this process")
    args = parser.parse_args()
    began = time.perf_counter()

    where = "in this process" if args.in_process else "in a child process"
    print(f"1. throughput: latency {LATENCY * 1000:.0f} ms, {WORKERS} workers, sandbox {where}")
    server = sandbox_here if args.in_process else sandbox_process
    with server(LATENCY) as (url, _):
        throughput(url, args.seconds)

    print(f"2. rate-limit adherence (sandbox {where}, its request log as the clock)")
    rate_adherence(server, 50.0, args.seconds)
    print(f"total {time.perf_counter() - began:.1f}s")


if __name__ == "__main__":
    main()
