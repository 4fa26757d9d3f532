"""Claims as another process sees them, and the claims lease (issue 24, row 5).

The format tests read a claimant's file the way another process does (``held`` / ``claim`` of a
second :class:`Claims` on the same folder, each its own open file description, as two processes
have) and pin the bytes on disk: each of them kills a change that makes later claims invisible to
the other process, i.e. makes two processes pay for one number. The lease tests drive the waiter
with an injected clock; one test stops a real process with SIGSTOP.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import pd_hlr
from pd_hlr.cache import HLRCache, folder
from pd_hlr.cache.claims import LEASE_SECONDS, Claims, Holder, LeaseWatch
from pd_hlr.cache.store import ClaimedLookups
from pd_hlr.errors import CacheFolderError, StaleClaimsError

from .conftest import bounded
from .test_cache import numbers

OPTS = pd_hlr.LookupOptions().key()
API = "127.0.0.1"
HEADER = f"{API}\t{OPTS}\n".encode()


def claims(folder: Path, options: str = OPTS, api: str = API) -> Claims:
    """A claimant that never refreshes its lease (as a suspended process)."""
    return Claims(folder, options, api, lease=None)


# -- the claims file, as another process reads it -------------------------------------------------
def test_claims_made_after_a_release_are_seen_by_another_claimant(tmp_path):
    a, b = claims(tmp_path), claims(tmp_path)
    first = numbers(50)  # longer than the header: a write at the old offset would leave a hole
    assert a.claim(first) == (first, [])
    assert b.held(first) == first
    a.release()
    assert a.path.read_bytes() == HEADER
    assert b.held(first) == []
    later = "+447400000777"
    assert a.claim([later]) == ([later], [])
    assert a.path.read_bytes() == HEADER + later.encode() + b"\n"
    assert b.held([first[0], later]) == [later]
    assert b.claim([first[0], later]) == ([first[0]], [later])


def test_batches_claimed_one_after_another_are_each_seen(tmp_path):
    a, b = claims(tmp_path), claims(tmp_path)
    one, two = numbers(1), numbers(2, 100)
    a.claim(one)
    a.claim(two)
    assert a.path.read_bytes() == HEADER + b"".join(n.encode() + b"\n" for n in one + two)
    assert b.held(one + two) == one + two
    assert b.claim(one + two + numbers(1, 500)) == (numbers(1, 500), one + two)


def test_every_other_claimant_is_read_whatever_the_listing_order(tmp_path):
    everyone = [claims(tmp_path) for _ in range(4)]
    nums = numbers(4)
    for c, n in zip(everyone, nums, strict=True):
        assert c.claim([n]) == ([n], [])
    for c, n in zip(everyone, nums, strict=True):
        assert c.held(nums) == [m for m in nums if m != n]  # the others', never its own


def test_reading_other_claimants_keeps_no_descriptor_and_survives_damaged_bytes(tmp_path):
    a, b = claims(tmp_path), claims(tmp_path)
    n = numbers(2)
    a.claim(n)
    with open(a.path, "ab") as damaged:  # bytes that are not UTF-8, in a live claimant's file
        damaged.write(b"\xff\xfe\n")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        assert b.held(n) == n
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_claims_file_over_a_mebibyte_is_read_whole(tmp_path):
    a, b = claims(tmp_path), claims(tmp_path)
    many = numbers(100_000)  # about 1.4 MB of claims
    a.claim(many)
    assert a.path.stat().st_size > 1 << 20
    assert b.held(many) == many


def test_only_claims_for_the_same_options_and_host_conflict(tmp_path):
    n = numbers(1)
    a = claims(tmp_path)
    a.claim(n)
    assert claims(tmp_path, options=pd_hlr.LookupOptions(detailed=True).key()).held(n) == []
    assert claims(tmp_path, api="api.example").held(n) == []
    assert claims(tmp_path).held(n) == n


def test_a_dead_claimant_s_file_is_removed_and_its_numbers_are_free(tmp_path):
    """What kill -9 leaves: a claims file nobody holds a lock on."""
    tmp_path.joinpath("seq").write_bytes(b"")  # the folder is a cache already
    dead = tmp_path / "claims-999999-0123456789ab.txt"
    dead.write_bytes(HEADER + b"+447400000001\n")
    a = claims(tmp_path)
    assert a.claim(["+447400000001"]) == (["+447400000001"], [])
    assert not dead.exists()


def test_close_removes_the_claims_file_and_frees_its_numbers(tmp_path):
    a, b = claims(tmp_path), claims(tmp_path)
    n = numbers(3)
    a.claim(n)
    a.close()
    assert not a.path.exists()
    assert b.claim(n) == (n, [])
    a.close()  # twice is harmless
    with Claims(tmp_path, OPTS, API, lease=None) as c:
        assert c.path.exists()
    assert not c.path.exists()


def test_claims_make_their_folder_a_cache_and_refuse_a_foreign_one(tmp_path):
    with Claims(tmp_path / "new", OPTS, API, lease=None) as c:
        assert (tmp_path / "new" / folder.MARKER).is_file()
        assert os.stat(c.path).st_mode & 0o777 == 0o600
        assert os.stat(tmp_path / "new" / "claims.lock").st_mode & 0o777 == 0o600
    data = tmp_path / "data"
    data.mkdir()
    (data / "customers.csv").write_text("phone\n")
    with pytest.raises(CacheFolderError):
        Claims(data, OPTS, API, lease=None)
    assert [p.name for p in data.iterdir()] == ["customers.csv"]


def test_a_claims_file_gone_between_listing_and_reading_skips_only_itself(tmp_path, monkeypatch):
    """Its owner closed it meanwhile: the claimants listed after it are still read."""
    from pd_hlr.cache import claims as claims_module

    a, b = claims(tmp_path), claims(tmp_path)
    n = numbers(2)
    a.claim(n)
    real = claims_module.own_files
    gone = tmp_path / "claims-1-000000000000.txt"  # sorts first, then vanished
    monkeypatch.setattr(claims_module, "own_files", lambda f, kind: [gone, *real(f, kind)])
    assert b.held(n) == n


def test_close_lets_go_of_everything_even_when_the_file_is_gone(tmp_path):
    before = len(os.listdir("/proc/self/fd"))
    a = claims(tmp_path)
    a.claim(numbers(1))
    a.path.unlink()  # removed by hand
    a.close()
    assert len(os.listdir("/proc/self/fd")) == before  # no descriptor (nor its lock) kept


def test_holders_name_the_process_and_only_the_numbers_asked(tmp_path):
    a, b = claims(tmp_path), claims(tmp_path)
    a.claim(numbers(3))
    (h,) = b.holders([*numbers(2), "+447499999999"])
    assert h.path == a.path and h.pid == os.getpid() and h.numbers == frozenset(numbers(2))
    assert b.holders(["+447499999999"]) == []


# -- the lease ------------------------------------------------------------------------------------
def test_refresh_changes_the_stamp_a_waiter_watches_and_the_heartbeat_refreshes(tmp_path):
    a, b = claims(tmp_path), claims(tmp_path)
    a.claim(numbers(1))
    stamps = [b.holders(numbers(1))[0].stamp]
    for _ in range(3):  # back to back: each refresh moves the stamp, whatever the clock's grain
        a.refresh()
        stamps.append(b.holders(numbers(1))[0].stamp)
    assert len(set(stamps)) == 4
    a.close()
    a.refresh()  # after close: nothing to refresh, no error
    with Claims(tmp_path, OPTS, API) as default:
        assert default.every == LEASE_SECONDS / 4 == 15.0  # the README's figures
        assert default._beat is not None and default._beat.daemon
        assert default._beat.name == "pd_hlr-claims"  # named in a thread dump
    assert a.every is None and a._beat is None
    beating = Claims(tmp_path, OPTS, API, lease=0.04)  # refreshes every 0.01 s
    beating.claim(numbers(1, 50))
    first = b.holders(numbers(1, 50))[0].stamp
    deadline = time.monotonic() + 120  # only a hang takes this long
    while b.holders(numbers(1, 50))[0].stamp == first and time.monotonic() < deadline:
        time.sleep(0.01)
    assert b.holders(numbers(1, 50))[0].stamp != first
    beating.close()
    assert beating._beat is not None
    beating._beat.join(120)
    assert not beating._beat.is_alive()  # the heartbeat stops with the claims


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def test_a_suspended_holder_ends_the_wait_with_a_clear_error_after_one_lease(tmp_path, caplog):
    holder = claims(tmp_path)  # never refreshes: a process stopped by SIGSTOP
    nums = numbers(3)
    holder.claim(nums)
    clock = FakeClock()
    looked: list[str] = []
    waiter = ClaimedLookups(
        HLRCache(tmp_path), OPTS, API, since=0, sleep=clock.sleep, clock=clock, lease=60.0
    )
    caplog.set_level(logging.INFO, logger="pd_hlr.cache")
    with pytest.raises(StaleClaimsError) as err:
        waiter.run(nums, looked.extend)
    assert looked == []  # nothing paid for
    assert err.value.pid == os.getpid() and err.value.numbers == 3
    assert err.value.path == str(holder.path) and "kill -CONT" in str(err.value)
    waited = clock.t - 1000.0
    assert 60.0 <= waited <= 60.0 + waiter.max_poll  # one lease of its own clock, not more
    info = [r for r in caplog.records if r.levelno == logging.INFO and "waiting for 3" in r.message]
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(info) == 1 and str(os.getpid()) in info[0].message
    assert len(warned) == 1 and "has not refreshed" in warned[0].message
    assert holder.path.read_bytes() == HEADER + "".join(n + "\n" for n in nums).encode()


def test_a_holder_that_refreshes_is_waited_for_however_long(tmp_path):
    holder = claims(tmp_path)
    nums = numbers(3)
    holder.claim(nums)
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        holder.refresh()  # alive: its heartbeat runs
        if clock.t - 1000.0 > 10 * 60:
            holder.release()  # ten leases later it gives them back unanswered

    looked: list[str] = []
    waiter = ClaimedLookups(
        HLRCache(tmp_path), OPTS, API, since=0, sleep=sleep, clock=clock, lease=60.0
    )
    waiter.run(nums, looked.extend)
    assert looked == nums


def test_lease_watch_counts_from_the_last_change_and_warns_once_at_half_a_lease(caplog):
    clock = FakeClock()
    watch = LeaseWatch(10.0, clock)
    a = Holder(Path("/c/claims-1-0123456789ab.txt"), 1, frozenset({"x"}), (1, 1, 1))
    b = Holder(Path("/c/claims-2-0123456789ab.txt"), 2, frozenset({"y"}), (2, 1, 1))
    caplog.set_level(logging.INFO, logger="pd_hlr.cache")

    def warned() -> list[str]:
        return [r.message for r in caplog.records if r.levelno == logging.WARNING]

    watch.check([a, b])  # first seen: the lease counts from now
    clock.t += 4.0
    watch.check([a, b])
    assert warned() == []  # 4 s idle: less than half a lease
    clock.t += 1.0
    watch.check([Holder(b.path, 2, b.numbers, (2, 2, 1)), a])  # b refreshed; a listed after
    assert len(warned()) == 1 and "process 1 " in warned()[0]  # exactly half: a is warned about
    clock.t += 4.5
    watch.check([b, a])  # a: 9.5 s idle; b changed (back): its lease starts again
    assert len(warned()) == 1  # once per holder
    clock.t += 0.5
    with pytest.raises(StaleClaimsError) as err:
        watch.check([Holder(b.path, 2, b.numbers, (2, 3, 1)), a])  # a: one lease unchanged
    assert err.value.pid == 1 and err.value.numbers == 1
    assert sum("waiting for 2" in r.message for r in caplog.records) == 1
    assert LEASE_SECONDS == 60.0  # the README's documented default


# -- a real process, stopped and resumed ----------------------------------------------------------
HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pd_hlr.cache.claims import Claims
    c = Claims(Path(sys.argv[1]), sys.argv[2], "127.0.0.1", lease=float(sys.argv[3]))
    c.claim(sys.argv[4].split(","))
    print("claimed", flush=True)
    sys.stdin.readline()
    c.release()
    print("released", flush=True)
    sys.stdin.readline()
    """
)


