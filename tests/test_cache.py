"""The parquet cache through the pipeline: never pay twice, serve what was paid, lose nothing.

Every test asserts against the sandbox's charge ledger or the cache's own public readers; no
test writes the journal format by hand (entries go through :class:`CacheWriter` and
:meth:`Entry.to_line`). Process-level faults (kill -9, Ctrl-C, shared folders) live in
``test_cache_processes.py``; hostile entries, compaction faults and the write sequence in
``test_cache_hardening.py``.
"""

from __future__ import annotations

import stat
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pd_hlr
from pd_hlr import sandbox, schema
from pd_hlr.cache import CACHE_SCHEMA, CacheWriter, Entry, HLRCache, compaction

from .conftest import TOKEN

OPTS = pd_hlr.LookupOptions().key()
API = "127.0.0.1"


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+4474{i:08d}" for i in range(start, start + n)]


def temporary(nums: list[str], **options) -> set[str]:
    """The numbers whose sandbox answer is a temporary outcome (looked up again every run)."""
    detailed = options.get("detailed", False)
    flat = schema.flatten([sandbox.answer(n, **options) for n in nums], detailed)
    return {n for n, t in zip(nums, schema.is_temporary(flat), strict=True) if t}


def run(df, server, cache, **kw):
    client = pd_hlr.HLRClient(token=TOKEN, base_url=server.url, workers=kw.pop("workers", 8))
    try:
        return df.hlr.validate("phone", client=client, cache=cache, progress=False, **kw)
    finally:
        client.close()


def entry(number: str, to: str, when: datetime | None = None, **result) -> Entry:
    result = {"to": to, "status": "Live", "live": True, **result}
    return Entry(number, OPTS, API, result, when or datetime.now(UTC))


def test_second_run_is_free_and_served_from_cache(sb, tmp_path):
    df = pd.DataFrame({"phone": numbers(50) + numbers(10)})
    first = run(df, sb, tmp_path / "c", detailed=True, route="detailed")
    assert sb.stats().requests == 50
    second = run(df, sb, tmp_path / "c", detailed=True, route="detailed")
    # zero new requests: temporary outcomes too are served while younger than retry_temporary
    assert sb.stats().requests == 50
    assert (second["hlr_source"] == "cache").all()
    cols = [c for c in schema.output_columns(True) if c != "hlr_source"]
    pd.testing.assert_frame_equal(first[cols], second[cols])
    # retry_temporary=True looks the temporary outcomes up again at once
    third = run(df, sb, tmp_path / "c", detailed=True, route="detailed", retry_temporary=True)
    temporary_ = schema.is_temporary(first).to_numpy()
    n_temporary = first.loc[temporary_, "hlr_number"].nunique()
    assert 0 < n_temporary < 10  # the sandbox's natural share of temporary answers
    assert sb.stats().requests == 50 + n_temporary
    assert (third["hlr_source"][temporary_] == "api").all()
    assert (third["hlr_source"][~temporary_] == "cache").all()
    stable = ~temporary_
    pd.testing.assert_frame_equal(first.loc[stable, cols], third.loc[stable, cols])


def test_only_new_numbers_are_requested(sb, tmp_path):
    run(pd.DataFrame({"phone": numbers(70)}), sb, tmp_path / "c")
    sb.reset_stats()
    df = pd.DataFrame({"phone": numbers(100)})  # 30% new
    out = run(df, sb, tmp_path / "c")
    retried = temporary(numbers(70))
    assert set(sb.stats().received) == set(numbers(30, start=70)) | retried
    assert (
        out["hlr_source"].iloc[:70][~out["hlr_number"].iloc[:70].isin(retried)] == "cache"
    ).all()
    assert (out["hlr_source"].iloc[70:] == "api").all()


def test_options_are_part_of_the_key(sb, tmp_path):
    df = pd.DataFrame({"phone": numbers(5)})
    run(df, sb, tmp_path / "c")
    run(df, sb, tmp_path / "c", detailed=True)
    run(df, sb, tmp_path / "c", detailed=True, roaming=True)
    assert sb.stats().requests == 15
    run(df, sb, tmp_path / "c", detailed=True)
    assert sb.stats().requests == 15


def test_max_age_and_refresh(sb, tmp_path):
    df = pd.DataFrame({"phone": numbers(10)})
    run(df, sb, tmp_path / "c")
    run(df, sb, tmp_path / "c", max_age="1D")
    assert sb.stats().requests == 10
    time.sleep(0.01)
    out = run(df, sb, tmp_path / "c", max_age="1ms")
    assert sb.stats().requests == 20
    assert (out["hlr_source"] == "api").all()
    run(df, sb, tmp_path / "c", refresh=True)
    assert sb.stats().requests == 30
    run(df, sb, tmp_path / "c")
    assert sb.stats().requests == 30


