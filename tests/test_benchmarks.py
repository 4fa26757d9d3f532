"""Every engine benchmark's small mode runs (CI): the scripts import and finish, and a warm
cache sends nothing. Their figures are for ``benchmarks/README.md``, not for tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("script", ["bench_dask.py", "bench_polars.py"])
def test_engine_benchmark_small_mode_runs(script: str) -> None:
    pytest.importorskip("dask")
    pytest.importorskip("polars")
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--small"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "requests sent to the sandbox (should be 0 on a warm cache): 0" in run.stdout
    assert "20,000" in run.stdout


@pytest.mark.slow
def test_s3_benchmark_small_mode_runs() -> None:
    pytest.importorskip("boto3")
    pytest.importorskip("moto")
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_s3.py"), "--small"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "requests sent to the sandbox (should be 0 on a warm cache): 0" in run.stdout
