"""How fast do ``pd-hlr --help`` and ``pd-hlr --version`` answer, next to ``import pandas``?

Each command runs as a fresh process, ``--rounds`` times, the commands interleaved round by
round so that a busy machine slows them alike; the median wall time and CPU time (user +
system, steadier on a shared machine) of each are reported with their ratios to ``python -c
"import pandas"`` measured in the same run. ``python -c "import pd_hlr"`` is shown too: the
console script lives inside the package, so importing the package (which registers the pandas
accessor) is the floor of any ``pd-hlr`` command.

Example:
    .venv/bin/python benchmarks/bench_cli.py --rounds 15 [--compare /other/venv/bin/pd-hlr]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import machine, summary


def _script() -> str:
    here = Path(sys.executable).parent / "pd-hlr"
    return str(here) if here.exists() else (shutil.which("pd-hlr") or "pd-hlr")


def _time(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--compare",
        metavar="PD_HLR",
        default=None,
        help="another pd-hlr console script (e.g. an older checkout's) whose --help is timed too",
    )
    args = parser.parse_args()
    commands = {
        "import pandas (baseline)": [sys.executable, "-c", "import pandas"],
        "import pd_hlr (floor)": [sys.executable, "-c", "import pd_hlr"],
        "pd-hlr --help": [_script(), "--help"],
        "pd-hlr --version": [_script(), "--version"],
        "pd-hlr validate --help": [_script(), "validate", "--help"],
        "pd-hlr sandbox --help": [_script(), "sandbox", "--help"],
    }
    if args.compare:
        commands["--compare --help"] = [args.compare, "--help"]
    print(machine())
    for cmd in commands.values():  # warm the OS's file cache once
        _time(cmd)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, cmd in commands.items():
            times[name].append(_time(cmd))

    def median(name: str, which: int) -> float:
        return statistics.median(t[which] for t in times[name])

    base = "import pandas (baseline)"
    print(f"{'command':<26} {'wall':>8} {'ratio':>6}  {'CPU':>8} {'ratio':>6}")
    for name in times:
        wall, cpu = median(name, 0), median(name, 1)
        print(
            f"{name:<26} {wall:>7.3f}s {wall / median(base, 0):>5.2f}x"
            f"  {cpu:>7.3f}s {cpu / median(base, 1):>5.2f}x"
        )
    for name in ("pd-hlr --help", "pd-hlr --version"):
        cpu = median(name, 1)
        summary(
            "cli",
            f"`{name}` CPU time (median of {args.rounds})",
            f"{cpu:.3f} s",
            f"import pandas {median(base, 1):.3f} s",
            f"{cpu / median(base, 1):.2f}x",
        )


if __name__ == "__main__":
    main()
