"""Helpers shared by the benchmarks: the machine, the data, a sandbox in its own process, peak
memory of a child process, tables, and the one-line summaries ``run_all.py`` collects; and for
the warm-cache engine benchmarks (``bench_dask.py``, ``bench_polars.py``) their parquet dataset,
its seeded cache, RSS samplers and a measured child process under an RSS watchdog.

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
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

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
            elif isinstance(cmd, tuple) and cmd[0] == "configure":
                sb.configure(**cmd[1])
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

    def configure(self, **knobs: Any) -> None:
        """:meth:`~pd_hlr.sandbox.Sandbox.configure` in the child (e.g. a new rate limit)."""
        self._conn.send(("configure", knobs))
        self._conn.recv()


@contextlib.contextmanager
def server_process(
    target: Any, *args: Any, what: str, stop: object
) -> Iterator[tuple[Connection, Any]]:
    """``target(child_conn, *args)`` in a spawned process that sends one message (its address)
    when it serves: yields (the parent's end of the pipe, that message); on exit sends ``stop``
    and waits for the process (terminating it after 5 s)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    try:
        if not parent.poll(60):
            raise RuntimeError(f"{what} did not start")
        yield parent, parent.recv()
    finally:
        with contextlib.suppress(OSError, BrokenPipeError):
            parent.send(stop)
        proc.join(5)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)


@contextlib.contextmanager
def sandbox_process(**knobs: Any) -> Iterator[SandboxProcess]:
    """``with sandbox_process(latency=0.05) as sb: sb.url, sb.stats()``."""
    with server_process(_serve_child, knobs, what="the sandbox process", stop="stop") as (
        conn,
        url,
    ):
        yield SandboxProcess(conn, url)


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


# --- the warm-cache dataset and measured child processes (bench_dask, bench_polars) ------------
# (country code, national prefix, random digits after it)
RANGES = [
    ("44", "7400", 6),
    ("44", "7700", 6),
    ("44", "7911", 6),
    ("49", "151", 8),
    ("33", "6", 8),
    ("31", "6", 8),
    ("1", "201", 7),
]
JUNK = ["n/a", "unknown", "call me", "12345", "*123#", "tel: ask reception", "+999 123 4567"]


