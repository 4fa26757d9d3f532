"""Run every ``benchmarks/bench_*.py``, each in its own process with a time limit, and print
one summary table.

Each benchmark's own output streams through as it runs. The summary collects the ``SUMMARY
{json}`` lines a benchmark prints (see ``_common.summary``); for a benchmark that prints none,
its headline lines (those stating a ratio, an ``Nx`` factor, a share ``% of`` or a target) are
quoted. A benchmark that fails or runs out of time is reported as such and the others still run.

Run: ``.venv/bin/python benchmarks/run_all.py [--timeout 600] [--only enrich warm]
[--skip dask] [--log results.txt]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import SUMMARY_PREFIX, machine, table

HERE = Path(__file__).resolve().parent
HEADLINE = re.compile(r"(\d[\d,.]*x\b|\bratio\b|% of\b|\btarget\b)")


def _run(script: Path, timeout: float, log: list[str]) -> tuple[str, float, list[str]]:
    """Run one script; return (status, seconds, its stdout lines)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
        start_new_session=True,  # its own process group: a timeout stops its children too
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            log.append(line)
            if not line.startswith(SUMMARY_PREFIX):
                print("  " + line, flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=timeout)
        status = "ok" if rc == 0 else f"failed (exit {rc})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        status = f"timeout ({timeout:.0f}s)"
    reader.join(timeout=10)
    return status, time.perf_counter() - started, lines


def _headlines(name: str, lines: list[str]) -> list[list[str]]:
    rows = []
    for line in lines:
        if line.startswith(SUMMARY_PREFIX):
            d = json.loads(line[len(SUMMARY_PREFIX) :])
            rows.append([d["benchmark"], d["metric"], d["pd_hlr"], d["baseline"], d["ratio"]])
    if rows:
        return rows
    quoted = [ln.strip() for ln in lines if HEADLINE.search(ln)][:4]
    return [[name, q, "", "", ""] for q in quoted] or [[name, "(no headline found)", "", "", ""]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=600, help="seconds per benchmark")
    parser.add_argument("--only", nargs="*", default=None, help="name fragments to run")
    parser.add_argument("--skip", nargs="*", default=[], help="name fragments to skip")
    parser.add_argument("--log", type=Path, help="also write every benchmark's output here")
    args = parser.parse_args(argv)

    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if any(f in s.stem for f in args.only)]
    scripts = [s for s in scripts if not any(f in s.stem for f in args.skip)]
    head = machine()
    print(head, flush=True)
    log: list[str] = [head]
    results = []
    started = time.perf_counter()
    for script in scripts:
        print(f"\n== {script.name}", flush=True)
        log.append(f"\n== {script.name}")
        status, seconds, lines = _run(script, args.timeout, log)
        print(f"== {script.name}: {status} in {seconds:.0f}s", flush=True)
        results.append((script.stem, status, seconds, lines))
    total = time.perf_counter() - started

    summary_rows: list[list[str]] = []
    for name, _, _, lines in results:
        summary_rows.extend(_headlines(name, lines))
    report = [
        "",
        "SUMMARY (pd-hlr vs the baseline measured in the same run)",
        head,
        table(summary_rows, ["benchmark", "metric", "pd-hlr", "baseline", "ratio"], left=2),
        "",
        table(
            [[name, status, f"{sec:.0f}"] for name, status, sec, _ in results]
            + [["total", "", f"{total:.0f}"]],
            ["script", "status", "seconds"],
        ),
    ]
    print("\n".join(report), flush=True)
    if args.log:
        args.log.write_text("\n".join(log + report) + "\n")
    return 0 if all(r[1] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
