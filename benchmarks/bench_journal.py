"""How many answers per second go through ``CacheWriter.add`` (journalled, sequenced, folded into
parts every ``flush_every``), with 1, 16 and 64 threads adding at once? About 30 seconds.

pd-hlr's writer commits answers in groups (one sequence step and one journal write per group,
no lock held by the others during the I/O). The baseline, measured in the same run on the same
folder layout and primitives, is the path before group commit: one global lock per answer and,
under it, one flock'd sequence step and one journal write per answer, the fold into a part under
the same lock (:class:`PerAnswerWriter` below). Each figure is the median of ``--repeat`` runs,
the two writers alternating; CPU time per answer is the process's (all threads) over the run.

The threads only add (no HTTP): this is the journal's ceiling, the cost a cold run pays per
answer on top of the wire.

Run: ``.venv/bin/python benchmarks/bench_journal.py [--answers 20000] [--repeat 3]``;
``--small`` (CI): 600 answers, one run each.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from _common import machine, summary, table

import pd_hlr
from pd_hlr.cache import CacheWriter, Entry, HLRCache
from pd_hlr.cache.journal import Journal

OPTS = pd_hlr.LookupOptions().key()
HERE = Path(__file__).resolve().parent  # on the disk the cache would use (``/tmp`` may differ)
THREADS = (1, 16, 64)


class PerAnswerWriter(CacheWriter):
    """The baseline: the writer as it was before group commit (one lock; under it, per answer,
    one sequence step and one journal write; the fold under the same lock)."""

    def __init__(self, cache: HLRCache) -> None:
        super().__init__(cache)
        self._global = threading.Lock()

    def add(self, entry: Entry) -> None:
        entry = entry.checked()
        with self._global:
            if self._journal is None:
                self._journal = Journal(self.cache.path, fsync=self.cache.fsync)
            with self._seq.advance() as seq:
                entry = replace(entry, seq=seq)
                self._journal.write(entry.to_line())
            self._pending.append(entry)
            self.written += 1
            self.commits += 1
            if len(self._pending) >= self.cache.flush_every or (
                time.monotonic() - self._last_fold >= self.cache.flush_seconds
            ):
                self._swap_locked()
                self._fold()


def answers(n: int) -> list[Entry]:
    now = datetime.now(UTC)
    return [
        Entry(f"+4479{i:08d}", OPTS, "127.0.0.1", {"to": f"+4479{i:08d}", "live": True}, now)
        for i in range(n)
    ]


def run_once(
    kind: type[CacheWriter], threads: int, entries: list[Entry], fsync: bool
) -> dict[str, float]:
    """Add ``entries`` from ``threads`` threads; answers/s, CPU µs per answer, answers/write."""
    with tempfile.TemporaryDirectory(prefix="bench-journal-", dir=HERE) as d:
        writer = kind(HLRCache(Path(d), compact=False, fsync=fsync))
        shares = [entries[k::threads] for k in range(threads)]
        start = threading.Barrier(threads + 1)

        def work(share: list[Entry]) -> None:
            start.wait()
            for e in share:
                writer.add(e)

        pool = [threading.Thread(target=work, args=(s,)) for s in shares]
        for t in pool:
            t.start()
        cpu0 = time.process_time()
        start.wait()
        t0 = time.perf_counter()
        for t in pool:
            t.join()
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        writer.close()
        stored = HLRCache(Path(d)).stats()["entries"]
        assert stored == len(entries) == writer.written, (stored, len(entries))
        return {
            "rate": len(entries) / wall,
            "cpu_us": cpu / len(entries) * 1e6,
            "per_write": writer.written / writer.commits,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--answers", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--fsync-answers", type=int, default=1000, help="answers per run with fsync=True"
    )
    ap.add_argument("--small", action="store_true", help="600 answers, one run each (CI)")
    args = ap.parse_args()
    if args.small:
        args.answers, args.fsync_answers, args.repeat = 600, 64, 1
    print(machine())
    print(
        f"{args.answers:,} answers per run ({args.fsync_answers:,} with fsync=True), "
        f"flush_every=1000, median of {args.repeat}"
    )
    rows = []
    headline = None
    for fsync, threads in [(False, t) for t in THREADS] + [(True, t) for t in THREADS]:
        entries = answers(args.fsync_answers if fsync else args.answers)
        got: dict[str, list[dict[str, float]]] = {"group": [], "per-answer": []}
        for _ in range(args.repeat):
            got["per-answer"].append(run_once(PerAnswerWriter, threads, entries, fsync))
            got["group"].append(run_once(CacheWriter, threads, entries, fsync))
        med = {
            k: {m: statistics.median(r[m] for r in runs) for m in runs[0]}
            for k, runs in got.items()
        }
        g, b = med["group"], med["per-answer"]
        rows.append(
            [
                "on" if fsync else "off",
                threads,
                f"{g['rate']:,.0f}",
                f"{b['rate']:,.0f}",
                f"{g['rate'] / b['rate']:.2f}",
                f"{g['cpu_us']:.0f}",
                f"{b['cpu_us']:.0f}",
                f"{g['per_write']:.1f}",
            ]
        )
        if not fsync:
            headline = (threads, g, b)
    print(
        table(
            rows,
            [
                "fsync",
                "threads",
                "group commit /s",
                "per answer /s",
                "ratio",
                "CPU µs/answer (group)",
                "CPU µs/answer (per answer)",
                "answers per write",
            ],
        )
    )
    assert headline is not None
    threads, g, b = headline
    summary(
        "journal",
        f"answers/s through CacheWriter.add, {threads} threads",
        f"{g['rate']:,.0f}/s",
        f"{b['rate']:,.0f}/s",
        f"{g['rate'] / b['rate']:.2f}x",
    )


if __name__ == "__main__":
    main()