@pytest.mark.slow
def test_a_process_stopped_by_sigstop_is_named_and_not_waited_for_forever(tmp_path):
    nums = numbers(5)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), OPTS, "0.2", ",".join(nums)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "claimed"
        os.kill(proc.pid, signal.SIGSTOP)
        looked: list[str] = []
        lease = 2.0
        stopped = ClaimedLookups(HLRCache(tmp_path), OPTS, API, since=0, lease=lease)
        with pytest.raises(StaleClaimsError) as err:
            bounded(lambda: stopped.run(nums, looked.extend))
        assert err.value.pid == proc.pid and err.value.numbers == 5 and looked == []
        assert Path(err.value.path).exists()  # its claims stay: it may resume and pay

        os.kill(proc.pid, signal.SIGCONT)  # resumed: its heartbeat runs again
        seen: list[float] = []

        def sleep(seconds: float) -> None:
            seen.append(time.monotonic())
            if len(seen) > 1 and seen[-1] - seen[0] > 3 * lease and proc.stdin:
                proc.stdin.write("release\n")  # three leases later: it gives them back
                proc.stdin.flush()
                proc.stdin.close()
                proc.stdin = None
            time.sleep(seconds)

        waiting = ClaimedLookups(HLRCache(tmp_path), OPTS, API, since=0, lease=lease, sleep=sleep)
        bounded(lambda: waiting.run(nums, looked.extend))
        assert looked == nums  # waited for the live holder past three leases, then claimed
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()
