"""Does the adaptive rate find an account's hidden limit, and follow it when it changes?

A sandbox in its own process enforces a limit the client is not told (``rate_limit`` on the
sandbox: at most that many requests in any 1-second window, 429 with ``Retry-After`` beyond
it, not charged), 40/s in phase 1 and 120/s in phase 2 (switched live mid-run). pd-hlr runs
with no ``rate_limit`` (the default adaptive pace), 16 workers, 20 ms latency, on numbers it
has never seen, until the end of phase 2. Reported, from the answers' arrival times and the
sandbox's ledger:

* per phase: answers/s ÷ the hidden limit, over the whole phase and once settled (after the
  first ``--settle`` seconds of the phase, the time to find the new limit); target >= 0.9;
* limit signals (the sandbox's 429s) as a share of all requests; target <= 2 %;
* money: nothing paid twice (the sandbox's charge ledger), every paid number answered.

The ideal is the hidden limit itself (a client told the exact limit runs at 97 % of it, see
``bench_ratelimit.py``).

Run: ``.venv/bin/python benchmarks/bench_adaptive.py [--seconds 30] [--settle 5]``;
``--small`` (what CI runs: 4 s phases, figures printed, no target enforced).
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from typing import Any

from _common import TOKEN, machine, sandbox_process, summary

from pd_hlr.client import HLRClient

PHASES = (40.0, 120.0)
LATENCY = 0.02
WORKERS = 16


class _Done(Exception):
    """Raised from on_result to end the run at the end of the last phase."""


def run(seconds: float) -> dict[str, Any]:
    numbers = [f"+4479{i:08d}" for i in range(int(sum(PHASES) * seconds * 1.5) + 100)]
    arrivals: list[float] = []
    paces: list[tuple[float, float | None]] = []
    lock = threading.Lock()
    with sandbox_process(latency=LATENCY, rate_limit=PHASES[0]) as sb:
        client = HLRClient(token=TOKEN, base_url=sb.url, workers=WORKERS, max_retries=50)
        started = time.monotonic()
        switch_at = started + seconds
        end_at = started + 2 * seconds

        def switch() -> None:
            time.sleep(max(0.0, switch_at - time.monotonic()))
            sb.configure(rate_limit=PHASES[1])

        def sample() -> None:
            while time.monotonic() < end_at:
                paces.append((time.monotonic() - started, client.current_rate()))
                time.sleep(0.25)

        threads = [threading.Thread(target=f, daemon=True) for f in (switch, sample)]
        for th in threads:
            th.start()

        def on_result(number: str, outcome: Any) -> None:
            now = time.monotonic()
            if isinstance(outcome, dict):
                with lock:
                    arrivals.append(now)
            if now >= end_at:
                raise _Done

        with contextlib.suppress(_Done):
            client.lookup_many(numbers, on_result=on_result)
        for th in threads:
            th.join(5)
        stats = sb.stats()
        client_stats = client.stats
        client.close()
    answered = len(arrivals)
    return {
        "arrivals": [t - started for t in arrivals],
        "paces": paces,
        "stats": stats,
        "client": client_stats,
        "answered": answered,
    }


def _rate(arrivals: list[float], start: float, end: float) -> float:
    return sum(1 for t in arrivals if start <= t < end) / (end - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds excluded as settling")
    parser.add_argument("--small", action="store_true", help="4 s phases (CI)")
    args = parser.parse_args()
    seconds, settle = (4.0, 1.0) if args.small else (args.seconds, args.settle)
    print(machine())
    print(
        f"hidden limit {PHASES[0]:g}/s then {PHASES[1]:g}/s, {seconds:g} s each; no rate_limit; "
        f"{WORKERS} workers, {LATENCY * 1000:g} ms latency"
    )
    out = run(seconds)
    arrivals, stats = out["arrivals"], out["stats"]
    ratios = []
    for i, limit in enumerate(PHASES):
        start, end = i * seconds, (i + 1) * seconds
        whole = _rate(arrivals, start, end) / limit
        settled = _rate(arrivals, start + settle, end) / limit
        ratios.append((whole, settled))
        print(
            f"  phase {i + 1} ({limit:g}/s): {whole:.3f} of the limit over the whole phase, "
            f"{settled:.3f} after {settle:g} s settling (target >= 0.9)"
        )
    refused = stats.status_counts.get(429, 0)
    share = refused / stats.requests if stats.requests else 0.0
    twice = sum(1 for n in stats.charged.values() if n > 1)
    print(
        f"  limit signals: {refused} 429s of {stats.requests} requests = {share:.2%} "
        f"(target <= 2 %); the client reacted to {out['client'].limit_signals}"
    )
    print(
        f"  money: {stats.total_charged} charged for {len(stats.charged)} numbers, "
        f"{twice} paid twice (target 0); {out['answered']} answered"
    )
    shown = [f"{t:.0f}s:{'-' if r is None else f'{r:.0f}'}" for t, r in out["paces"][::8]]
    print("  pace allowed (every 2 s): " + " ".join(shown))
    for i, limit in enumerate(PHASES):
        summary(
            "adaptive rate",
            f"phase {i + 1}: answers/s ÷ hidden limit (settled)",
            f"{ratios[i][1] * limit:.1f}/s",
            f"{limit:g}/s",
            f"{ratios[i][1]:.3f}",
        )
    summary("adaptive rate", "429s / requests", str(refused), str(stats.requests), f"{share:.2%}")
    if twice:
        raise SystemExit(f"{twice} numbers were paid twice")


if __name__ == "__main__":
    main()
