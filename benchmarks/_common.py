"""Helpers shared by the benchmarks: the machine, the data, a sandbox in its own process, peak
memory of a child process, tables, and the one-line summaries ``run_all.py`` collects.

Benchmarks run as scripts (``python benchmarks/bench_x.py``), so this folder is on ``sys.path``
and they import this module as ``_common``. The mixed-format data comes from
``bench_normalize.build_frame`` so every benchmark uses the same kind of column.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any

import pandas as pd

TOKEN = "bench-token"
REGION = "GB"
SUMMARY_PREFIX = "SUMMARY "


# --- the machine -------------------------------------------------------------------------------
def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _ram_gib() -> float:
    with contextlib.suppress(OSError, ValueError):
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return pages / 2**30
    return float("nan")


def machine() -> str:
    """One line: cores, CPU, RAM, OS, Python and library versions."""
    import pyarrow

    import pd_hlr

    cores = os.cpu_count()
    avail = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return (
        f"machine: {avail}/{cores} cores ({_cpu_model()}), {_ram_gib():.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
        f"pandas {pd.__version__}, pyarrow {pyarrow.__version__}, pd-hlr "
        f"{getattr(pd_hlr, '__version__', '?')}"
    )


# --- data ----------------------------------------------------------------------------------------
def mixed_phones(rows: int, distinct: int, seed: int = 7) -> pd.Series:
    """``rows`` phone cells holding ``distinct`` numbers in mixed formats (E.164, spaced,
    dashed, ``00``, GB national, CSV floats) with ~1 % junk and ~1 % blanks; skewed repeats.
    The generator of ``bench_normalize.py`` (read with ``default_region="GB"``)."""
    from bench_normalize import build_frame

    return build_frame(rows, distinct, seed=seed)


# --- a sandbox in its own process -------------------------------------------------------------
def _serve_child(conn: Connection, knobs: dict[str, Any]) -> None:
    from pd_hlr import sandbox

    with sandbox.serve(token=TOKEN, **knobs) as sb:
        conn.send(sb.url)
        while True:
            cmd = conn.recv()
            if cmd == "stats":
                conn.send(sb.stats())
            elif cmd == "reset":
                sb.reset_stats()
                conn.send(None)
            else:
                return


class SandboxProcess:
    """Handle on a sandbox running in a child process (as the real API would be: the server
    does not compete with the client for this process's GIL)."""

    def __init__(self, conn: Connection, url: str) -> None:
        self._conn = conn
        self.url = url
        self.token = TOKEN

    def stats(self) -> Any:
        """The sandbox's :class:`~pd_hlr.sandbox.SandboxStats`."""
        self._conn.send("stats")
        return self._conn.recv()

    def reset_stats(self) -> None:
        self._conn.send("reset")
        self._conn.recv()


@contextlib.contextmanager
def sandbox_process(**knobs: Any) -> Iterator[SandboxProcess]:
    """``with sandbox_process(latency=0.05) as sb: sb.url, sb.stats()``."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve_child, args=(child, knobs), daemon=True)
    proc.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("the sandbox process did not start")
        yield SandboxProcess(parent, parent.recv())
    finally:
        with contextlib.suppress(OSError, BrokenPipeError):
            parent.send("stop")
        proc.join(5)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)


# --- child processes with peak memory -----------------------------------------------------------
def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (Linux ``ru_maxrss`` is in KiB)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def current_rss_bytes() -> int:
    """This process's resident set size now."""
    import psutil

    return psutil.Process().memory_info().rss


def run_child(args: Sequence[str], timeout: float = 900) -> dict[str, Any]:
    """Run ``python <args>`` in a fresh process; it must print one ``RESULT <json>`` line,
    which is returned (its stderr passes through)."""
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    sys.stderr.write(proc.stderr)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"child {args} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}")


def emit_result(result: dict[str, Any]) -> None:
    """The child's side of :func:`run_child`."""
    print("RESULT " + json.dumps(result), flush=True)


# --- output --------------------------------------------------------------------------------------
def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], left: int = 1) -> str:
    """A plain-text table: the first ``left`` columns left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))
        ).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "-"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def summary(benchmark: str, metric: str, pd_hlr: str, baseline: str, ratio: str) -> None:
    """Print one machine-readable headline (``run_all.py`` collects these into its table)."""
    row = {
        "benchmark": benchmark,
        "metric": metric,
        "pd_hlr": pd_hlr,
        "baseline": baseline,
        "ratio": ratio,
    }
    print(SUMMARY_PREFIX + json.dumps(row), flush=True)


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"
