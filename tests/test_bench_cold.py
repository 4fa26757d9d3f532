"""The cold-run benchmark's small mode runs (CI): it completes and prints its three tables.
Its figures (issue 27's targets) are for the benchmark's output and the notes, not for tests."""

from __future__ import annotations

import pytest

from .benchrun import run_benchmark


@pytest.mark.slow
def test_bench_cold_small_mode_prints_its_tables() -> None:
    run = run_benchmark("bench_cold.py", "--small", timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    for header in ("validate ÷ ideal", "lookup_many ÷ raw", "validate ÷ script"):
        assert header in out, out[-3000:]
    for shape in ("16 × 50 ms", "32 × 100 ms", "64 × 100 ms"):
        assert shape in out, out[-3000:]
    # 3 shapes; 3 worker counts × (lookup_many, validate); 64 ÷ 16 for 3 contenders; 2 latencies
    assert out.count('SUMMARY {"benchmark": "cold"') == 14
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
