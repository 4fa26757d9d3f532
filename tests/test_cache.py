"""The parquet cache: never pay twice, resume after any interruption, lose nothing."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pd_hlr
from pd_hlr import sandbox, schema
from pd_hlr.cache import CACHE_SCHEMA, Entry, HLRCache

from .conftest import TOKEN

OPTS = pd_hlr.LookupOptions().key()


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


def test_second_run_is_free_and_served_from_cache(sb, tmp_path):
    df = pd.DataFrame({"phone": numbers(50) + numbers(10)})
    first = run(df, sb, tmp_path / "c", detailed=True, route="detailed")
    assert sb.stats().requests == 50
    second = run(df, sb, tmp_path / "c", detailed=True, route="detailed")
    # zero new requests, except for temporary outcomes, which are looked up again
    temporary = schema.is_temporary(first).to_numpy()
    n_temporary = first.loc[temporary, "hlr_number"].nunique()
    assert 0 < n_temporary < 10  # the sandbox's natural share of temporary answers
    assert sb.stats().requests == 50 + n_temporary
    assert (second["hlr_source"][temporary] == "api").all()
    assert (second["hlr_source"][~temporary] == "cache").all()
    cols = [c for c in schema.output_columns(True) if c != "hlr_source"]
    stable = ~temporary
    pd.testing.assert_frame_equal(first.loc[stable, cols], second.loc[stable, cols])


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
    run(df, server, tmp_path / "c", detailed=True)
    assert server.stats().requests == 40
    third = run(df, server, tmp_path / "c", detailed=True)
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
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        assert TOKEN.encode() not in f.read_bytes()


def _entry(number: str, to: str, when: datetime) -> Entry:
    return Entry(number, OPTS, "127.0.0.1", {"to": to, "status": "Live", "live": True}, when)


def test_corrupt_part_is_skipped_with_a_warning(tmp_path):
    cache = HLRCache(tmp_path / "c")
    with cache.writer() as w:
        w.add(_entry("+447400000001", "+447400000001", datetime.now(UTC)))
    bad = tmp_path / "c" / "part-00000000T000000000000-1-deadbeef.parquet"
    good = next((tmp_path / "c").glob("part-*.parquet"))
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated by a power cut
    with pytest.warns(RuntimeWarning, match=bad.name):
        hits = cache.get(["+447400000001"], OPTS, "127.0.0.1")
    assert hits.index.tolist() == ["+447400000001"]


def test_journal_replay_ignores_a_line_cut_short(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    line = {
        "n": "+447400000002",
        "o": OPTS,
        "a": "127.0.0.1",
        "t": datetime.now(UTC).isoformat(),
        "r": {"to": "+447400000002", "live": True},
    }
    text = json.dumps(line) + "\n" + json.dumps(line)[:40]  # the kill cut the last line
    (folder / "journal-99999-abc.jsonl").write_text(text)
    cache = HLRCache(folder)
    assert cache.get(["+447400000002"], OPTS, "127.0.0.1").index.tolist() == ["+447400000002"]
    # a writer folds the orphan journal (no process holds its lock) into a part
    with cache.writer():
        pass
    assert not list(folder.glob("journal-*")) and list(folder.glob("part-*"))
    assert cache.stats()["entries"] == 1


def test_newest_entry_wins_and_compact_keeps_it(tmp_path):
    cache = HLRCache(tmp_path / "c")
    t0 = datetime.now(UTC) - timedelta(hours=1)
    with cache.writer() as w:
        w.add(_entry("+447400000003", "new", t0 + timedelta(minutes=5)))
    with cache.writer() as w:
        w.add(_entry("+447400000003", "old", t0))
    assert cache.get(["+447400000003"], OPTS, "127.0.0.1")["to"].tolist() == ["new"]
    result = cache.compact()
    assert result == {"parts_before": 2, "entries": 1}
    assert len(list((tmp_path / "c").glob("part-*"))) == 1
    assert cache.to_frame()["to"].tolist() == ["new"]
    assert cache.clear() == 1 and cache.stats()["entries"] == 0


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
            "api": ["127.0.0.1"],
            "checked_at": [datetime.now(UTC)],
            "to": ["+447400000004"],
            "live": [True],
        },
        schema=old_schema,
    )
    pq.write_table(table, folder / "part-old.parquet")
    hits = HLRCache(folder).get(["+447400000004"], OPTS, "127.0.0.1")
    assert hits["live"].tolist() == [True]
    assert hits["dead"].isna().all()


def test_default_cache_folder_comes_from_the_environment(sb, tmp_path, monkeypatch):
    monkeypatch.setenv("PD_HLR_CACHE", str(tmp_path / "env-cache"))
    run(pd.DataFrame({"phone": numbers(3)}), sb, None)
    assert HLRCache(tmp_path / "env-cache").stats()["entries"] == 3
    run(pd.DataFrame({"phone": numbers(3)}), sb, False)
    assert sb.stats().requests == 6  # cache=False neither reads nor writes


CHILD = textwrap.dedent(
    """
    import os, sys
    import pandas as pd
    import pd_hlr
    numbers = open(sys.argv[1]).read().split()
    client = pd_hlr.HLRClient(token=os.environ["T"], base_url=os.environ["URL"], workers=4)
    pd.DataFrame({"phone": numbers}).hlr.validate(
        "phone", client=client, cache=sys.argv[2], progress=False)
    """
)


def _child(tmp_path: Path, numbers_: list[str], server, name: str = "n") -> subprocess.Popen:
    """A separate process validating ``numbers_`` into the cache folder ``tmp_path / "c"``."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    nums = tmp_path / f"{name}.txt"
    nums.write_text("\n".join(numbers_))
    env = {**os.environ, "T": TOKEN, "URL": server.url}
    cmd = [sys.executable, str(script), str(nums), str(tmp_path / "c")]
    return subprocess.Popen(cmd, env=env)


