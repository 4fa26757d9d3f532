"""Soak: a whole validate workflow under every fault the sandbox can inject, proven from the
sandbox's own accounting.

The story: 20,000 rows holding 8,000 distinct numbers (mixed formats, junk, blanks) are validated
with a cache against a sandbox that fails often (10 % 500/503, 5 % 429 with ``Retry-After``, 5 %
dropped connections, 2 % answers slower than the client's read timeout, 1 % truncated JSON, 2 %
temporary HLR errors) and misbehaves in every way of issue 13 (HTML pages, answers for another
number, byte-order marks, Latin-1 bytes, lone surrogates, deep nesting, ``errors`` beside
results, trickled, endless, gzip-bomb and 100 MB bodies, each a fraction of a percent), and whose
balance runs out at 70 % of the numbers. The run stops with ``InsufficientBalanceError``; the
analyst tops up and runs again on the same cache; a last run with the answer-changing knobs off
(temporary errors, answers for another number, lone surrogates) looks up again what they spoiled
(see ``test_soak``). The final frame must equal, value for value, what a fault-free sandbox gives,
except the network names the surrogate knob cut (repaired to U+FFFD, kept: they were paid for).

Bounded to about a minute on 2 cores: zero latency, 16 workers, read timeout 0.5 s against
1 s slow answers, a 1 s deadline per attempt against trickled bodies, backoff capped at 50 ms
(``Retry-After`` too: the client's sleep is shortened) so retries do not sleep long.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers
import pytest

from pd_hlr import HLRClient, sandbox
from pd_hlr.cache import HLRCache
from pd_hlr.errors import InsufficientBalanceError
from pd_hlr.pipeline import api_namespace
from pd_hlr.settings import LookupOptions

from .conftest import TOKEN

ROWS = 20_000
DISTINCT = 8_000
REGION = "GB"
DETAILED = True  # the widest frame (networks, status and error objects) to compare value by value

FAULTS = sandbox.Faults(
    error_500=0.05,
    error_503=0.05,
    rate_429=0.05,
    retry_after=1.0,  # a real integer header; the client caps the wait (retry_after_max)
    drop=0.05,
    slow=0.02,
    slow_seconds=1.0,  # > the client's 0.5 s read timeout: a charged answer never read
    truncated=0.01,
    temporary=0.02,
    html_200=0.005,
    wrong_to=0.005,
    bom=0.01,
    bad_utf8=0.005,
    surrogate=0.005,
    deep_nesting=0.003,
    errors_beside_results=0.01,
    trickle=0.002,
    endless=0.002,
    gzip_bomb=0.002,
    huge=0.002,
    missing_to=0.003,
    nan_field=0.003,
    echo_token=0.005,
)
#: The knobs that change an answer rather than its transport (see run 3), and those that make a
#: billed answer unusable (a result without ``to`` or with a NaN: never retried in a run).
ANSWER_CHANGING = ("temporary", "wrong_to", "surrogate", "missing_to", "nan_field")

# (country code, prefix, random digits) — numbers are kept only if libphonenumber calls them valid
_RANGES = [
    (44, "7400", 6),
    (44, "7911", 6),
    (44, "1302", 6),
    (44, "20", 8),
    (1, "201", 7),
    (1, "415", 7),
    (49, "151", 8),
    (33, "6", 8),
    (34, "6", 8),
]
_JUNK = ["n/a", "call me", "12345", "+999 123 4567", "*123#", "tel: ask reception", "0"]


def _distinct_numbers(n: int, rng: np.random.Generator) -> list[str]:
    out: dict[str, None] = {}
    while len(out) < n:
        cc, prefix, width = _RANGES[rng.integers(len(_RANGES))]
        if cc == 1:
            tail = f"{rng.integers(2, 10)}{rng.integers(0, 10**6):06d}"
        else:
            tail = f"{rng.integers(0, 10**width):0{width}d}"
        e164 = f"+{cc}{prefix}{tail}"
        if e164 not in out and phonenumbers.is_valid_number(phonenumbers.parse(e164)):
            out[e164] = None
    return list(out)


def _shapes(e164: str) -> list[object]:
    num = phonenumbers.parse(e164)
    intl = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    shapes: list[object] = [e164, intl, intl.replace(" ", "-"), "00" + intl[1:], float(e164[1:])]
    if num.country_code == 44:
        shapes.append(phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL))
    return shapes


def _frame(rows: int, distinct: int, seed: int = 11) -> tuple[pd.DataFrame, list[str]]:
    """``rows`` cells: ~4 % junk, ~2 % blanks, the rest numbers in random shapes (every one of
    ``distinct`` numbers at least once); an ``id`` column the library must leave alone.
    Returns the frame and the numbers (E.164)."""
    rng = np.random.default_rng(seed)
    numbers = _distinct_numbers(distinct, rng)
    n_junk, n_blank = rows * 4 // 100, rows * 2 // 100
    n_numbers = rows - n_junk - n_blank
    picks = np.concatenate([np.arange(distinct), rng.integers(0, distinct, n_numbers - distinct)])
    cells: list[object] = []
    for k in picks:
        shapes = _shapes(numbers[k])
        cells.append(shapes[rng.integers(len(shapes))])
    cells += [_JUNK[i % len(_JUNK)] for i in range(n_junk)]
    cells += [(None, "", "   ", float("nan"))[i % 4] for i in range(n_blank)]
    order = rng.permutation(rows)
    phone = pd.Series([cells[i] for i in order], dtype=object)
    return pd.DataFrame({"id": np.arange(rows), "phone": phone}), numbers


def _client(server: Any) -> HLRClient:
    client = HLRClient(
        token=TOKEN,
        base_url=server.url,
        timeout=(2, 0.5),
        deadline=1.0,
        max_retries=12,  # 25 % of attempts fail: 0.25**13 ≈ 1.5e-8 per number — none runs out
        workers=16,
        backoff_factor=0.005,
        backoff_max=0.05,
        # 5 % random 429s at any rate are no rate limit: the adaptive pace, which takes every
        # 429 as one, would walk down to about one 429 a second (~20/s). It has its own tests
        # (test_adaptive.py) and benchmark (bench_adaptive.py); this one is about the money.
        adaptive=False,
    )
    sleep = client._sleep
    client._sleep = lambda seconds: sleep(min(seconds, 0.05))  # type: ignore[method-assign]
    return client


def _validate(
    frame: pd.DataFrame, client: HLRClient, cache: Any, **options: Any
) -> pd.DataFrame:
    return frame.hlr.validate(
        "phone",
        detailed=DETAILED,
        default_region=REGION,
        client=client,
        cache=cache,
        progress=False,
        **options,
    )


def _charged_delta(before: dict[str, int], after: dict[str, int]) -> Counter[str]:
    return Counter({n: c - before.get(n, 0) for n, c in after.items() if c > before.get(n, 0)})


@dataclasses.dataclass
class _Run:
    """One validate call against the faulty sandbox, with what the accounting needs."""

    name: str
    misses: set[str]  # numbers the cache could not serve when the run started
    temporary_cached: set[str]  # of those, numbers whose cached answer was temporary
    charged: Counter[str]  # sandbox charges during this run
    possibly_charged: frozenset[str]  # the client's own count of ambiguous failures
    failures: dict[str, int]  # the client's failed attempts by kind
    repaired: int
    out: pd.DataFrame | None
    error: BaseException | None


@pytest.mark.soak
def test_soak(make_sandbox: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Thousands of "possibly charged" warnings are expected here; keep the report readable.
    caplog.set_level(logging.ERROR, logger="pd_hlr")
    started = time.monotonic()
    frame, numbers = _frame(ROWS, DISTINCT)
    options = LookupOptions(detailed=DETAILED).key()

    # The keys the library itself derives (junk and blanks have none).
    from pd_hlr.normalize import normalize

    keys = normalize(frame["phone"], default_region=REGION)["hlr_number"]
    valid = set(keys.dropna())
    assert valid == set(numbers)

    sb = make_sandbox(faults=FAULTS, balance=int(0.7 * len(valid)), seed=3)
    cache = HLRCache(tmp_path / "cache")
    with _client(sb) as probe:  # the cache namespace: the API host, as the pipeline derives it
        api = api_namespace(probe)
    runs: list[_Run] = []

    def run(name: str, retry_temporary: Any = "1h") -> _Run:
        # what the cache can serve under this run's retry_temporary (the default, "1h", serves
        # the temporary answers of the runs before: they are minutes old)
        young = None if retry_temporary is True else retry_temporary
        servable = set(cache.get(valid, options, api, temporary_max_age=young).index)
        with_temp = set(cache.get(valid, options, api, include_temporary=True).index)
        before = sb.stats().charged
        client = _client(sb)
        out = error = None
        try:
            out = _validate(frame, client, cache, retry_temporary=retry_temporary)
        except InsufficientBalanceError as exc:
            error = exc
        finally:
            client.close()
        record = _Run(
            name,
            misses=valid - servable,
            temporary_cached=with_temp - servable,
            charged=_charged_delta(before, sb.stats().charged),
            possibly_charged=client.stats.possibly_charged_numbers,
            failures=client.stats.failures,
            repaired=client.stats.repaired,
            out=out,
            error=error,
        )
        runs.append(record)
        return record

    # Run 1: the balance runs out at 70 %. The process must not crash: the error carries the
    # partial frame, and every answer paid for so far is in the cache.
    first = run("first (balance runs out)")
    assert isinstance(first.error, InsufficientBalanceError), "the balance should have run out"
    partial = first.error.partial
    assert len(partial) == ROWS and partial["id"].tolist() == frame["id"].tolist()
    answered = partial["hlr_source"].eq("api")
    stopped = partial["hlr_error"].str.startswith("not looked up", na=False)
    assert answered.any() and stopped.any()
    in_cache = cache.get(valid, options, api, include_temporary=True).index
    assert set(partial.loc[answered, "hlr_number"]) <= set(in_cache)

    # Run 2: top up (enough for the rest and the retries), same cache.
    sb.configure(balance=len(valid))
    second = run("second (topped up)")
    assert second.error is None, f"second run stopped: {second.error!r}"

    # Run 3: three knobs change an *answer* rather than a transport outcome, two make a billed
    # answer unusable. A forced TARGET_CARRIER_OVERLOAD answer is a real, charged reply and is
    # what the vendor would have said at that moment; run 2 served the temporary outcomes of
    # run 1 (the default retry_temporary="1h": they are minutes old), run 3 passes
    # retry_temporary=True to look them up again (plus the ~2 % of numbers whose *natural*
    # answer is temporary, which come back identical). An answer for another number, without
    # its `to` or with a NaN was never cached (and never retried in its run), so it is looked
    # up again too. A cut surrogate was repaired and kept (it was paid for). Every other fault
    # stays on. After it, the frame must equal the fault-free run value for value: no answer
    # lost, none corrupted by a truncation, a hostile body or a retry, junk untouched.
    sb.configure(faults=dataclasses.replace(FAULTS, **dict.fromkeys(ANSWER_CHANGING, 0.0)))
    third = run("third (answer-changing knobs off)", retry_temporary=True)
    assert third.error is None, f"third run stopped: {third.error!r}"
    final = third.out
    assert final is not None

    # The reference: a fault-free sandbox, no cache.
    ref_sb = make_sandbox()
    with HLRClient(token=TOKEN, base_url=ref_sb.url, workers=16) as ref_client:
        reference = _validate(frame, ref_client, cache=False)

    stats = sb.stats()

    # Every fault actually fired, and the 402 happened.
    for fault, _ in FAULTS.active:
        assert stats.fault_counts.get(fault, 0) > 0, (fault, stats.fault_counts)
    assert stats.status_counts.get(402, 0) > 0
    kinds = set().union(*(r.failures for r in runs))
    expected = {"server_error", "throttled", "connection_lost", "timeout", "malformed"}
    assert kinds >= expected | {"too_large", "wrong_number", "incomplete_result"}, kinds
    assert sum(r.repaired for r in runs) > 0

    # Every valid distinct number ends with a result (api or cache, no error).
    looked = final["hlr_number"].notna()
    assert set(final.loc[looked, "hlr_number"]) == valid
    assert final.loc[looked, "hlr_source"].isin(["api", "cache"]).all(), final.loc[
        looked & ~final["hlr_source"].isin(["api", "cache"]), ["hlr_number", "hlr_error"]
    ]
    assert final.loc[looked, "hlr_error"].isna().all()
    assert final.loc[looked, "to"].notna().all()

    # Junk was never sent: the sandbox only ever heard of the library's own keys.
    assert set(stats.received) <= valid
    assert set(ref_sb.stats().received) <= valid

    # Charges. Within one run a number is charged more than once only after an ambiguous
    # failure the client counted (read timeout, connection lost after sending, cut-off body).
    # Across runs a number is paid again only when the cache could not serve it: its cached
    # answer was temporary (retry_temporary's purpose), or it had none because the answer
    # it paid for was lost to such an ambiguous failure before the 402 stopped the run.
    assert sum(r.charged.total() for r in runs) == stats.total_charged
    ever_possibly = frozenset().union(*(r.possibly_charged for r in runs))
    for i, r in enumerate(runs):
        assert set(r.charged) <= r.misses, (r.name, sorted(set(r.charged) - r.misses)[:5])
        twice = {n for n, c in r.charged.items() if c > 1}
        unexplained = twice - r.possibly_charged
        assert not unexplained, (r.name, sorted(unexplained)[:5])
        paid_before = set().union(*(set(p.charged) for p in runs[:i]))
        again = set(r.charged) & paid_before
        earlier_possibly = frozenset().union(*(p.possibly_charged for p in runs[:i]))
        unexplained = again - r.temporary_cached - earlier_possibly
        assert not unexplained, (r.name, sorted(unexplained)[:5])
    assert stats.total_charged >= len(valid)
    overcharged = {n for n, c in stats.charged.items() if c > 1}
    assert overcharged <= ever_possibly | set().union(*(r.temporary_cached for r in runs))

    # The token a gateway echoed into answers is nowhere: not in the frame, not on disk.
    assert TOKEN not in final.to_json(date_format="iso") and TOKEN not in final.to_html()
    cache.compact()
    for path in (tmp_path / "cache").iterdir():
        assert TOKEN.encode() not in path.read_bytes(), path
    stored = cache.to_frame().astype(str)
    assert not any(stored[c].str.contains(TOKEN, regex=False).any() for c in stored.columns)

    # Value for value against the fault-free run (only provenance columns may differ), but for
    # the network names a cut surrogate spoiled (the sandbox's own surrogate-faulted answers,
    # repaired to U+FFFD) and the answers a gateway echoed the header into (the name and the
    # extra field, with the token scrubbed): nothing else differs in their rows.
    ignore = ["hlr_source", "hlr_checked_at"]
    name = "original_network_name"
    repaired = final[name].str.contains("\ufffd", regex=False, na=False)
    surrogate_faulted = {r.phone for r in sb.log() if "surrogate" in r.faults and r.charged}
    assert set(final.loc[repaired, "hlr_number"]) <= surrogate_faulted
    assert final.loc[repaired, name].eq("Vodafone \ufffd").all()
    echoed = final[name].str.endswith(" [Bearer ***]", na=False)
    echo_faulted = {r.phone for r in sb.log() if "echo_token" in r.faults and r.charged}
    assert echoed.any() and set(final.loc[echoed, "hlr_number"]) <= echo_faulted
    assert final.loc[echoed, "hlr_extra"].str.contains("Bearer ***", regex=False).all()
    spoiled = repaired | echoed
    pd.testing.assert_frame_equal(
        final.drop(columns=[*ignore, name, "hlr_extra"]),
        reference.drop(columns=[*ignore, name, "hlr_extra"]),
    )
    for col in (name, "hlr_extra"):
        pd.testing.assert_series_equal(final.loc[~spoiled, col], reference.loc[~spoiled, col])
    assert reference["hlr_source"].isin(["api", "invalid", "missing"]).all()
    assert (final["hlr_source"].isna() == reference["hlr_source"].isna()).all()

    elapsed = time.monotonic() - started
    twice_in_all = {n: c for n, c in stats.charged.items() if c > 1}
    print(
        f"\nsoak: {elapsed:.1f}s; sandbox requests {stats.requests:,}, charged "
        f"{stats.total_charged:,} for {len(valid):,} numbers; paid more than once: "
        f"{len(twice_in_all):,} numbers ({sum(twice_in_all.values()) - len(twice_in_all):,} "
        f"extra charges; temporary re-looked-up "
        f"{len(set().union(*(r.temporary_cached for r in runs))):,}, possibly charged "
        f"{len(ever_possibly):,}); faults {stats.fault_counts}; "
        f"statuses {dict(sorted(stats.status_counts.items()))}; "
        + "; ".join(
            f"{r.name}: misses {len(r.misses):,}, charged {r.charged.total():,}, "
            f"possibly charged {len(r.possibly_charged):,}"
            for r in runs
        )
    )
