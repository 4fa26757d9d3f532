"""The cache on object storage (``s3://bucket/prefix``), against a real S3 server on 127.0.0.1.

One base suite of cache behaviour (:class:`CacheBehaviour`) runs against both storages, the
local folder and the object store (as requests-cache runs its BaseCacheTest per backend); then
what only the object store has: the server's conditional writes, claims by compare-and-swap
with leases, ownership of a prefix, and real processes sharing one ``s3://`` cache, judged by
the sandbox's charge ledger.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from pd_hlr import cli
from pd_hlr.cache import HLRCache
from pd_hlr.errors import CacheFolderError

from .conftest import TOKEN
from .test_cache import API, OPTS, entry, numbers, run, temporary
from .test_cache_processes import (  # noqa: F401  (the reaper fixture applies here too)
    _SPAWNED,
    _interrupt_after,
    _no_child_outlives_its_test,
)

boto3 = pytest.importorskip("boto3")

from pd_hlr.cache.objects import (  # noqa: E402
    CLAIMS_OBJECT,
    GROUP_SPAN,
    ObjectCache,
    ObjectClaimedLookups,
    ObjectClaims,
    ObjectPart,
    object_kind,
)
from pd_hlr.cache.s3 import S3Store, split_url  # noqa: E402

from . import s3server  # noqa: E402

HANG = 120  # seconds: only a hang takes this long


def _client():
    return boto3.client("s3")


def _keys(url: str, *, empty: bool = True) -> list[str]:
    """The object names under the cache's prefix (``empty=False``: not the emptied ones)."""
    bucket, prefix = split_url(url)
    r = _client().list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    return sorted(
        o["Key"][len(prefix) + 1 :] for o in r.get("Contents", ()) if empty or o["Size"] > 0
    )


# --- the server: does it honour conditional writes? --------------------------------------------
def test_the_server_honours_if_none_match_and_if_match(s3_url):
    store = S3Store(s3_url)
    first = store.create("x.json", b"1")
    assert first is not None
    assert store.create("x.json", b"2") is None  # If-None-Match: * on an existing object
    assert store.get("x.json")[0] == b"1"
    second = store.replace("x.json", b"3", first)
    assert second is not None and second != first
    assert store.replace("x.json", b"4", first) is None  # If-Match on a stale ETag
    assert store.get("x.json") == (b"3", second)


def test_concurrent_creates_of_one_name_have_exactly_one_winner(s3_url):
    """The store serializes conditional writes (a claim is worth nothing otherwise)."""
    store = S3Store(s3_url)

    def race(name: str) -> list[str | None]:
        results: list[str | None] = []
        lock = threading.Lock()
        barrier = threading.Barrier(8)

        def create(i: int) -> None:
            barrier.wait()
            r = store.create(name, str(i).encode())
            with lock:
                results.append(r)

        threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(HANG)
        return results

    for round_ in range(5):
        results = race(f"race-{round_}")
        assert sum(r is not None for r in results) == 1, results


