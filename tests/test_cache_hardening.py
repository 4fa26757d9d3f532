"""Hostile entries, compaction faults, the write sequence and claims (issue 13, cache rows).

Journals here are written by the cache's own writer (in a process killed by ``kill -9`` when an
orphan is needed) or by :meth:`Entry.to_line`; hostile bytes are then added to them, as a
misbehaving upstream, an older version or a damaged disk would.
"""

from __future__ import annotations

import errno
import json
import shutil
import tempfile
import threading
import warnings
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pd_hlr
from pd_hlr import sandbox
from pd_hlr.cache import BadEntry, ClaimedLookups, Entry, HLRCache
from pd_hlr.cache import lookup as lookup_module
from pd_hlr.cache import parts as parts_module
from pd_hlr.cache.claims import Claims

from .test_cache_processes import HANG, killed_writer

OPTS = pd_hlr.LookupOptions().key()
API = "127.0.0.1"
GOOD = [f"+4474000{i:05d}" for i in range(20)]


def good_entries() -> list[tuple[str, str, str, dict]]:
    return [(n, OPTS, API, sandbox.answer(n)) for n in GOOD]


@pytest.fixture(scope="module")
def orphan(tmp_path_factory) -> Path:
    """A cache folder holding one orphan journal of 20 good answers (its writer was killed)."""
    folder = tmp_path_factory.mktemp("orphan") / "c"
    killed_writer(folder, good_entries())
    assert len(list(folder.glob("journal-*.jsonl"))) == 1
    return folder


def _served(cache: HLRCache) -> dict[str, str]:
    return cache.get(GOOD, OPTS, API, include_temporary=True)["to"].to_dict()


EXPECTED = {n: sandbox.answer(n)["to"] for n in GOOD}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
valid_line = json.loads(Entry("+447499999999", OPTS, API, {"to": "x"}, datetime.now(UTC)).to_line())
# lines that are JSON of the wrong shape: any JSON value, or an entry with one field spoiled
wrong_shape = json_values.map(lambda v: json.dumps(v).encode()) | st.builds(
    lambda key, value: json.dumps({**valid_line, key: value}).encode(),
    st.sampled_from(["n", "o", "a", "t", "r"]),
    json_values.filter(lambda v: not isinstance(v, dict)),
)
hostile = (
    wrong_shape
    | st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b)
    | (
        st.just(b"[" * 5000 + b"]" * 5000)  # nested deeper than the parser's stack
    )
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bad=st.lists(hostile, min_size=1, max_size=4), where=st.integers(0, 20))
def test_hostile_journal_lines_are_quarantined_and_never_block_the_rest(
    orphan, tmp_path_factory, bad, where
):
    folder = tmp_path_factory.mktemp("h") / "c"
    shutil.copytree(orphan, folder)
    journal = next(folder.glob("journal-*.jsonl"))
    lines = journal.read_bytes().split(b"\n")
    lines[where:where] = bad
    journal.write_bytes(b"\n".join(lines))
    cache = HLRCache(folder)
    # every reader works and serves the 20 good answers
    assert _served(cache) == EXPECTED
    assert cache.stats()["entries"] >= 20
    # the next writer folds the orphan: the bad lines go aside, byte for byte, with a warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with cache.writer():
            pass
    moved = [str(w.message) for w in caught if "moved aside" in str(w.message)]
    quarantined = b"".join(q.read_bytes() for q in folder.glob("quarantine-*.jsonl"))
    not_entries = [b for b in bad if b.strip() and not _is_entry(b)]
    assert all(b + b"\n" in quarantined for b in not_entries)
    assert len(moved) == (1 if not_entries else 0)
    assert not moved or "quarantine-" in moved[0]
    assert not list(folder.glob("journal-*"))
    assert _served(cache) == EXPECTED
    cache.compact()
    assert _served(cache) == EXPECTED and cache.stats()["quarantined"] == bool(not_entries)


def _is_entry(line: bytes) -> bool:
    try:
        Entry.from_line(line)
    except BadEntry:
        return False
    return True


def test_a_lone_surrogate_answer_is_stored_repaired_and_the_folder_stays_readable(tmp_path):
    cache = HLRCache(tmp_path / "c")
    with cache.writer() as w:
        w.add(
            Entry(
                "+447400000001",
                OPTS,
                API,
                {"to": "+447400000001", "live": True, "currentNetwork": "O2 \ud83d"},
                datetime.now(UTC),
            )
        )
        w.add(
            Entry(
                "+447400000002",
                OPTS,
                API,
                {"to": "+447400000002", "live": True, "x\udc80": "\ud83d"},
                datetime.now(UTC),
            )
        )
    hits = cache.get(["+447400000001", "+447400000002"], OPTS, API).sort_index()
    assert hits["current_network"].tolist()[0] == "O2 \ufffd"
    assert json.loads(hits["hlr_extra"].iloc[1]) == {"x\ufffd": "\ufffd"}
    assert cache.stats()["entries"] == 2
    assert cache.compact()["entries"] == 2 and len(cache.to_frame()) == 2