def test_temporary_outcomes_are_looked_up_again(make_sandbox, tmp_path):
    server = make_sandbox(faults=sandbox.Faults(temporary=1.0))
    df = pd.DataFrame({"phone": numbers(20)})
    first = run(df, server, tmp_path / "c", detailed=True)
    assert schema.is_temporary(first).all()
    server.configure(faults=sandbox.Faults())
    run(df, server, tmp_path / "c", detailed=True)  # the default: minutes old, served
    assert server.stats().requests == 20
    run(df, server, tmp_path / "c", detailed=True, retry_temporary=True)
    assert server.stats().requests == 40
    third = run(df, server, tmp_path / "c", detailed=True, retry_temporary="0s")
    permanent = ~schema.is_temporary(third)
    assert server.stats().requests == 40 + int((~permanent).sum())


def test_402_then_top_up_pays_each_number_exactly_once(make_sandbox, tmp_path):
    server = make_sandbox(balance=30)
    df = pd.DataFrame({"phone": numbers(100)})
    with pytest.raises(pd_hlr.InsufficientBalanceError) as info:
        run(df, server, tmp_path / "c", workers=4)
    assert (info.value.partial["hlr_source"] == "api").sum() == 30
    server.configure(balance=1000)
    out = run(df, server, tmp_path / "c", workers=4)
    charged = server.stats().charged
    assert set(charged) == set(numbers(100))
    assert set(charged.values()) == {1}
    assert (out["hlr_source"] == "cache").sum() == 30


