"""The object store's claims (``pd_hlr.cache.objects.ObjectClaims`` and the waiting loop),
pinned one promise at a time (the mutation target ``object-claims`` runs these)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import pytest

pytest.importorskip("boto3")

from pd_hlr.cache import HLRCache
from pd_hlr.cache.claims import LEASE_SECONDS
from pd_hlr.cache.objects import (
    CLAIM_CHUNK,
    CLAIMS_OBJECT,
    ObjectClaimedLookups,
    ObjectClaims,
)

from .test_cache import API, OPTS, entry, numbers

HANG = 120


# --- ObjectClaims, one promise at a time ---------------------------------------------------------
@pytest.fixture
def store(s3_url):
    cache = HLRCache(s3_url)
    cache._own(create=True)
    return cache.store


@pytest.fixture
def claimer(store):
    """``claimer()``: a new claimer that never renews by itself; all are closed at teardown."""
    made: list[ObjectClaims] = []

    def make(**kwargs) -> ObjectClaims:
        made.append(ObjectClaims(store, OPTS, API, **{"lease": None, **kwargs}))
        return made[-1]

    yield make
    for c in made:
        c.close()


def _holders(store) -> dict:
    return json.loads(store.get(CLAIMS_OBJECT)[0])["holders"]


def test_a_claimer_is_listed_from_its_start_with_what_a_waiter_needs(store):
    with ObjectClaims(store, OPTS, API, lease=None) as a:
        assert _holders(store)[a.id] == {
            "key": f"{API}\t{OPTS}",
            "pid": os.getpid(),
            "host": a.id.rsplit("-", 2)[0],
            "beat": 0,
            "lease": LEASE_SECONDS,
            "numbers": [],
        }
        assert a.lease == LEASE_SECONDS and not a.lost
        a.claim(numbers(2))
        assert not a.lost  # it was never taken over
    assert _holders(store) == {}  # leaving the block removes its entry


def test_claim_reports_each_other_holder_s_renewal_pid_numbers_and_lease(store, claimer):
    a = claimer(lease=8.0)
    b = claimer()
    assert a.renew_every == 2.0  # a quarter of the lease
    a.claim(numbers(3))
    a.refresh()
    mine, others = b.claim(numbers(5))
    assert mine == numbers(2, start=3)
    beat = _holders(store)[a.id]["beat"]
    assert beat >= 1  # renewed: the waiter must see which renewal it is at
    assert others == {a.id: (beat, os.getpid(), frozenset(numbers(3)), 8.0)}


def test_at_most_limit_numbers_are_claimed_in_order(store):
    with ObjectClaims(store, OPTS, API, lease=None) as a:
        assert a.claim(numbers(5), limit=3)[0] == numbers(3)
        assert a.claim(numbers(CLAIM_CHUNK + 5))[0] == numbers(CLAIM_CHUNK)


def test_a_claimer_claims_its_own_numbers_again_and_sees_every_other_holder(store, claimer):
    c = claimer()  # first in the object: the scan must go on past its own entry
    a = claimer()
    b = claimer()
    assert c.claim(numbers(2, start=10))[0] == numbers(2, start=10)
    assert a.claim(numbers(2))[0] == numbers(2)
    assert b.claim(numbers(2, start=2))[0] == numbers(2, start=2)
    # c's own entry comes first in the object: the others are read past it
    mine, others = c.claim(numbers(6) + numbers(2, start=10))
    assert mine == numbers(2, start=4) + numbers(2, start=10)  # its own, claimed again
    assert {h: o[2] for h, o in others.items()} == {
        a.id: frozenset(numbers(2)),
        b.id: frozenset(numbers(2, start=2)),
    }


def test_waiting_writes_nothing_but_giving_up_old_claims_is_written(store, claimer):
    a = claimer()
    b = claimer()
    c = claimer()
    a.claim(numbers(3))
    etag = store.get(CLAIMS_OBJECT)[1]
    b.claim(numbers(3))
    writes = []
    real_replace = store.replace
    store.replace = lambda *args: writes.append(args) or real_replace(*args)
    assert b.claim(numbers(3)) == ([], b.claim(numbers(3))[1])
    assert writes == [] and store.get(CLAIMS_OBJECT)[1] == etag  # only waiting: no write
    del store.replace
    b.claim(numbers(1, start=50))  # b holds one number...
    assert b.claim(numbers(3))[0] == []  # ...and now only waits: it gives that one up
    assert _holders(store)[b.id]["numbers"] == []
    assert c.claim(numbers(1, start=50))[0] == numbers(1, start=50)


def test_release_gives_back_but_stays_listed_and_a_taken_over_one_writes_nothing(store, claimer):
    a = claimer()
    b = claimer()
    a.claim(numbers(3))
    a.release()
    assert _holders(store)[a.id]["numbers"] == []
    assert b.take_over(a.id, 0)
    etag = store.get(CLAIMS_OBJECT)[1]
    a.release()
    assert a.id not in _holders(store) and store.get(CLAIMS_OBJECT)[1] == etag


def test_renewals_count_one_by_one(store):
    with ObjectClaims(store, OPTS, API, lease=None) as a:
        a.refresh()
        a.refresh()
        assert _holders(store)[a.id]["beat"] == 2


def test_a_taken_over_claimer_learns_it_once_and_claims_again_before_paying(store, claimer, caplog):
    a = claimer()
    b = claimer()
    a.claim(numbers(3))
    assert not b.take_over(a.id, 1)  # not at that renewal: not stale
    assert not b.take_over("nobody", 0)
    assert a.id in _holders(store)
    assert b.take_over(a.id, 0)
    assert a.id not in _holders(store)
    assert b.claim(numbers(3))[0] == numbers(3)
    with caplog.at_level(logging.WARNING, logger="pd_hlr.cache"):
        a.refresh()
        a.refresh()
    assert a.lost and a.id not in _holders(store)  # a renewal does not re-enter it
    told = [r for r in caplog.records if "taken over" in r.getMessage()]
    assert len(told) == 1  # once
    mine, others = a.claim(numbers(5))  # it enters again: only what nobody holds
    assert mine == numbers(2, start=3) and set(others) == {b.id}
    assert _holders(store)[a.id]["numbers"] == numbers(2, start=3)


def test_a_claim_of_a_claimer_taken_over_before_it_renewed_marks_it_lost(store, claimer):
    a = claimer()
    b = claimer()
    assert b.take_over(a.id, 0)
    assert a.claim(numbers(1))[0] == numbers(1)
    assert a.lost


def test_an_entry_from_another_writer_without_beat_or_lease_reads_as_zero_and_default(store):
    foreign = {"holders": {"x": {"key": f"{API}\t{OPTS}", "numbers": numbers(2)}}}
    store.put(CLAIMS_OBJECT, json.dumps(foreign).encode())
    with ObjectClaims(store, OPTS, API, lease=None) as a:
        _, others = a.claim(numbers(2))
        assert others == {"x": (0, None, frozenset(numbers(2)), LEASE_SECONDS)}
        assert a.take_over("x", 0)


def test_a_damaged_claims_object_is_rebuilt(store):
    store.put(CLAIMS_OBJECT, b"{not json")
    with ObjectClaims(store, OPTS, API, lease=None) as a:
        assert a.claim(numbers(2))[0] == numbers(2)
        assert set(_holders(store)) == {a.id}


def test_a_live_claimer_renews_from_its_own_thread_and_stops_on_close(store):
    a = ObjectClaims(store, OPTS, API, lease=0.2)
    deadline = time.monotonic() + HANG
    while _holders(store)[a.id]["beat"] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _holders(store)[a.id]["beat"] >= 2  # renewed twice without being asked
    a.close()
    assert a._beat is not None and not a._beat.is_alive()
    assert _holders(store) == {}


def test_close_waits_for_a_renewal_in_flight_then_removes_the_entry(store, monkeypatch):
    """A renewal in flight ends before the entry goes (else it could be written back)."""
    entered, go = threading.Event(), threading.Event()
    real = ObjectClaims.refresh

    def slow_refresh(self):
        entered.set()
        go.wait(HANG)
        real(self)

    monkeypatch.setattr(ObjectClaims, "refresh", slow_refresh)
    a = ObjectClaims(store, OPTS, API, lease=0.04)
    assert entered.wait(HANG)
    closing = threading.Thread(target=a.close)
    closing.start()
    closing.join(0.3)
    assert closing.is_alive()  # blocked on the renewal: it cannot end before it
    go.set()
    closing.join(HANG)
    assert _holders(store) == {}


# --- the waiting loop ----------------------------------------------------------------------------
def _declare_lease(store, holder: str, lease: float) -> None:
    """Rewrite the lease ``holder`` declares in claims.json (one that never renews)."""
    doc, etag = store.get(CLAIMS_OBJECT)
    declared = json.loads(doc)
    declared["holders"][holder]["lease"] = lease
    assert store.replace(CLAIMS_OBJECT, json.dumps(declared).encode(), etag)


def _waiter(cache, now, slept, *, lease=10.0, on_sleep=None):
    def sleep(s: float) -> None:
        slept.append(s)
        assert len(slept) < 500, "it never stopped waiting"
        now[0] += 1.0
        if on_sleep is not None:
            on_sleep()

    return ObjectClaimedLookups(
        cache, OPTS, API, since=cache.sequence(), lease=lease, sleep=sleep, clock=lambda: now[0],
        poll=0.05, max_poll=0.2,
    )


def test_a_stale_holder_is_taken_over_after_exactly_one_lease_and_said_once(s3_url, caplog):
    cache = HLRCache(s3_url)
    cache._own(create=True)
    stale = ObjectClaims(cache.store, OPTS, API, lease=None)
    stale.claim(numbers(3))
    _declare_lease(cache.store, stale.id, 4.0)  # longer than the waiter's own 2 s lease
    now, slept, looked_up = [100.0], [], []  # the waiter's monotonic clock: any origin
    claimed = _waiter(cache, now, slept, lease=2.0)
    with caplog.at_level(logging.INFO, logger="pd_hlr.cache"):
        claimed.run(numbers(3), looked_up.extend)
    assert looked_up == numbers(3)
    # seen at t=100, unchanged at t=101..104: taken over at t=104, when a whole (the longer)
    # lease passed, then claimed at once (no wait: sleep 0)
    assert now[0] == 105.0
    assert slept == pytest.approx([0.05, 0.075, 0.1125, 0.16875, 0.0])
    waiting = [r for r in caplog.records if "waiting for" in r.getMessage()]
    assert len(waiting) == 1 and "waiting for 3 number(s)" in waiting[0].getMessage()
    took = [r for r in caplog.records if "taken over" in r.getMessage()]
    assert len(took) == 1 and "for 4 s" in took[0].getMessage()
    assert str(os.getpid()) in took[0].getMessage()


def test_waits_back_off_to_the_ceiling(s3_url):
    cache = HLRCache(s3_url)
    cache._own(create=True)
    holder = ObjectClaims(cache.store, OPTS, API, lease=None)
    holder.claim(numbers(2))
    now, slept, rounds = [0.0], [], [0]

    def renew_then_answer():
        rounds[0] += 1
        holder.refresh()
        if rounds[0] == 8:
            with cache.writer() as w:
                for n in numbers(2):
                    w.add(entry(n, n))
            holder.release()

    claimed = _waiter(cache, now, slept, on_sleep=renew_then_answer)
    looked_up: list[str] = []
    claimed.run(numbers(2), looked_up.extend)
    assert looked_up == []
    assert slept == pytest.approx([0.05, 0.075, 0.1125, 0.16875, 0.2, 0.2, 0.2, 0.2])
    holder.close()


def test_numbers_freed_meanwhile_are_claimed_and_answers_found_are_not_looked_up(s3_url):
    cache = HLRCache(s3_url)
    cache._own(create=True)
    since = cache.sequence()
    with cache.writer() as w:  # answered by another process after this run began
        w.add(entry(numbers(1)[0], numbers(1)[0]))
    looked_up: list[list[str]] = []
    claimed = ObjectClaimedLookups(cache, OPTS, API, since=since, lease=10.0)
    claimed.run(numbers(CLAIM_CHUNK + 3), looked_up.append)
    assert looked_up == [numbers(CLAIM_CHUNK - 1, start=1), numbers(3, start=CLAIM_CHUNK)]
    assert claimed.served_numbers == {numbers(1)[0]}
    assert _holders(cache.store) == {}


def test_a_process_that_never_closes_its_claims_still_exits(s3_url):
    """The renewal thread is a daemon: a run that dies without closing its claims (they are
    then taken over after a lease) does not keep its process alive, renewing them forever."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pd_hlr.cache import HLRCache\n"
        "from pd_hlr.cache.objects import ObjectClaims\n"
        "cache = HLRCache(sys.argv[1])\n"
        "cache._own(create=True)\n"
        "c = ObjectClaims(cache.store, 'o', 'a', lease=1000.0)\n"
        "c.claim(['+447400000001'])\n"
        "print('claimed', flush=True)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, s3_url], capture_output=True, text=True, timeout=HANG
    )
    assert proc.returncode == 0 and "claimed" in proc.stdout, proc.stderr


