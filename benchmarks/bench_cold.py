"""Cold runs at the wire's speed? Issue 27's targets, every ratio measured in one run.

A lean fake API (asyncio, HTTP/1.1 keep-alive, one process of its own) sleeps the latency and
answers a valid spec body for the number asked, so the server is not what is measured (its
own ceiling is printed: the raw pool at 0 ms). Three questions, each a median of ``--repeat``:

1. **Cold ÷ ideal**, cache on, the whole pipeline: ``df.hlr.validate`` on fresh numbers, a new
   cache folder each repeat, at 16 workers × 50 ms, 32 × 100 ms and 64 × 100 ms; ideal =
   lookups × latency / workers. A raw ``http.client`` keep-alive pool (one connection per
   thread, same workers, same server) ÷ ideal beside it.
2. **Top speed** at 0 ms latency: ``HLRClient.lookup_many`` and the whole cold pipeline
   (cache on), lookups/s, ÷ the raw ``http.client`` pool, at 16, 32 and 64 workers, with the
   CPU seconds this process spends per lookup (steadier than rates on a shared machine); and
   a bare urllib3 pool (no checks, no deadline) ÷ the raw pool: the stack's own ceiling.
3. **A good hand-written script** (``ThreadPoolExecutor`` + one ``requests.Session`` per thread
   + ``phonenumbers`` dedup, no cache, no journal) vs ``df.hlr.validate`` (cache on) at 0 and
   50 ms latency, 16 workers.

Targets (issue 27): 1 ≥ 0.95; 2 ≥ 0.6 and not falling from 16 to 64 workers (the
``64 ÷ 16 workers`` lines, beside the raw pool's own); 3 ≥ 1.0.

Run: ``.venv/bin/python benchmarks/bench_cold.py`` (~4 min here) or ``--small`` (< 60 s, CI).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import statistics
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

import pandas as pd
import phonenumbers
import requests
from _common import TOKEN, machine, server_process, summary, table

import pd_hlr  # noqa: F401  (registers the accessor)
from pd_hlr.client import HLRClient

PATH = "/api/validate/phone"
#: The number the answer template was made for (its digits are replaced per request).
TEMPLATE_NUMBER = "+447911123456"


# --- the lean fake API ---------------------------------------------------------------------------
def _template() -> tuple[bytes, bytes]:
    """A valid answer body for TEMPLATE_NUMBER and the bytes to replace in it."""
    from pd_hlr import sandbox

    body = json.dumps({"results": [sandbox.answer(TEMPLATE_NUMBER)]}, separators=(",", ":"))
    return body.encode(), TEMPLATE_NUMBER[1:].encode()


class _Protocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive: each request answered ``latency`` seconds after it arrived."""

    latency = 0.0
    body = b""
    digits = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            eol = head.find(b"\r\n", at)
            length = int(head[at + 15 : eol if eol >= 0 else None]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            payload = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self._answer(payload)

    def _answer(self, payload: bytes) -> None:
        start = payload.find(b'"+', payload.find(b'"phone"') + 7) + 2
        digits = payload[start : payload.find(b'"', start)]
        body = self.body.replace(self.digits, digits)
        reply = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        if self.latency:
            asyncio.get_running_loop().call_later(self.latency, self._write, reply)
        else:
            self._write(reply)

    def _write(self, reply: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(reply)


def _serve(conn: Connection) -> None:
    _Protocol.body, _Protocol.digits = _template()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Protocol, "127.0.0.1", 0, backlog=1024)
        conn.send(server.sockets[0].getsockname()[1])
        reader = asyncio.Event()

        def command() -> None:
            message = conn.recv()
            if message is None:
                reader.set()
            else:
                _Protocol.latency = message
                conn.send("ok")

        loop.add_reader(conn.fileno(), command)
        await reader.wait()
        server.close()

    asyncio.run(main())


class FakeAPI:
    """The lean fake API in its own process; ``latency`` can be changed between phases."""

    def __init__(self, conn: Connection, port: int) -> None:
        self._conn = conn
        self.url = f"http://127.0.0.1:{port}"
        self.port = port

    def latency(self, seconds: float) -> None:
        self._conn.send(seconds)
        self._conn.recv()


@contextlib.contextmanager
def fake_api() -> Iterator[FakeAPI]:
    with server_process(_serve, what="the fake API", stop=None) as (conn, port):
        yield FakeAPI(conn, port)


# --- numbers -------------------------------------------------------------------------------------
class Numbers:
    """Fresh GB mobile numbers, each valid for libphonenumber (the hand-written script drops
    the others; ``+447911300000`` is not, so a long run cannot just count up): never the same
    twice in one run."""

    def __init__(self) -> None:
        self._next = 0

    def take(self, n: int) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            number = f"+447{self._next // 1_000_000 + 400:03d}{self._next % 1_000_000:06d}"
            self._next += 1
            if phonenumbers.is_valid_number(phonenumbers.parse(number)):
                out.append(number)
        return out


def _cells(numbers: list[str]) -> pd.DataFrame:
    """The column an analyst has: each number once, then a tenth of them again (repeats)."""
    return pd.DataFrame({"phone": numbers + numbers[: len(numbers) // 10]})


# --- the contenders: each returns (seconds, CPU seconds of this process) -------------------------
def _timed(work: Callable[[], Any]) -> tuple[float, float]:
    cpu, start = time.process_time(), time.perf_counter()
    work()
    return time.perf_counter() - start, time.process_time() - cpu


def _on_threads(work: Callable[[], None], workers: int) -> tuple[float, float]:
    """``work`` on ``workers`` threads at once, timed."""

    def run() -> None:
        threads = [threading.Thread(target=work) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    return _timed(run)


def raw_pool(api: FakeAPI, numbers: list[str], workers: int) -> tuple[float, float]:
    """``workers`` threads, one keep-alive ``http.client`` connection each, sharing a queue of
    numbers: post the JSON body, read and parse the answer. The wire's speed from Python."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    todo = deque(numbers)

    def work() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
        try:
            while True:
                try:
                    phone = todo.popleft()
                except IndexError:
                    return
                conn.request("POST", PATH, json.dumps({"phone": phone}).encode(), headers)
                answer = json.loads(conn.getresponse().read())
                assert answer["results"][0]["to"] == phone
        finally:
            conn.close()

    return _on_threads(work, workers)


def urllib3_pool(api: FakeAPI, numbers: list[str], workers: int) -> tuple[float, float]:
    """The same on one urllib3 keep-alive pool (``workers`` connections): the floor of the
    requests/urllib3 stack pd-hlr stays on."""
    import urllib3

    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    todo = deque(numbers)
    pool = urllib3.HTTPConnectionPool("127.0.0.1", api.port, maxsize=workers, retries=False)

    def work() -> None:
        while True:
            try:
                phone = todo.popleft()
            except IndexError:
                return
            body = json.dumps({"phone": phone}).encode()
            answer = json.loads(pool.urlopen("POST", PATH, body=body, headers=headers).data)
            assert answer["results"][0]["to"] == phone

    try:
        return _on_threads(work, workers)
    finally:
        pool.close()


def client_many(api: FakeAPI, numbers: list[str], workers: int) -> tuple[float, float]:
    """``HLRClient.lookup_many`` (no cache, no pipeline): the client's hot path."""
    with HLRClient(token=TOKEN, base_url=api.url, workers=workers) as client:
        return _timed(lambda: client.lookup_many(numbers))


def pipeline(api: FakeAPI, numbers: list[str], workers: int) -> tuple[float, float]:
    """``df.hlr.validate`` with the cache on (a new folder), what an analyst runs."""
    frame = _cells(numbers)
    with (
        tempfile.TemporaryDirectory(prefix="bench-cold-") as folder,
        HLRClient(token=TOKEN, base_url=api.url, workers=workers) as client,
    ):

        def run() -> None:
            out = frame.hlr.validate(
                "phone", client=client, cache=folder, workers=workers, progress=False
            )
            assert out["hlr_number"].notna().all()

        return _timed(run)


def script(api: FakeAPI, numbers: list[str], workers: int) -> tuple[float, float]:
    """A good hand-written script: phonenumbers dedup, a ThreadPoolExecutor, one
    ``requests.Session`` per thread, answers in a dict. No cache, no journal, no checks."""
    frame = _cells(numbers)
    endpoint = api.url + PATH
    local = threading.local()

    def one(phone: str) -> dict[str, Any]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.headers["Authorization"] = f"Bearer {TOKEN}"
        response = session.post(endpoint, json={"phone": phone}, timeout=30)
        response.raise_for_status()
        return response.json()["results"][0]

    def run() -> None:
        keys = {}
        for cell in frame["phone"].unique():
            parsed = phonenumbers.parse(cell, "GB")
            if phonenumbers.is_valid_number(parsed):
                keys[phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)] = 1
        with ThreadPoolExecutor(workers) as pool:
            answers = dict(zip(keys, pool.map(one, keys)))
        frame["to"] = frame["phone"].map(lambda p: answers.get(p, {}).get("to"))

    return _timed(run)


CONTENDERS = {
    "raw pool": raw_pool,
    "urllib3 pool": urllib3_pool,
    "lookup_many": client_many,
    "validate": pipeline,
    "script": script,
}


def measure(
    api: FakeAPI,
    numbers: Numbers,
    latency: float,
    workers: int,
    n: int,
    who: list[str],
    repeat: int,
) -> dict[str, tuple[float, float]]:
    """{contender: (median lookups/s, median CPU µs per lookup)}, rounds interleaved."""
    api.latency(latency)
    rates: dict[str, list[float]] = {w: [] for w in who}
    cpus: dict[str, list[float]] = {w: [] for w in who}
    for _ in range(repeat):
        for w in who:
            seconds, cpu = CONTENDERS[w](api, numbers.take(n), workers)
            rates[w].append(n / seconds)
            cpus[w].append(cpu / n * 1e6)
    return {w: (statistics.median(rates[w]), statistics.median(cpus[w])) for w in who}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="ideal length of one round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per figure (median)")
    parser.add_argument("--small", action="store_true", help="a quick run for CI (< 60 s)")
    args = parser.parse_args()
    if args.small:
        args.seconds, args.repeat = 0.5, 1
    began = time.perf_counter()
    print(machine())
    print(f"{os.cpu_count()} cores; rounds of ~{args.seconds:g} s ideal, median of {args.repeat}")
    numbers = Numbers()
    with fake_api() as api:
        # warm-up: imports, first connections, the answer template
        pipeline(api, numbers.take(64), 16)
        print("\n1. cold ÷ ideal, cache on (validate = df.hlr.validate, a new cache folder)")
        rows = []
        shapes = [(16, 0.05), (32, 0.1), (64, 0.1)]
        for workers, latency in shapes:
            ideal = workers / latency
            n = int(ideal * args.seconds)
            got = measure(api, numbers, latency, workers, n, ["validate", "raw pool"], args.repeat)
            ours, raw = got["validate"][0] / ideal, got["raw pool"][0] / ideal
            rows.append((f"{workers} × {latency * 1000:.0f} ms", n, ours, raw, ours / raw))
            summary("cold", f"validate ÷ ideal, {workers} × {latency * 1000:.0f} ms",
                    f"{ours:.2f}", f"raw pool {raw:.2f}", f"{ours / raw:.2f}")
        print(table(rows, ["shape", "lookups", "validate ÷ ideal", "raw pool ÷ ideal",
                           "validate ÷ raw"]))

        print("\n2. top speed at 0 ms: lookups/s and this process's CPU µs per lookup")
        rows = []
        n = int(1000 * args.seconds)
        speeds: dict[int, dict[str, tuple[float, float]]] = {}
        for workers in (16, 32, 64):
            got = measure(
                api,
                numbers,
                0.0,
                workers,
                n,
                ["raw pool", "urllib3 pool", "lookup_many", "validate"],
                args.repeat,
            )
            raw = got["raw pool"][0]
            rows.append((
                workers, raw, got["urllib3 pool"][0] / raw, got["lookup_many"][0],
                got["validate"][0], got["lookup_many"][0] / raw, got["validate"][0] / raw,
                got["raw pool"][1], got["urllib3 pool"][1], got["lookup_many"][1],
                got["validate"][1],
            ))
            for who in ("lookup_many", "validate"):
                summary("cold", f"top speed, {workers} workers, {who} ÷ raw pool",
                        f"{got[who][0]:.0f}/s", f"raw pool {raw:.0f}/s",
                        f"{got[who][0] / raw:.2f}")
            speeds[workers] = got
        print(table(rows, ["workers", "raw /s", "urllib3 ÷ raw", "lookup_many /s",
                           "validate /s", "lookup_many ÷ raw", "validate ÷ raw", "raw µs",
                           "urllib3 µs", "lookup_many µs", "validate µs"]))
        for who in ("raw pool", "lookup_many", "validate"):  # not falling from 16 to 64?
            summary("cold", f"top speed, {who}, 64 ÷ 16 workers",
                    f"{speeds[64][who][0]:.0f}/s", f"{speeds[16][who][0]:.0f}/s",
                    f"{speeds[64][who][0] / speeds[16][who][0]:.2f}")

        print("\n3. vs a hand-written script (ThreadPoolExecutor + Session + phonenumbers), "
              "16 workers")
        rows = []
        for latency in (0.0, 0.05):
            n = int((1000 if latency == 0 else 16 / latency) * args.seconds)
            got = measure(api, numbers, latency, 16, n, ["validate", "script"], args.repeat)
            ratio = got["validate"][0] / got["script"][0]
            rows.append((f"{latency * 1000:.0f} ms", n, got["validate"][0], got["script"][0],
                         ratio, got["validate"][1], got["script"][1]))
            summary("cold", f"validate ÷ script, 16 workers, {latency * 1000:.0f} ms",
                    f"{got['validate'][0]:.0f}/s", f"script {got['script'][0]:.0f}/s",
                    f"{ratio:.2f}")
        print(table(rows, ["latency", "lookups", "validate /s", "script /s", "validate ÷ script",
                           "validate µs", "script µs"]))
    print(f"\ntotal {time.perf_counter() - began:.1f}s")


if __name__ == "__main__":
    main()
