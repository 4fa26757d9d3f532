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


#: The other scripts' small modes (what CI runs of them) and a line each must print.
SMALL_MODES = {
    "bench_cli.py": (["--rounds", "1"], "SUMMARY"),
    "bench_client.py": (["--seconds", "1"], "total"),
    "bench_ratelimit.py": (["--seconds", "1"], "SUMMARY"),
    # its exit code also says whether it met 500 req/s: a speed, so not asserted here
    "bench_sandbox.py": (["--seconds", "1"], "statuses {200: "),
    "bench_enrich.py": (["--rows", "2000", "--distinct", "500", "--sample", "500"], "SUMMARY"),
    "bench_normalize.py": (
        ["--rows", "20000", "--distinct", "4000", "--sample", "5000", "--repeat", "1"],
        "rows where the keys differ from the per-pair baseline: 0",
    ),
    "bench_warm.py": (
        ["--rows", "5000", "--distinct", "1000", "--rc-distinct", "500", "--rc-sample", "200"],
        "SUMMARY",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMALL_MODES))
def test_benchmark_small_mode_runs(script: str) -> None:
    args, expected = SMALL_MODES[script]
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT / "benchmarks", capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0 or script == "bench_sandbox.py", run.stderr[-3000:]
    assert expected in run.stdout + run.stderr, run.stdout[-3000:]