def test_an_older_journal_line_with_a_lone_surrogate_is_repaired_on_read(tmp_path):
    # an older pd-hlr journalled the escape as received; Entry.to_line keeps it escaped
    unchecked = Entry("+447400000003", OPTS, API, {"to": "\ud83d", "live": True}, datetime.now(UTC))
    line = unchecked.to_line()
    assert b"\\ud83d" in line
    assert Entry.from_line(line).result["to"] == "\ufffd"


@pytest.mark.parametrize(
    "result",
    [["not", "an", "object"], {"to": object()}, {1: "int key"}, {"deep": [[[[[]]]]] * 1}],
)
def test_an_entry_that_cannot_be_stored_is_quarantined_not_raised(tmp_path, result):
    cache = HLRCache(tmp_path / "c")
    nested = {"to": "x"}
    for _ in range(100):
        nested = {"n": nested}
    bad = Entry(
        "+447400000004",
        OPTS,
        API,
        result if result != {"deep": [[[[[]]]]]} else nested,
        datetime.now(UTC),
    )
    with cache.writer() as w:
        w.add(Entry("+447400000005", OPTS, API, {"to": "ok", "live": True}, datetime.now(UTC)))
        if isinstance(result, dict) and "deep" in result:
            bad = Entry("+447400000004", OPTS, API, nested, datetime.now(UTC))
        with pytest.warns(RuntimeWarning, match="moved aside to .*quarantine-"):
            w.add(bad)
    assert cache.get(["+447400000004", "+447400000005"], OPTS, API).index.tolist() == [
        "+447400000005"
    ]