def test_a_takeover_needs_the_renewal_the_waiter_saw(store, claimer):
    a, b = claimer(), claimer()
    a.claim(numbers(1))
    a.refresh()
    assert not b.take_over(a.id, 0)  # renewed since the waiter looked: alive
    assert a.id in _holders(store)
    assert b.take_over(a.id, 1)


def test_a_claimer_taken_over_that_claims_again_gets_a_whole_new_lease(s3_url):
    """Resumed after a takeover, a claimer enters again under the same id at renewal 0: the
    waiter starts a new lease for it, not the old one's (which ran out long ago)."""
    cache = HLRCache(s3_url)
    cache._own(create=True)
    stale = ObjectClaims(cache.store, OPTS, API, lease=None)
    stale.claim(numbers(3))
    _declare_lease(cache.store, stale.id, 4.0)
    again: list[float] = []

    def resume() -> None:
        if not again and stale.id not in _holders(cache.store):
            again.append(now[0])
            assert stale.claim(numbers(3))[0] == numbers(3)  # nobody held them meanwhile
            _declare_lease(cache.store, stale.id, 4.0)

    now, slept, looked_up = [100.0], [], []
    claimed = _waiter(cache, now, slept, lease=4.0, on_sleep=resume)
    claimed.run(numbers(3), looked_up.extend)
    assert looked_up == numbers(3)
    assert again == [105.0]  # taken over at t=104; it claimed again at t=105
    assert now[0] == 110.0  # seen anew at t=105, taken over again a whole lease later
    stale.close()