def test_the_test_server_serializes_conditional_writes(monkeypatch):
    """moto checks ``If-None-Match`` / ``If-Match`` and then writes; with the write slowed
    down, eight racing creates of one name would all pass the check. With
    :func:`tests.s3server.atomic_writes` exactly one wins, as on S3 (issue 28's flake: two
    processes both won one compare-and-swap of claims.json and both paid)."""
    import boto3
    from moto.s3.models import S3Backend
    from moto.server import ThreadedMotoServer

    real_put = S3Backend.put_object

    def slow_put(self, *args, **kwargs):
        time.sleep(0.05)  # the window between moto's check and its write, made wide
        return real_put(self, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "put_object", slow_put)
    s3server.atomic_writes()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        bucket = s3server.new_bucket(endpoint)
        creds = s3server._creds()
        clients = [boto3.client("s3", endpoint_url=endpoint, **creds) for _ in range(8)]
        barrier = threading.Barrier(8)
        wins: list[int] = []
        errors: list[str] = []
        tries: list = []

        def create(i: int, round_: int, **condition: str) -> None:
            barrier.wait()
            try:
                # A body of its own per client and round: S3's ETag is the body's MD5, so a
                # round's winner writing the bytes it already wrote would keep the ETag, and
                # one more If-Match on it would rightly win too.
                body = f"{round_}-{i}".encode()
                r = clients[i].put_object(Bucket=bucket, Key="k", Body=body, **condition)
                tries.append((i, r["ResponseMetadata"].get("RetryAttempts")))
            except Exception as exc:  # 412 (or 409): lost the race; anything else is shown
                code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                if code not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    errors.append(repr(exc))
                return
            wins.append(i)

        def race(round_: int, **condition: str) -> list[int]:
            wins.clear()
            threads = [
                threading.Thread(target=create, args=(i, round_), kwargs=condition)
                for i in range(8)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(HANG)
            return list(wins)

        first = race(1, IfNoneMatch="*")
        assert len(first) == 1 and not errors, (first, errors, tries)
        body = clients[0].get_object(Bucket=bucket, Key="k")
        assert body["Body"].read() == f"1-{first[0]}".encode()  # the winner's bytes, kept
        second = race(2, IfMatch=body["ETag"])
        assert len(second) == 1 and not errors, (second, errors)
    finally:
        server.stop()


def test_a_missing_object_is_file_not_found(s3_url):
    store = S3Store(s3_url)
    with pytest.raises(FileNotFoundError):
        store.get("nothing-here")
    store.delete("nothing-here")  # deleting what is gone is no error


# --- one suite of cache behaviour, run against both storages -----------------------------------
class CacheBehaviour:
    """What every storage must do; subclasses say where the cache lives."""

    @pytest.fixture
    def where(self, tmp_path):  # pragma: no cover - overridden
        raise NotImplementedError

    def test_cold_then_warm_pays_once(self, where, make_sandbox):
        server = make_sandbox()
        nums = numbers(40)
        df = pd.DataFrame({"phone": nums})
        cold = run(df, server, where, retry_temporary=False)
        assert (cold["hlr_source"] == "api").all()
        warm = run(df, server, where, retry_temporary=False)
        assert (warm["hlr_source"] == "cache").all()
        assert Counter(server.stats().charged.values()) == {1: 40}
        same = ["hlr_source"]
        pd.testing.assert_frame_equal(cold.drop(columns=same), warm.drop(columns=same))

    def test_an_answer_is_readable_before_the_writer_closes(self, where):
        cache = HLRCache(where)
        with cache.writer() as w:
            w.add(entry("+447400000001", "+447400000001"))
            seen = HLRCache(where).get(["+447400000001"], OPTS, API)  # another reader
            assert seen.index.tolist() == ["+447400000001"]

    def test_since_serves_only_what_was_written_after(self, where):
        cache = HLRCache(where)
        with cache.writer() as w:
            w.add(entry("+447400000001", "+447400000001"))
        mark = cache.sequence()
        with cache.writer() as w:
            w.add(entry("+447400000002", "+447400000002"))
        got = cache.get(["+447400000001", "+447400000002"], OPTS, API, since=mark)
        assert got.index.tolist() == ["+447400000002"]
        assert cache.sequence() > mark

    def test_newest_answer_wins(self, where):
        cache = HLRCache(where)
        with cache.writer() as w:
            w.add(entry("+447400000001", "+447400000001", status="Dead", live=False))
        with cache.writer() as w:
            w.add(entry("+447400000001", "+447400000001", status="Live", live=True))
        assert bool(cache.get(["+447400000001"], OPTS, API)["live"].iloc[0]) is True

    def test_compact_keeps_every_entry_in_one_part(self, where):
        cache = HLRCache(where, compact=False)
        nums = numbers(30)
        for i in range(3):
            with cache.writer() as w:
                for n in nums[10 * i : 10 * i + 10]:
                    w.add(entry(n, n))
        assert cache.stats()["parts"] == 3
        cache.compact()
        stats = cache.stats()
        assert (stats["parts"], stats["entries"], stats["journals"]) == (1, 30, 0)
        assert set(cache.get(nums, OPTS, API).index) == set(nums)

    def test_clear_removes_every_answer(self, where):
        cache = HLRCache(where)
        with cache.writer() as w:
            w.add(entry("+447400000001", "+447400000001"))
        assert cache.clear() >= 1
        assert cache.stats()["entries"] == 0


class TestLocalFolder(CacheBehaviour):
    @pytest.fixture
    def where(self, tmp_path):
        return tmp_path / "c"


class TestObjectStore(CacheBehaviour):
    @pytest.fixture
    def where(self, s3_url):
        return s3_url


# --- what only the object store has ------------------------------------------------------------
def test_hlrcache_of_an_s3_url_is_the_object_cache(s3_url):
    cache = HLRCache(s3_url)
    assert isinstance(cache, ObjectCache) and isinstance(cache, HLRCache)
    assert repr(cache) == f"HLRCache({s3_url!r})"
    assert not isinstance(HLRCache("/tmp/x"), ObjectCache)


def test_an_s3_cache_pickles_with_its_settings(s3_url):
    import pickle

    cache = HLRCache(s3_url, lease=7.0, flush_every=5, memo=False)
    back = pickle.loads(pickle.dumps(cache))
    assert isinstance(back, ObjectCache)
    assert (back.url, back.lease, back.flush_every, back.memo) == (s3_url, 7.0, 5, False)


def test_answers_are_commit_groups_then_one_part(s3_url):
    cache = HLRCache(s3_url, compact=False)
    with cache.writer() as w:
        for n in numbers(5):
            w.add(entry(n, n))
        names = _keys(s3_url)
        groups = [n for n in names if object_kind(n) == "group"]
        assert len(groups) == 5  # one add at a time: one group each, each durable on return
    names = _keys(s3_url)
    assert [object_kind(n) for n in names].count("part") == 1
    assert len([n for n in names if object_kind(n) == "group"]) == 5  # names stay taken
    assert not [n for n in _keys(s3_url, empty=False) if object_kind(n) == "group"]  # emptied
    with cache.writer() as w:
        w.add(entry("+447400000099", "+447400000099"))
    numbers_taken = sorted(n for n in _keys(s3_url) if object_kind(n) == "group")
    assert len(numbers_taken) == 6  # a new number above every folded one, none reused


def test_concurrent_adds_share_commit_groups_and_keep_distinct_sequences(s3_url):
    cache = HLRCache(s3_url, compact=False)
    nums = numbers(64)
    with cache.writer() as w:
        threads = [
            threading.Thread(target=lambda part: [w.add(entry(n, n)) for n in part],
                             args=(nums[i::8],))
            for i in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(HANG)
        groups = [n for n in _keys(s3_url) if object_kind(n) == "group"]
        assert 1 <= len(groups) <= 64
    frame = cache.to_frame()
    assert len(frame) == 64
    assert frame["seq"].is_unique
    assert (frame["seq"] // GROUP_SPAN).nunique() == len(groups)


def test_a_prefix_holding_other_objects_is_refused(s3_url):
    bucket, prefix = split_url(s3_url)
    _client().put_object(Bucket=bucket, Key=f"{prefix}/data.csv", Body=b"a,b\n")
    with pytest.raises(CacheFolderError, match=r"data\.csv"), HLRCache(s3_url).writer():
        pass
    assert _keys(s3_url) == ["data.csv"]  # nothing written


def test_a_prefix_holding_sub_folders_is_refused(s3_url):
    bucket, prefix = split_url(s3_url)
    _client().put_object(Bucket=bucket, Key=f"{prefix}/exports/2024.csv", Body=b"a\n")
    with pytest.raises(CacheFolderError, match="exports/"), HLRCache(s3_url).writer():
        pass


def test_objects_that_are_not_the_cache_s_are_never_touched(s3_url):
    cache = HLRCache(s3_url)
    with cache.writer() as w:
        w.add(entry("+447400000001", "+447400000001"))
    bucket, prefix = split_url(s3_url)
    _client().put_object(Bucket=bucket, Key=f"{prefix}/notes.txt", Body=b"mine")
    cache.compact()
    cache.clear()
    assert "notes.txt" in _keys(s3_url)


def test_claims_are_disjoint_and_given_back(s3_url):
    HLRCache(s3_url)._own(create=True)
    store = S3Store(s3_url)
    a = ObjectClaims(store, OPTS, API, lease=None)
    b = ObjectClaims(store, OPTS, API, lease=None)
    mine_a, _ = a.claim(numbers(10))
    mine_b, others = b.claim(numbers(10, start=5))
    assert mine_a == numbers(10)
    assert mine_b == numbers(5, start=10)
    assert set().union(*(h[2] for h in others.values())) == set(numbers(5, start=5))
    a.release()
    mine_b2, _ = b.claim(numbers(10, start=5))
    assert mine_b2 == numbers(10, start=5)
    a.close()
    b.close()
    assert json.loads(store.get(CLAIMS_OBJECT)[0]) == {"holders": {}}


def test_claims_of_another_key_do_not_conflict(s3_url):
    store = S3Store(s3_url)
    a = ObjectClaims(store, OPTS, API, lease=None)
    b = ObjectClaims(store, OPTS, "other-host", lease=None)
    assert a.claim(numbers(3))[0] == b.claim(numbers(3))[0] == numbers(3)
    a.close()
    b.close()


def test_a_stale_claimer_is_taken_over_after_one_lease_by_the_waiter_s_clock(s3_url):
    """A claimer that never renews (suspended, or killed): the waiter takes its numbers over
    once it has seen no renewal for a whole lease (the longer of its own and the holder's) by
    its own (here injected) clock."""
    cache = HLRCache(s3_url)
    cache._own(create=True)
    stale = ObjectClaims(cache.store, OPTS, API, lease=None)
    stale.claim(numbers(5))
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += max(s, 0.5)

    looked_up: list[str] = []
    claimed = ObjectClaimedLookups(
        cache, OPTS, API, since=cache.sequence(), lease=10.0, sleep=sleep, clock=lambda: now[0]
    )
    claimed.run(numbers(5), looked_up.extend)
    assert looked_up == numbers(5)
    # the holder declared the default lease (60 s), longer than the waiter's 10 s: the waiter
    # waits the longer one (never sooner than a live holder renews), plus one poll
    assert 60.0 <= now[0] < 62.0
    holders = json.loads(cache.store.get(CLAIMS_OBJECT)[0])["holders"]
    assert stale.id not in holders  # taken over
    stale.refresh()
    assert stale.lost  # a resumed claimer learns it at its next renewal


def test_a_renewing_claimer_is_waited_for(s3_url):
    """Renewals (a moving ``beat``) keep a claimer's numbers its own, however long."""
    cache = HLRCache(s3_url)
    cache._own(create=True)
    live = ObjectClaims(cache.store, OPTS, API, lease=None)
    live.claim(numbers(3))
    now = [0.0]
    rounds = [0]

    def sleep(s: float) -> None:
        now[0] += 4.0
        rounds[0] += 1
        live.refresh()
        if rounds[0] == 10:  # 40 s later (four leases): it answers and lets go
            with cache.writer() as w:
                for n in numbers(3):
                    w.add(entry(n, n))
            live.release()

    looked_up: list[str] = []
    claimed = ObjectClaimedLookups(
        cache, OPTS, API, since=cache.sequence(), lease=10.0, sleep=sleep, clock=lambda: now[0]
    )
    claimed.run(numbers(3), looked_up.extend)
    assert looked_up == []  # never taken over: served its answers
    assert set(claimed.served_numbers) == set(numbers(3))
    live.close()


def test_the_cli_reads_an_s3_cache(s3_url, capsys):
    cache = HLRCache(s3_url)
    with cache.writer() as w:
        w.add(entry("+447400000001", "+447400000001"))
    assert cli.main(["cache", "stats", "--cache", s3_url]) == 0
    out = capsys.readouterr().out
    assert "entries: 1" in out and s3_url in out


def test_pd_hlr_cache_may_name_an_s3_cache(s3_url, monkeypatch, make_sandbox):
    monkeypatch.setenv("PD_HLR_CACHE", s3_url)
    server = make_sandbox()
    run(pd.DataFrame({"phone": numbers(3)}), server, None)
    assert HLRCache(s3_url).stats()["entries"] == 3


# --- real processes sharing one s3:// cache ------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import pandas as pd
    import logging
    import pd_hlr
    from pd_hlr.cache import HLRCache
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pd_hlr.cache").setLevel(os.environ.get("LOG", "WARNING"))
    numbers = open(sys.argv[1]).read().split()
    go = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    while go is not None and not go.exists():
        time.sleep(0.005)
    client = pd_hlr.HLRClient(token=os.environ["T"], base_url=os.environ["URL"], workers=4)
    cache = HLRCache(sys.argv[2], lease=float(os.environ.get("LEASE", "60")))
    out = pd.DataFrame({"phone": numbers}).hlr.validate(
        "phone", client=client, cache=cache, progress=False, retry_temporary=False)
    print(dict(out["hlr_source"].value_counts()), flush=True)
    """
)

def _child(tmp_path: Path, nums: list[str], server, url: str, name: str, go=None, **env):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    listing = tmp_path / f"{name}.txt"
    listing.write_text("\n".join(nums))
    cmd = [sys.executable, str(script), str(listing), url] + ([str(go)] if go else [])
    full_env = {**os.environ, "T": TOKEN, "URL": server.url, **env}
    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, text=True)
    _SPAWNED.append(proc)
    return proc


@pytest.mark.slow
def test_three_processes_sharing_an_s3_cache_pay_once_per_number(make_sandbox, tmp_path, s3_url):
    server = make_sandbox(latency=0.02)
    go = tmp_path / "go"
    lists = [numbers(120, start=60 * i) for i in range(3)]  # each overlaps the next
    procs = [_child(tmp_path, lst, server, s3_url, f"p{i}", go=go) for i, lst in enumerate(lists)]
    time.sleep(1.0)
    go.touch()
    assert [p.wait(timeout=HANG) for p in procs] == [0, 0, 0]
    charged = server.stats().charged
    union = set().union(*lists)
    assert set(charged) == union
    twice = sorted(n for n, c in charged.items() if c > 1)
    assert Counter(charged.values()) == {1: len(union)}, (  # what to look at when it fails
        f"paid twice: {twice} (lists {[i for i, x in enumerate(lists) if set(twice) & set(x)]}); "
        f"children said {[p.stdout.read() for p in procs if p.stdout]}; objects {_keys(s3_url)}; "
        f"claims {S3Store(s3_url).get(CLAIMS_OBJECT)[0]!r}"
    )
    server.reset_stats()
    warm = _child(tmp_path, sorted(union), server, s3_url, "warm")
    assert warm.wait(timeout=HANG) == 0
    assert server.stats().total_charged == 0 and not server.stats().received
    holders = json.loads(S3Store(s3_url).get(CLAIMS_OBJECT)[0])["holders"]
    assert holders == {}


@pytest.mark.slow
def test_kill_9_mid_run_then_a_rerun_pays_twice_at_most_the_workers(
    make_sandbox, tmp_path, s3_url
):
    server = make_sandbox(latency=0.02)
    all_numbers = numbers(300)
    proc = _child(tmp_path, all_numbers, server, s3_url, "a", LEASE="2")
    _interrupt_after(proc, server, 100, signal.SIGKILL)
    proc.wait(timeout=HANG)
    paid_before = server.stats().total_charged
    assert 100 <= paid_before < 300
    # the re-run waits one lease for the dead claimer's numbers, then takes them over
    out = run(
        pd.DataFrame({"phone": all_numbers}),
        server,
        HLRCache(s3_url, lease=2.0),
        workers=4,
        retry_temporary=False,
    )
    charged = server.stats().charged
    twice = [n for n, c in charged.items() if c > 1]
    assert len(twice) <= 4, twice  # at most the killed run's in-flight requests (its workers)
    assert set(charged) == set(all_numbers)
    assert out["hlr_source"].isin(["api", "cache"]).all()
    assert (out["hlr_source"] == "cache").sum() >= paid_before - 4


def test_temporary_numbers_helper_is_consistent():
    """The multi-process tests pass retry_temporary=False: temporary answers are not looked up
    again, so 'exactly once' holds for them too (guard: the sample holds some)."""
    assert temporary(numbers(120))


WRITER = textwrap.dedent(
    """
    import json, os, signal, sys
    from datetime import UTC, datetime
    from pd_hlr.cache import Entry, HLRCache
    w = HLRCache(sys.argv[1], flush_every=10**9, flush_seconds=1e9).writer().__enter__()
    for line in sys.stdin:
        n, o, a, r = json.loads(line)
        w.add(Entry(n, o, a, r, datetime.now(UTC)))
    print("committed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_answers_of_a_killed_writer_are_read_then_folded_by_compaction(s3_url):
    """kill -9 after ``add`` returned: every answer is in a commit group object; readers
    replay the groups, and compaction folds them into a part and deletes only them."""
    wanted = numbers(20)
    proc = subprocess.run(
        [sys.executable, "-c", WRITER, s3_url],
        input="".join(json.dumps([n, OPTS, API, {"to": n, "live": True}]) + "\n" for n in wanted),
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert proc.returncode == -signal.SIGKILL and "committed" in proc.stdout, proc.stderr
    groups = [n for n in _keys(s3_url) if object_kind(n) == "group"]
    assert len(groups) == 20
    cache = HLRCache(s3_url)
    assert set(cache.get(wanted, OPTS, API).index) == set(wanted)
    cache.compact()
    kinds = Counter(object_kind(n) for n in _keys(s3_url, empty=False))
    assert kinds["group"] == 0 and kinds["part"] == 1
    assert set(cache.get(wanted, OPTS, API).index) == set(wanted)


@pytest.mark.slow
def test_a_suspended_claimer_is_taken_over_and_repays_at_most_one_chunk(
    make_sandbox, tmp_path, s3_url
):
    """SIGSTOP a claimer mid-run: a second run takes its claims over after one lease and
    answers everything; the first, resumed, learns it at its next renewal and finishes. The
    numbers paid twice are at most the chunk the suspended one held (CLAIM_CHUNK)."""
    from pd_hlr.cache.objects import CLAIM_CHUNK

    server = make_sandbox(latency=0.05)
    wanted = numbers(200)
    first = _child(tmp_path, wanted, server, s3_url, "a", LEASE="2")
    _interrupt_after(first, server, 30, signal.SIGSTOP)
    try:
        second = _child(tmp_path, wanted, server, s3_url, "b", LEASE="2")
        assert second.wait(timeout=HANG) == 0
        assert set(server.stats().charged) == set(wanted)
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=HANG) == 0
    twice = [n for n, c in server.stats().charged.items() if c > 1]
    assert len(twice) <= CLAIM_CHUNK, len(twice)


def test_a_part_deleted_mid_read_is_listed_again_not_skipped(s3_url, recwarn):
    """HEAD passed, then a compaction deleted the part before its ranged GETs: the read lists
    the parts again (finding the merged one) instead of skipping the answers it holds."""
    cache = HLRCache(s3_url, compact=False)
    wanted = numbers(6)
    for half in (wanted[:3], wanted[3:]):
        with cache.writer() as w:
            for n in half:
                w.add(entry(n, n))
    real_open = ObjectPart.open
    hits = {"n": 0}

    def open_then_compact(self):
        f = real_open(self)
        hits["n"] += 1
        if hits["n"] == 1:  # the first part opened is merged away before it is read
            HLRCache(s3_url).compact()
        return f

    ObjectPart.open = open_then_compact
    try:
        got = HLRCache(s3_url, memo=False).get(wanted, OPTS, API)
    finally:
        ObjectPart.open = real_open
    assert set(got.index) == set(wanted)
    assert not [w for w in recwarn if "skipping unreadable part" in str(w.message)]


# --- requests per commit group and per read (issue 28: cold runs were slow) ---------------------
def _counting(store, *methods: str) -> Counter:
    calls: Counter = Counter()
    for name in methods:
        real = getattr(store, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        setattr(store, name, counted)
    return calls


def test_a_writer_lists_for_its_first_group_only(s3_url):
    cache = HLRCache(s3_url, compact=False)
    with cache.writer() as w:
        w.add(entry("+447400000001", "+447400000001"))
        calls = _counting(cache.store, "list")
        for n in numbers(5, start=2):
            w.add(entry(n, n))
        assert calls["list"] == 0  # the next number is the one after its own last group
    assert set(cache.to_frame()["number"]) == {"+447400000001", *numbers(5, start=2)}


def test_a_writer_whose_next_number_was_taken_goes_above_every_taken_one(s3_url):
    a, b = HLRCache(s3_url, compact=False), HLRCache(s3_url, compact=False)
    with a.writer() as wa, b.writer() as wb:
        wa.add(entry("+447400000001", "+447400000001"))
        wb.add(entry("+447400000002", "+447400000002"))  # takes the number a would try next
        wb.add(entry("+447400000003", "+447400000003"))
        wa.add(entry("+447400000004", "+447400000004"))
    frame = HLRCache(s3_url).to_frame().set_index("number")["seq"]
    assert frame.is_unique
    assert frame["+447400000004"] // GROUP_SPAN > frame["+447400000003"] // GROUP_SPAN


def test_a_writer_lists_again_once_its_last_group_is_a_lease_old(s3_url):
    cache = HLRCache(s3_url, compact=False, lease=0.0)  # every commit is "a lease old"
    with cache.writer() as w:
        w.add(entry("+447400000001", "+447400000001"))
        calls = _counting(cache.store, "list")
        w.add(entry("+447400000002", "+447400000002"))
        assert calls["list"] >= 1


def test_a_writer_lists_again_when_the_wall_clock_moved_on_without_it(s3_url):
    """A laptop suspended for minutes: its monotonic clock stood still, while teammates' groups
    came and their compaction (by the wall clock) deleted emptied ones. The writer's hint is
    then not trusted: it lists, so it never reuses a deleted number below the newest."""
    cache = HLRCache(s3_url, compact=False)
    with cache.writer() as w:
        w.add(entry("+447400000001", "+447400000001"))
        group, monotonic, wall = w._hint
        w._hint = (group, monotonic, wall - cache.lease)  # the suspend: only the wall moved
        calls = _counting(cache.store, "list")
        w.add(entry("+447400000002", "+447400000002"))
        assert calls["list"] >= 1


def test_a_reader_gets_each_commit_group_once(s3_url):
    writer_cache = HLRCache(s3_url, compact=False)
    reader = HLRCache(s3_url, memo=False)
    wanted = numbers(3)
    with writer_cache.writer() as w:
        for n in wanted:
            w.add(entry(n, n))
        calls = _counting(reader.store, "get")
        assert set(reader.get(wanted, OPTS, API).index) == set(wanted)
        assert calls["get"] == 3
        assert set(reader.get(wanted, OPTS, API).index) == set(wanted)
        assert calls["get"] == 3  # read once: a group is never rewritten with other answers
        w.add(entry("+447400000099", "+447400000099"))
        assert set(reader.get(["+447400000099"], OPTS, API).index) == {"+447400000099"}
        assert calls["get"] == 4
    # folded into a part, the groups emptied: the answers are read from the part
    assert set(reader.get(wanted, OPTS, API).index) == set(wanted)
    assert reader._group_entries == {}
