"""``benchmarks/bench_journal.py --small`` runs (CI): both writers store every answer (the script
asserts it), and it prints its table and summary. Its figures are for ``benchmarks/README.md``,
not for tests."""

from __future__ import annotations

import json

import pytest

from .benchrun import run_benchmark


@pytest.mark.slow
def test_journal_benchmark_small_mode_runs() -> None:
    run = run_benchmark("bench_journal.py", "--small")
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [
        line.split() for line in run.stdout.splitlines() if line.split()[:1] in (["off"], ["on"])
    ]
    assert [r[:2] for r in rows] == [[f, t] for f in ("off", "on") for t in ("1", "16", "64")]
    assert all(float(r[-1]) >= 1.0 for r in rows)  # answers per write
    assert float(rows[0][-1]) == float(rows[3][-1]) == 1.0  # one thread: groups of one
    (line,) = [s for s in run.stdout.splitlines() if s.startswith("SUMMARY ")]
    assert json.loads(line.removeprefix("SUMMARY "))["benchmark"] == "journal"