def _interrupt_after(proc: subprocess.Popen, server, charged: int, sig: int) -> None:
    """Send ``sig`` to ``proc`` once the sandbox has charged ``charged`` lookups."""
    deadline = time.monotonic() + 30
    while server.stats().total_charged < charged and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)


@pytest.mark.slow
def test_sigkill_mid_run_pays_again_only_for_in_flight(make_sandbox, tmp_path):
    server = make_sandbox(latency=0.02)
    all_numbers = numbers(400)
    proc = _child(tmp_path, all_numbers, server)
    _interrupt_after(proc, server, 120, signal.SIGKILL)
    proc.wait()
    paid_before = server.stats().total_charged
    assert 120 <= paid_before < 400
    out = run(pd.DataFrame({"phone": all_numbers}), server, tmp_path / "c", workers=4)
    charged = server.stats().charged
    retried = temporary(all_numbers)  # temporary answers are looked up again by design
    twice = [n for n, c in charged.items() if c > 1 and n not in retried]
    assert len(twice) <= 4, twice  # at most the in-flight requests of the killed run
    assert set(charged) == set(all_numbers)
    assert (out["hlr_source"] == "cache").sum() >= paid_before - 4 - len(retried)


@pytest.mark.slow
def test_two_processes_writing_one_cache_lose_nothing(make_sandbox, tmp_path):
    server = make_sandbox(latency=0.005)
    procs = [
        _child(tmp_path, numbers(150), server, "a"),
        _child(tmp_path, numbers(150, start=100), server, "b"),  # 50 overlap
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    before = server.stats().requests
    out = run(pd.DataFrame({"phone": numbers(250)}), server, tmp_path / "c")
    retried = temporary(numbers(250))
    assert server.stats().requests == before + len(retried)
    assert set(server.stats().received) >= retried
    assert (out.loc[~out["hlr_number"].isin(retried), "hlr_source"] == "cache").all()


@pytest.mark.slow
def test_ctrl_c_mid_run_saves_everything_answered(make_sandbox, tmp_path):
    server = make_sandbox(latency=0.02)
    all_numbers = numbers(400)
    proc = _child(tmp_path, all_numbers, server)
    _interrupt_after(proc, server, 100, signal.SIGINT)
    assert proc.wait(timeout=30) != 0  # KeyboardInterrupt ended the run
    paid = {n for n, c in server.stats().charged.items() if c}
    assert 100 <= len(paid) < 400
    # everything answered before Ctrl-C was folded into a part: no journal is left behind
    assert not list((tmp_path / "c").glob("journal-*"))
    server.reset_stats()
    run(pd.DataFrame({"phone": all_numbers}), server, tmp_path / "c", workers=4)
    # the re-run looks up only the rest (and the temporary outcomes, by design)
    assert set(server.stats().received) == (set(all_numbers) - paid) | (
        paid & temporary(sorted(paid))
    )


@pytest.mark.parametrize("memo", [True, False])
def test_get_is_the_same_with_or_without_the_memo_and_column_subsets(tmp_path, memo):
    folder = tmp_path / "c"
    t0 = datetime.now(UTC) - timedelta(hours=2)
    writer_cache = HLRCache(folder)
    with writer_cache.writer() as w:  # part 1: old answers
        for i in range(5):
            w.add(_entry(f"+44740000001{i}", f"old{i}", t0))
    with writer_cache.writer() as w:  # part 2: newer answers for two of them, one temporary
        w.add(_entry("+447400000010", "new0", t0 + timedelta(hours=1)))
        w.add(
            Entry(
                "+447400000011",
                OPTS,
                "127.0.0.1",
                {"to": "tmp", "live": False, "dead": False, "outOfNetwork": False},
                t0 + timedelta(hours=1),
            )
        )
    # a journal nobody folded yet (a killed run) with the newest answer for a third number
    line = {
        "n": "+447400000012",
        "o": OPTS,
        "a": "127.0.0.1",
        "t": datetime.now(UTC).isoformat(),
        "r": {"to": "journal", "live": True},
    }
    (folder / "journal-424242-x.jsonl").write_text(json.dumps(line) + "\n")
    cache = HLRCache(folder, memo=memo)
    wanted = [f"+44740000001{i}" for i in range(5)] + ["+449999999999"]
    hits = cache.get(wanted, OPTS, "127.0.0.1").sort_index()
    # newest wins; the newest answer of ...11 is temporary, so it is not served at all
    assert hits["to"].to_dict() == {
        "+447400000010": "new0",
        "+447400000012": "journal",
        "+447400000013": "old3",
        "+447400000014": "old4",
    }
    fresh = cache.get(wanted, OPTS, "127.0.0.1", max_age="1h").index.tolist()
    assert fresh == ["+447400000012"]
    lean = cache.get(wanted, OPTS, "127.0.0.1", columns=["to", "live"]).sort_index()
    assert list(lean.columns) == ["hlr_checked_at", "to", "live", "hlr_extra"]
    pd.testing.assert_frame_equal(lean[["to", "live"]], hits[["to", "live"]])