def test_cache_files_hold_no_token_and_are_user_only(sb, tmp_path):
    folder = tmp_path / "c"
    run(pd.DataFrame({"phone": numbers(5)}), sb, folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = list(folder.iterdir())
    assert files
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        assert TOKEN.encode() not in f.read_bytes()


def test_corrupt_part_is_skipped_with_a_warning_and_quarantined_by_compaction(tmp_path):
    cache = HLRCache(tmp_path / "c")
    with cache.writer() as w:
        w.add(entry("+447400000001", "+447400000001"))
    good = next((tmp_path / "c").glob("part-*.parquet"))
    bad = tmp_path / "c" / "part-s00000000000000000009-n1-deadbeef0000.parquet"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated by a power cut
    with pytest.warns(RuntimeWarning, match=bad.name):
        hits = cache.get(["+447400000001"], OPTS, API)
    assert hits.index.tolist() == ["+447400000001"]
    with pytest.warns(RuntimeWarning, match="moved aside to .*quarantine-" + bad.name):
        cache.compact()
    assert not bad.exists() and (tmp_path / "c" / f"quarantine-{bad.name}").exists()
    assert cache.stats()["entries"] == 1 and cache.stats()["quarantined"] == 1


def test_an_open_writer_s_journal_is_read_and_a_line_cut_short_is_ignored(tmp_path):
    cache = HLRCache(tmp_path / "c", flush_every=100)
    w = CacheWriter(cache)
    try:
        w.add(entry("+447400000002", "first"))
        w.add(entry("+447400000003", "second"))
        journal = next((tmp_path / "c").glob("journal-*.jsonl"))
        data = journal.read_bytes()
        # another reader sees both; then a crash cuts the last line short
        assert set(cache.get(numbers(2, 2), OPTS, API).index) == set(numbers(2, 2))
        journal.write_bytes(data[:-20])
        assert cache.get(numbers(2, 2), OPTS, API).index.tolist() == ["+447400000002"]
    finally:
        w._journal.close()  # the process "dies": its journal is an orphan now
        w._journal = None
    with cache.writer():  # the next writer folds the orphan (the torn line kept aside quietly)
        pass
    assert not list((tmp_path / "c").glob("journal-*")) and cache.stats()["entries"] == 1
    assert [q.read_bytes() for q in (tmp_path / "c").glob("quarantine-*")] == [
        data[:-20].split(b"\n")[-1] + b"\n"
    ]


def test_older_parts_with_fewer_columns_still_load(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    old_schema = pa.schema(
        [CACHE_SCHEMA.field(n) for n in ("number", "options", "api", "checked_at", "to", "live")]
    )
    table = pa.table(
        {
            "number": ["+447400000004"],
            "options": [OPTS],
            "api": [API],
            "checked_at": [datetime.now(UTC)],
            "to": ["+447400000004"],
            "live": [True],
        },
        schema=old_schema,
    )
    pq.write_table(table, folder / "part-20240101T000000000000-1-abc.parquet")
    hits = HLRCache(folder).get(["+447400000004"], OPTS, API)
    assert hits["live"].tolist() == [True]
    assert hits["dead"].isna().all()
    # an answer written now outranks it, whatever its clock said
    with HLRCache(folder).writer() as w:
        w.add(entry("+447400000004", "newer", datetime(2000, 1, 1, tzinfo=UTC)))
    assert HLRCache(folder).get(["+447400000004"], OPTS, API)["to"].tolist() == ["newer"]


def test_default_cache_folder_comes_from_the_environment(sb, tmp_path, monkeypatch):
    monkeypatch.setenv("PD_HLR_CACHE", str(tmp_path / "env-cache"))
    run(pd.DataFrame({"phone": numbers(3)}), sb, None)
    assert HLRCache(tmp_path / "env-cache").stats()["entries"] == 3
    run(pd.DataFrame({"phone": numbers(3)}), sb, False)
    assert sb.stats().requests == 6  # cache=False neither reads nor writes


@pytest.mark.parametrize("memo", [True, False])
def test_get_is_the_same_with_or_without_the_memo_and_column_subsets(tmp_path, memo):
    folder = tmp_path / "c"
    t0 = datetime.now(UTC) - timedelta(hours=2)
    writer_cache = HLRCache(folder, compact=False)
    with writer_cache.writer() as w:  # part 1: old answers
        for i in range(5):
            w.add(entry(f"+44740000001{i}", f"old{i}", t0))
    with writer_cache.writer() as w:  # part 2: newer answers for two of them, one temporary
        w.add(entry("+447400000010", "new0", t0 + timedelta(hours=1)))
        w.add(
            Entry(
                "+447400000011",
                OPTS,
                API,
                {"to": "tmp", "live": False, "dead": False, "outOfNetwork": False},
                t0 + timedelta(hours=1),
            )
        )
    # a live writer's journal (not folded yet) with the newest answer for a third number
    live = CacheWriter(HLRCache(folder, flush_every=100))
    try:
        live.add(entry("+447400000012", "journal"))
        cache = HLRCache(folder, memo=memo)
        wanted = [f"+44740000001{i}" for i in range(5)] + ["+449999999999"]
        hits = cache.get(wanted, OPTS, API).sort_index()
        # newest wins; the newest answer of ...11 is temporary, so it is not served at all
        assert hits["to"].to_dict() == {
            "+447400000010": "new0",
            "+447400000012": "journal",
            "+447400000013": "old3",
            "+447400000014": "old4",
        }
        fresh = cache.get(wanted, OPTS, API, max_age="1h").index.tolist()
        assert fresh == ["+447400000012"]
        lean = cache.get(wanted, OPTS, API, columns=["to", "live"]).sort_index()
        assert list(lean.columns) == ["hlr_checked_at", "to", "live", "hlr_extra"]
        pd.testing.assert_frame_equal(lean[["to", "live"]], hits[["to", "live"]])
        again = cache.get(wanted, OPTS, API).sort_index()  # a second read (the memo's)
        pd.testing.assert_frame_equal(again, hits)
    finally:
        live.close()


def test_runs_compact_size_tiered_and_stats_report_it(sb, tmp_path, monkeypatch):
    monkeypatch.setattr(compaction, "TIER_BASE", 40)
    folder = tmp_path / "c"
    cache = HLRCache(folder, flush_every=10)
    assert cache.stats()["last_compaction"] is None
    for i in range(12):  # 12 runs of 30 new numbers: 3 parts each before compaction
        run(pd.DataFrame({"phone": numbers(30, start=30 * i)}), sb, cache, workers=2)
        parts = cache.stats()["parts"]
        entries = 30 * (i + 1)
        # at most FANOUT - 1 parts per tier, tiers logarithmic in the entries
        tiers = 1 + max(0, compaction.tier(entries))
        assert parts <= (compaction.FANOUT - 1) * tiers, (i, parts)
    stats = cache.stats()
    assert stats["entries"] == 360 and stats["stored_rows"] == 360
    assert stats["last_compaction"] is not None
    sb.reset_stats()
    out = run(pd.DataFrame({"phone": numbers(360)}), sb, cache, retry_temporary=True)
    retried = temporary(numbers(360))
    assert set(sb.stats().received) == retried  # nothing lost by merging
    assert (out["hlr_source"] == "cache").sum() == 360 - len(retried)


def test_compact_merges_into_one_part_and_keeps_the_newest(tmp_path):
    cache = HLRCache(tmp_path / "c", compact=False)
    with cache.writer() as w:
        w.add(entry("+447400000003", "old", datetime.now(UTC) + timedelta(days=1)))
    with cache.writer() as w:  # written later, by a machine whose clock is a day behind
        w.add(entry("+447400000003", "new", datetime.now(UTC)))
    assert cache.get(["+447400000003"], OPTS, API)["to"].tolist() == ["new"]
    result = cache.compact()
    assert result == {"parts_before": 2, "entries": 1, "unreadable": 0}
    assert cache.stats()["parts"] == 1 and cache.stats()["last_compaction"] is not None
    assert cache.to_frame()["to"].tolist() == ["new"]
    assert cache.clear() == 1 and cache.stats()["entries"] == 0
