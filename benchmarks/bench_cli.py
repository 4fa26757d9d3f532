"""How fast do ``pd-hlr --help`` and ``pd-hlr --version`` answer, next to ``import pandas``?

Each command runs as a fresh process, ``--rounds`` times, the commands interleaved round by
round so that a busy machine slows them alike; the median wall time of each is reported with
its ratio to ``python -c "import pandas"`` measured in the same run. ``python -c "import
pd_hlr"`` is shown too: the console script lives inside the package, so importing the package
(which registers the pandas accessor) is the floor of any ``pd-hlr`` command.

Example:
    .venv/bin/python benchmarks/bench_cli.py --rounds 15 [--compare /other/venv/bin/pd-hlr]
"""

from __future__ import annotations

import argparse
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


def _time(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


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
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, cmd in commands.items():
            times[name].append(_time(cmd))
    base = statistics.median(times["import pandas (baseline)"])
    print(f"{'command':<26} {'median':>8}  {'ratio to import pandas':>22}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:<26} {med:>7.3f}s  {med / base:>21.2f}x")
    for name in ("pd-hlr --help", "pd-hlr --version"):
        med = statistics.median(times[name])
        summary(
            "cli",
            f"`{name}` wall time (median of {args.rounds})",
            f"{med:.3f} s",
            f"import pandas {base:.3f} s",
            f"{med / base:.2f}x",
        )


if __name__ == "__main__":
    main()
