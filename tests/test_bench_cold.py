"""The cold-run benchmark's small mode runs (CI): it completes and prints its three tables.
Its figures (issue 27's targets) are for the benchmark's output and the notes, not for tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_cold_small_mode_prints_its_tables() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_cold.py"), "--small"],
        cwd=ROOT / "benchmarks",
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    for header in ("validate ÷ ideal", "lookup_many ÷ raw", "validate ÷ script"):
        assert header in out, out[-3000:]
    for shape in ("16 × 50 ms", "32 × 100 ms", "64 × 100 ms"):
        assert shape in out, out[-3000:]
    # 3 shapes; 3 worker counts × (lookup_many, validate); 64 ÷ 16 for 3 contenders; 2 latencies
    assert out.count('SUMMARY {"benchmark": "cold"') == 14
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