@pytest.mark.parametrize(
    "fault",
    [MemoryError(), OSError(errno.EIO, "Input/output error"), OSError(errno.EMFILE, "Too many")],
    ids=["MemoryError", "EIO", "EMFILE"],
)
def test_compact_removes_only_the_parts_it_rewrote(tmp_path, monkeypatch, fault):
    cache = HLRCache(tmp_path / "c", compact=False)
    for i in range(3):
        with cache.writer() as w:
            for n in GOOD[5 * i : 5 * i + 5]:
                w.add(Entry(n, OPTS, API, sandbox.answer(n), datetime.now(UTC)))
    parts = sorted((tmp_path / "c").glob("part-*.parquet"))
    assert len(parts) == 3
    victim = parts[1]
    real = pq.read_table

    def read_table(source, *args, **kwargs):  # the disk fails on one part, once
        if Path(str(source)) == victim:
            raise fault
        return real(source, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", read_table)
    with pytest.warns(RuntimeWarning, match=victim.name):
        result = cache.compact()
    assert result["unreadable"] == 1
    assert victim.exists(), "a part that could not be read was deleted"
    monkeypatch.setattr(pq, "read_table", real)
    assert len(list((tmp_path / "c").glob("part-*.parquet"))) == 2
    assert set(cache.get(GOOD[:15], OPTS, API, include_temporary=True).index) == set(GOOD[:15])
    cache.compact()  # the disk is back: now everything is one part
    assert len(list((tmp_path / "c").glob("part-*.parquet"))) == 1
    assert set(cache.get(GOOD[:15], OPTS, API, include_temporary=True).index) == set(GOOD[:15])


def test_newest_is_last_written_not_the_latest_clock(tmp_path):
    cache = HLRCache(tmp_path / "c", compact=False)
    ahead = datetime.now(UTC) + timedelta(days=365)  # a machine whose clock ran ahead
    with cache.writer() as w:
        w.add(Entry("+447400000006", OPTS, API, {"to": "from the fast clock"}, ahead))
    with cache.writer() as w:
        w.add(Entry("+447400000006", OPTS, API, {"to": "later answer"}, datetime.now(UTC)))
    get = lambda: cache.get(["+447400000006"], OPTS, API, include_temporary=True)  # noqa: E731
    assert get()["to"].tolist() == ["later answer"]
    # wall-clock time stays data: max_age judges the served answer by it
    assert get()["hlr_checked_at"].iloc[0] < pd.Timestamp(ahead)
    cache.compact()
    assert get()["to"].tolist() == ["later answer"]
    # a lost sequence file: the next writer resumes above everything in the folder
    (tmp_path / "c" / "seq").unlink()
    with cache.writer() as w:
        w.add(Entry("+447400000006", OPTS, API, {"to": "after the loss"}, ahead))
    assert get()["to"].tolist() == ["after the loss"]
    (tmp_path / "c" / "seq").write_bytes(b"garbage")
    with cache.writer() as w:
        w.add(Entry("+447400000006", OPTS, API, {"to": "after the damage"}, ahead))
    assert get()["to"].tolist() == ["after the damage"]


def test_a_number_another_run_holds_is_waited_for_and_served_temporary_or_not(tmp_path):
    """Two claimants in one process (one claims file each, so they exclude each other as two
    processes do). B waits for A's claim and is served A's answer, even a temporary one, and
    never pays for it."""
    cache = HLRCache(tmp_path / "c")
    temporary = {"to": "+447400000007", "live": False, "dead": False, "outOfNetwork": False}
    a_holds = threading.Event()
    release_a = threading.Event()
    paid_by_b: list[str] = []

    def a_lookup(batch: list[str]) -> None:
        a_holds.set()
        assert release_a.wait(60)
        with cache.writer() as w:
            for n in batch:
                w.add(
                    Entry(
                        n, OPTS, API, temporary if n.endswith("7") else {"to": n}, datetime.now(UTC)
                    )
                )

    since = cache.sequence()
    a = ClaimedLookups(cache, OPTS, API, since=since)
    b = ClaimedLookups(cache, OPTS, API, since=since, poll=0.01)
    t = threading.Thread(target=a.run, args=(["+447400000007", "+447400000008"], a_lookup))
    t.start()
    assert a_holds.wait(60)
    tb = threading.Thread(
        target=b.run,
        args=(["+447400000007", "+447400000008", "+447400000009"], paid_by_b.extend),
    )
    tb.start()
    release_a.set()
    t.join(60)
    tb.join(60)
    assert not t.is_alive() and not tb.is_alive()
    assert paid_by_b == ["+447400000009"]  # only what nobody else held
    served = b.served()
    assert served is not None and set(served.index) == {"+447400000007", "+447400000008"}
    assert not list((tmp_path / "c").glob("claims-*"))


def test_claims_of_the_same_number_under_other_options_do_not_conflict(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    with Claims(folder, OPTS, API) as one, Claims(folder, "detailed=1", API) as two:
        assert one.claim(["+447400000010"]) == (["+447400000010"], [])
        assert two.claim(["+447400000010"]) == (["+447400000010"], [])
        with Claims(folder, OPTS, API) as three:
            assert three.claim(["+447400000010", "+447400000011"]) == (
                ["+447400000011"],
                ["+447400000010"],
            )
            one.release()
            assert three.held(["+447400000010"]) == []


@settings(max_examples=60, deadline=None)
@given(
    number=st.text(min_size=1),
    result=st.dictionaries(st.text(), json_values, max_size=4),
    seq=st.none() | st.integers(0, 2**62),
)
def test_an_entry_survives_its_journal_line(number, result, seq):
    e = Entry(number, OPTS, API, result, datetime(2024, 5, 1, 12, tzinfo=UTC), seq).checked()
    back = Entry.from_line(e.to_line())
    assert back == e
    assert e.to_line().isascii() and e.to_line().count(b"\n") == 1


DETAILED = pd_hlr.LookupOptions(detailed=True).key()


@settings(max_examples=40, deadline=None)
@given(
    runs=st.lists(
        st.lists(st.tuples(st.integers(0, 30), st.sampled_from([OPTS, DETAILED])), max_size=25),
        min_size=1,
        max_size=5,
    ),
    asked=st.sets(st.integers(0, 35), min_size=1),
    memo=st.booleans(),
    compact=st.booleans(),
)
def test_a_lookup_serves_the_last_written_answer_of_each_number(runs, asked, memo, compact):
    """Whatever the history (runs, parts, tiny row groups, mixed options in one part, a
    compaction or not), a lookup serves exactly the last answer written per number and key."""
    truth: dict[tuple[str, str], str] = {}

    def num(i: int) -> str:  # E.164 keys, and keys sent as cleaned text (msisdn=False)
        return f"+4474000{i:05d}" if i < 25 else f"04474000{i:05d}"

    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(parts_module, "ROW_GROUP_ROWS", 3)
        mp.setattr(lookup_module, "_GROUPS_PER_READ", 2)
        cache = HLRCache(Path(tmp) / "c", flush_every=4, compact=compact, memo=memo)
        k = 0
        for ops in runs:
            with cache.writer() as w:
                for i, options in ops:
                    k += 1
                    number = num(i)
                    w.add(
                        Entry(
                            number,
                            options,
                            API,
                            {"to": f"v{k}", "live": True},
                            datetime(2024, 1, 1, tzinfo=UTC),
                        )
                    )
                    truth[(number, options)] = f"v{k}"
            cache.get([num(i) for i in asked], OPTS, API)  # the memo, mid-history
        wanted = [num(i) for i in sorted(asked)]
        for options in (OPTS, DETAILED):
            got = cache.get(wanted, options, API)["to"].to_dict()
            assert got == {n: truth[(n, options)] for n in wanted if (n, options) in truth}


# --- the sequence a run starts from covers what is stored (review: synced parts, lost seq) ---
NUMBERS_20 = [f"+4474001234{i:02d}" for i in range(20)]


def _validate(numbers: list[str], client, cache: Path, **options) -> pd.DataFrame:
    frame = pd.DataFrame({"phone": numbers})
    return frame.hlr.validate("phone", client=client, cache=str(cache), progress=False, **options)


def test_parts_synced_in_from_another_folder_are_not_taken_for_this_runs_answers(
    sb, client_for, tmp_path
):
    """The README's team workflow copies part files between folders: their write sequence can
    be above the receiving folder's counter. refresh=True must still pay for every number, and
    max_age must still refuse old answers: they were not paid for during this run."""
    client = client_for(sb)
    _validate(NUMBERS_20, client, tmp_path / "A")
    _validate(["+447400999999"], client, tmp_path / "B")
    for part in (tmp_path / "A").glob("part-*.parquet"):
        shutil.copy(part, tmp_path / "B" / part.name)
    assert HLRCache(tmp_path / "B").sequence() >= HLRCache(tmp_path / "A").sequence()
    before = sb.stats().total_charged
    out = _validate(NUMBERS_20, client, tmp_path / "B", refresh=True)
    assert sb.stats().total_charged - before == 20
    assert out["hlr_source"].eq("api").all() and out.hlr.report().looked_up == 20


def test_a_lost_sequence_file_does_not_turn_the_cache_into_this_runs_answers(
    sb, client_for, tmp_path
):
    client = client_for(sb)
    numbers = NUMBERS_20[:10]
    _validate(numbers, client, tmp_path)
    (tmp_path / "seq").unlink()  # e.g. a folder restored from a backup of its part files
    assert HLRCache(tmp_path).sequence() >= 10  # the stored entries' own seq count
    before = sb.stats().total_charged
    out = _validate(numbers, client, tmp_path, refresh=True)
    assert sb.stats().total_charged - before == 10
    assert out["hlr_source"].eq("api").all()


def test_the_sequence_a_reader_takes_waits_for_the_entry_written_under_it(tmp_path):
    """A writer publishes a seq value and journals its entry under the sequence lock; a reader
    taking the sequence meanwhile waits, so it never reads a value whose entry it cannot see
    (it would then neither serve that answer nor wait for it, and pay again)."""
    from pd_hlr.cache.store import CacheWriter

    cache = HLRCache(tmp_path)
    writer = CacheWriter(cache)
    number, opts = "+447400123456", pd_hlr.LookupOptions().key()
    entry = Entry(number, opts, "127.0.0.1", {"to": number, "live": True}, datetime.now(UTC))
    got: list[int] = []
    with writer._seq.advance() as seq:
        reader = threading.Thread(target=lambda: got.append(HLRCache(tmp_path).sequence()))
        reader.start()
        reader.join(0.2)
        assert reader.is_alive() and not got  # blocked while the line is not written yet
        writer._journal.write(replace(entry, seq=seq).checked().to_line())
    reader.join(HANG)
    assert got == [seq]
    assert HLRCache(tmp_path).get([number], opts, "127.0.0.1", since=seq - 1).index.tolist() == [
        number
    ]
    writer.close()


def test_a_claims_file_is_created_and_locked_under_the_claims_lock(tmp_path):
    """Another process judges claims files (alive or dead) only under the claims lock, so a new
    claims file must never be visible unlocked: it would be taken for a dead process's."""
    from pd_hlr.cache.folder import CLAIMS_GLOB, CLAIMS_LOCK, locked

    made: list[Claims] = []
    with locked(tmp_path / CLAIMS_LOCK):
        maker = threading.Thread(target=lambda: made.append(Claims(tmp_path, "o", "a")))
        maker.start()
        maker.join(0.2)
        assert maker.is_alive() and not list(tmp_path.glob(CLAIMS_GLOB))
    maker.join(HANG)
    assert made and made[0].path.exists()
    made[0].close()