def _distinct_numbers(n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """n distinct E.164 numbers and the index of the range each comes from."""
    which = rng.integers(0, len(RANGES), size=n)
    out: list[str] = []
    for k, (cc, prefix, width) in enumerate(RANGES):
        m = int((which == k).sum())
        low = 2 * 10 ** (width - 1) if cc == "1" else 0  # NANPA exchange codes start 2-9
        tails = np.unique(rng.integers(low, 10**width, size=int(m * 1.2) + 10))
        tails = rng.permutation(tails)[:m]
        out.extend(f"+{cc}{prefix}{t:0{width}d}" for t in tails)
    numbers = np.array(out, dtype=object)
    order = rng.permutation(len(numbers))
    ranges = np.repeat(np.arange(len(RANGES)), [int((which == k).sum()) for k in range(7)])
    return list(numbers[order]), ranges[order]


def _formats(e164: list[str], ranges: np.ndarray) -> list[pa.Array]:
    """Each number written six ways (the national format only for GB; E.164 otherwise)."""
    spaced, dashed, zeros, national, digits = [], [], [], [], []
    for n, k in zip(e164, ranges):
        cc, prefix, _ = RANGES[k]
        rest = n[1 + len(cc) :]
        body = rest[len(prefix) :]
        spaced.append(f"+{cc} {prefix} {body}")
        dashed.append(f"+{cc}-{prefix}-{body[:3]}-{body[3:]}")
        zeros.append(f"00{cc} {rest}")
        national.append(f"0{prefix} {body}" if cc == "44" else n)
        digits.append(n[1:])
    return [pa.array(x, pa.large_string()) for x in (e164, spaced, dashed, zeros, national, digits)]


def build_dataset(folder: Path, rows: int, distinct: int, rows_per_file: int, seed: int) -> None:
    """A folder of parquet files (``rows_per_file`` rows each; an ``id``, a ``phone`` and an
    ``amount`` column): ``distinct`` numbers of :data:`RANGES` written six ways, every number at
    least once and the rest skewed, plus 1 % :data:`JUNK` and 1 % blanks/nulls."""
    rng = np.random.default_rng(seed)
    e164, ranges = _distinct_numbers(distinct, rng)
    table = pa.concat_arrays(_formats(e164, ranges))
    # every number at least once, the rest skewed (some numbers appear many times)
    picks = np.concatenate(
        [np.arange(distinct), (rng.pareto(1.5, rows - distinct) * 1000).astype(np.int64) % distinct]
    )
    rng.shuffle(picks)
    fmt = rng.integers(0, 6, size=rows)
    phones = table.take(pa.array(fmt * distinct + picks))
    kind = rng.random(rows)
    junk = pa.array([JUNK[i % len(JUNK)] for i in range(len(JUNK))], pa.large_string())
    blank = pa.array([None, "", "  "], pa.large_string())
    junk_rows = np.flatnonzero(kind < 0.01)
    blank_rows = np.flatnonzero((kind >= 0.01) & (kind < 0.02))
    phones_np = np.array(phones.to_pylist(), dtype=object)
    phones_np[junk_rows] = np.array(junk.to_pylist(), dtype=object)[junk_rows % len(JUNK)]
    phones_np[blank_rows] = np.array(blank.to_pylist(), dtype=object)[blank_rows % 3]
    folder.mkdir(parents=True, exist_ok=True)
    amount = rng.random(rows) * 100
    for i, start in enumerate(range(0, rows, rows_per_file)):
        stop = min(rows, start + rows_per_file)
        part = pa.table(
            {
                "id": pa.array(np.arange(start, stop, dtype=np.int64)),
                "phone": pa.array(phones_np[start:stop], pa.large_string()),
                "amount": pa.array(amount[start:stop]),
            }
        )
        pq.write_table(part, folder / f"part-{i:05d}.parquet")


#: The engine benchmarks' small mode (``--small``, what CI runs): rows, distinct, rows per file.
SMALL = (20_000, 2_000, 5_000)


def seed_cache(cache_dir: Path, folder: Path, api: str) -> int:
    """Answer every lookup key the data holds, without HTTP, through the cache's own writer
    (keys read with ``default_region=REGION``); returns how many."""
    from datetime import UTC, datetime

    from pd_hlr import pipeline, sandbox
    from pd_hlr.cache import Entry, HLRCache
    from pd_hlr.settings import LookupOptions, ValidateSettings

    settings = ValidateSettings.from_kwargs(default_region=REGION)
    keys: set[str] = set()
    for f in sorted(folder.glob("*.parquet")):
        col = pq.read_table(f, columns=["phone"]).column("phone").to_pandas()
        uniq = pd.Series(pd.unique(col), dtype=object)
        keys.update(pipeline.distinct_numbers(pipeline.normalize_column(uniq, settings)))
    options = LookupOptions().key()
    now = datetime.now(UTC)
    with HLRCache(cache_dir).writer() as writer:
        for n in sorted(keys):
            writer.add(Entry(n, options, api, sandbox.answer(n), now))
    return len(keys)


class Sampler:
    """Peak RSS per process of a set of pids, sampled every ``interval`` seconds."""

    def __init__(self, pids: Any, interval: float = 0.1) -> None:
        import psutil

        self._psutil = psutil
        self._pids = pids  # callable → iterable of pids
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.interval = interval

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in list(self._pids()):
                try:
                    rss = self._psutil.Process(pid).memory_info().rss
                except self._psutil.Error:
                    continue
                self.peaks[pid] = max(self.peaks.get(pid, 0), rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def status_bytes(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` in bytes (``VmHWM``: peak RSS of this program,
    reset at ``exec``; ``VmRSS``: RSS now)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def vmhwm_bytes() -> int:
    """This process's peak resident set since it started (``VmHWM``)."""
    return status_bytes("VmHWM")


def prepare_dataset(
    workdir: str | None, prefix: str, rows: int, distinct: int, rows_per_file: int, seed: int
) -> tuple[Path, Path, Path]:
    """The work folder (``workdir``, else a new temp folder), its ``input`` dataset and its
    seeded ``cache``, each made unless it exists; prints one line saying what they hold."""
    import tempfile
    import time

    work = Path(workdir or tempfile.mkdtemp(prefix=prefix))
    folder, cache_dir = work / "input", work / "cache"
    t0 = time.perf_counter()
    if not folder.exists():
        build_dataset(folder, rows, distinct, rows_per_file, seed)
    t_data = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in folder.glob("*.parquet"))
    t0 = time.perf_counter()
    keys = seed_cache(cache_dir, folder, "127.0.0.1") if not cache_dir.exists() else -1
    t_seed = time.perf_counter() - t0
    print(
        f"input: {rows:,} rows, {distinct:,} distinct numbers, "
        f"{len(list(folder.glob('*.parquet')))} files ({size / 2**20:.0f} MiB) in {work} "
        f"(built in {t_data:.0f}s); "
        + (f"cache seeded with {keys:,} keys in {t_seed:.0f}s" if keys >= 0 else "cache reused"),
        flush=True,
    )
    return work, folder, cache_dir


def cpu_seconds() -> float:
    """This process's CPU time so far (user + system, all its threads): steadier than wall time
    on a shared machine."""
    t = os.times()
    return t.user + t.system


def run_measured(script: str, argv: list[str], limit_gb: float | None) -> dict[str, Any] | None:
    """Run ``python script *argv`` in a fresh process (its own process group); it prints its
    result as the last JSON line of its stdout, returned with ``watchdog_peak_largest`` (the
    largest RSS any of its processes reached, sampled). With ``limit_gb``, an RSS watchdog
    kills the group as soon as any one of its processes passes the limit (None returned)."""
    import psutil

    proc = subprocess.Popen(
        [sys.executable, script, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    parent = psutil.Process(proc.pid)

    def pids() -> list[int]:
        try:
            return [proc.pid, *(c.pid for c in parent.children(recursive=True))]
        except psutil.Error:
            return []

    killed: list[str] = []
    done = threading.Event()

    def watchdog() -> None:
        limit = int(limit_gb * 2**30) if limit_gb else None
        while not done.wait(0.05):
            for pid in pids():
                try:
                    rss = psutil.Process(pid).memory_info().rss
                except psutil.Error:
                    continue
                if limit is not None and rss > limit:
                    killed.append(f"process {pid} reached {gib(rss).strip()} > {limit_gb} GiB")
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    return

    sampler = Sampler(pids, interval=0.05)
    thread = threading.Thread(target=watchdog, daemon=True)
    with sampler:
        thread.start()
        stdout, stderr = proc.communicate()
        done.set()
        thread.join()
    if killed:
        print(f"  {argv[1]}: did not fit ({killed[0]}); killed")
        return None
    for line in stdout.splitlines()[::-1]:
        if line.startswith("{"):
            result = json.loads(line)
            result["watchdog_peak_largest"] = max(sampler.peaks.values(), default=0)
            return result
    tail = (stderr or "").strip().splitlines()[-3:]
    print(f"  child {argv[:2]} failed (exit {proc.returncode}): {' | '.join(tail)}")
    return None


def gib(n: float) -> str:
    return f"{n / 2**30:6.2f} GiB"
