"""Run a script of ``benchmarks/`` the way CI runs its small mode, for the tests that check one
(``test_benchmarks.py``, ``test_bench_*.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(
    script: str, *args: str, cwd: Path = ROOT / "benchmarks", timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """``python benchmarks/<script> <args>`` in ``cwd``, its output captured as text (the
    caller asserts on its exit code and what it printed)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
