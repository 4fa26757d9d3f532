"""Issue 28's proof figures: processes sharing one ``s3://`` cache, judged by the sandbox's
charge ledger (moto's S3 server and the sandbox, both on 127.0.0.1).

[A] three processes at once, overlapping lists: charges per number; a fourth, warm: requests.
[B] ``kill -9`` of a run mid-way, then a re-run (lease 5 s): numbers paid twice (≤ workers).
[C] a claimer suspended (SIGSTOP) mid-run, lease 5 s: when the waiter finishes; the claimer
    resumed: numbers paid twice (≤ one claim chunk, 64).

Each bound is checked: the script exits 1 if one does not hold. ``--small`` (what CI runs):
a third of the numbers, the same leases and bounds.

Run: ``.venv/bin/python benchmarks/proof_s3_team.py [--small]`` (about a minute; not a
benchmark, so ``run_all.py`` does not run it; ``tests/test_cache_s3.py`` asserts the same bounds).
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pd_hlr import sandbox
from tests import s3server

CHILD = textwrap.dedent(
    """
    import os, sys, time, logging
    from pathlib import Path
    import pandas as pd, pd_hlr
    from pd_hlr.cache import HLRCache
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s child %(process)d %(message)s")
    numbers = open(sys.argv[1]).read().split()
    go = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    while go is not None and not go.exists():
        time.sleep(0.005)
    client = pd_hlr.HLRClient(token=os.environ["T"], base_url=os.environ["URL"], workers=4)
    cache = HLRCache(sys.argv[2], lease=float(os.environ.get("LEASE", "60")))
    t0 = time.monotonic()
    out = pd.DataFrame({"phone": numbers}).hlr.validate(
        "phone", client=client, cache=cache, progress=False, retry_temporary=False)
    took = time.monotonic() - t0
    print(os.getpid(), f"done in {took:.1f} s", dict(out["hlr_source"].value_counts()), flush=True)
    """
)
TOKEN = "proof-token-123456"
WORKERS = 4  # each child's (CHILD above)
CLAIM_CHUNK = 64  # pd_hlr.cache.claims: the most numbers one claimer holds at once


class Sizes(NamedTuple):
    """How many numbers each proof uses."""

    a_list: int  # [A] each process's list; the lists overlap by half
    b_total: int  # [B] the run killed, then re-run
    b_kill_after: int  # [B] charged before the kill
    c_total: int  # [C] the run suspended
    c_stop_after: int  # [C] charged before SIGSTOP


FULL = Sizes(120, 300, 100, 200, 30)
SMALL = Sizes(40, 90, 30, 70, 10)


def nums(n: int, start: int = 0) -> list[str]:
    return [f"+4474{i:08d}" for i in range(start, start + n)]


def child(tmp: Path, numbers: list[str], url: str, sb, name: str, go=None, **env):
    (tmp / "c.py").write_text(CHILD)
    listing = tmp / f"{name}.txt"
    listing.write_text("\n".join(numbers))
    cmd = [sys.executable, str(tmp / "c.py"), str(listing), url] + ([str(go)] if go else [])
    full = {**os.environ, "T": TOKEN, "URL": sb.url, **env}
    return subprocess.Popen(cmd, env=full, stdout=subprocess.PIPE, text=True)


def wait_charged(sb, n: int) -> None:
    while sb.stats().total_charged < n:
        time.sleep(0.01)


def twice(sb) -> int:
    return sum(c > 1 for c in sb.stats().charged.values())


def three_and_a_warm_fourth(tmp: Path, url: str, n: Sizes) -> list[str]:
    with sandbox.serve(token=TOKEN, latency=0.02) as sb:
        go = tmp / "go"
        lists = [nums(n.a_list, n.a_list // 2 * i) for i in range(3)]
        procs = [child(tmp, lst, url, sb, f"p{i}", go) for i, lst in enumerate(lists)]
        time.sleep(1.5)
        t0 = time.monotonic()
        go.touch()
        codes = [p.wait() for p in procs]
        print(f"[A] exit codes {codes} in {time.monotonic() - t0:.1f} s")
        for p in procs:
            print("   ", p.stdout.read().strip())
        charged = sb.stats().charged
        union = set().union(*map(set, lists))
        per = dict(Counter(charged.values()))
        print(f"[A] {len(union)} distinct, {len(charged)} charged; charges per number {per}")
        sb.reset_stats()
        warm = child(tmp, sorted(union), url, sb, "warm")
        warm.wait()
        requests = sb.stats().requests
        print("[A] warm fourth:", warm.stdout.read().strip(), "| requests:", requests)
    return [
        *([] if per == {1: len(union)} else ["[A] a number was paid twice (or not at all)"]),
        *([] if requests == 0 else ["[A] the warm fourth sent requests"]),
    ]


def kill_9_then_rerun(tmp: Path, url: str, n: Sizes) -> list[str]:
    with sandbox.serve(token=TOKEN, latency=0.02) as sb:
        wanted = nums(n.b_total)
        p = child(tmp, wanted, url, sb, "k", LEASE="5")
        wait_charged(sb, n.b_kill_after)
        p.send_signal(signal.SIGKILL)
        p.wait()
        before = sb.stats().total_charged
        t0 = time.monotonic()
        rerun = child(tmp, wanted, url, sb, "rerun", LEASE="5")
        rerun.wait()
        took = time.monotonic() - t0
        print(f"[B] killed after {before} charged; re-run: {rerun.stdout.read().strip()}")
        answered, paid_twice = len(sb.stats().charged), twice(sb)
        print(
            f"[B] re-run took {took:.1f} s (lease 5 s); answered {answered}/{n.b_total};"
            f" paid twice {paid_twice} (workers {WORKERS})"
        )
    return [
        *([] if answered == n.b_total else ["[B] a number was left unanswered"]),
        *([] if paid_twice <= WORKERS else ["[B] more paid twice than the killed run's workers"]),
    ]


def suspended_claimer(tmp: Path, url: str, n: Sizes) -> list[str]:
    with sandbox.serve(token=TOKEN, latency=0.05) as sb:
        wanted = nums(n.c_total)
        a = child(tmp, wanted, url, sb, "a", LEASE="5")
        wait_charged(sb, n.c_stop_after)
        a.send_signal(signal.SIGSTOP)
        t_stop = time.monotonic()
        at_stop = sb.stats().total_charged
        b = child(tmp, wanted, url, sb, "b", LEASE="5")
        b.wait()
        waited = time.monotonic() - t_stop
        print(
            f"[C] claimer stopped at {at_stop} charged; the waiter finished {waited:.1f} s"
            f" later: {b.stdout.read().strip()}"
        )
        a.send_signal(signal.SIGCONT)
        a.wait()
        print(f"[C] resumed claimer: {a.stdout.read().strip()} (exit {a.returncode})")
        answered, paid_twice = len(sb.stats().charged), twice(sb)
        print(
            f"[C] answered {answered}/{n.c_total}; paid twice {paid_twice}"
            f" (bound: one claim chunk, {CLAIM_CHUNK})"
        )
    return [
        *([] if answered == n.c_total else ["[C] a number was left unanswered"]),
        *([] if paid_twice <= CLAIM_CHUNK else ["[C] more paid twice than one claim chunk"]),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="a third of the numbers (CI)")
    sizes = SMALL if ap.parse_args().small else FULL
    failed: list[str] = []
    with s3server.serve() as endpoint, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(s3server.env(endpoint))
        os.environ.pop("AWS_PROFILE", None)
        print("S3 endpoint", endpoint)
        for proof in (three_and_a_warm_fourth, kill_9_then_rerun, suspended_claimer):
            failed += proof(Path(tmp), f"s3://{s3server.new_bucket(endpoint)}/team/cache", sizes)
    print("bounds: " + ("; ".join(failed) if failed else "all held"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
