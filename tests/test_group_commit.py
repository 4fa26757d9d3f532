"""Group commit in :class:`~pd_hlr.cache.CacheWriter`: many threads adding at once share one
sequence step and one journal write per group, each ``add`` returns only once its line is in
the journal, a group whose write fails fails for every member, and a kill -9 loses at most the
answers in flight (the mutation target ``tools/mutation.py writer``).

Groups are formed without timing: the test holds the folder's sequence lock, as another process
mid-write does, so the first leader waits on it while the others queue behind. Faults are real:
``RLIMIT_FSIZE`` in a child process makes the journal (or a part) refuse to grow, with a short
write at the limit (Python ignores ``SIGXFSZ``, so the write fails with ``EFBIG``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

import pd_hlr
from pd_hlr.cache import CacheWriter, Entry, HLRCache
from pd_hlr.cache.folder import SEQ_FILE, read_sequence
from pd_hlr.cache.journal import journals, read_journal

OPTS = pd_hlr.LookupOptions().key()
API = "127.0.0.1"
HANG = 120.0  # seconds: only a hang takes this long


def entry(i: int) -> Entry:
    number = f"+4474{i:08d}"
    return Entry(number, OPTS, API, {"to": number, "live": True}, datetime(2026, 1, 1, tzinfo=UTC))


def until(cond: Callable[[], bool]) -> None:
    """Wait until ``cond()`` (polling; the bound, a count of polls, only catches a hang: no
    clock is read, so a slow machine only polls longer between tries)."""
    for _ in range(int(HANG / 0.002)):
        if cond():
            return
        time.sleep(0.002)
    pytest.fail(f"still waiting after {int(HANG / 0.002):,} polls: hung")


def journal_lines(folder: Path) -> list[Entry]:
    out: list[Entry] = []
    for j in journals(folder):
        contents = read_journal(j)
        assert not contents.bad and not contents.torn, contents
        out.extend(contents.entries)
    return out


class SeqLock:
    """The folder's sequence lock, held through a descriptor of our own (as another process
    writing to the folder holds it)."""

    def __init__(self, folder: Path) -> None:
        self.fd = os.open(folder / SEQ_FILE, os.O_RDWR)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def release(self) -> None:
        os.close(self.fd)


def queue_behind_a_held_sequence_lock(
    writer: CacheWriter, folder: Path, adds: list[Callable[[], None]]
) -> list[threading.Thread]:
    """Start ``adds`` while the sequence lock is held: the first becomes a leader waiting on
    the lock, the rest queue in the next group; then release the lock."""
    lock = SeqLock(folder)
    threads = [threading.Thread(target=a) for a in adds]
    try:
        threads[0].start()
        until(lambda: writer._committing)  # the first leader took its group of one
        for t in threads[1:]:
            t.start()
        until(lambda: len(writer._queue) == len(adds) - 1)
    finally:
        lock.release()
    for t in threads:
        t.join(HANG)
    return threads


def test_answers_queued_behind_a_write_go_in_one_write_and_one_sequence_step(tmp_path, monkeypatch):
    writes: list[bytes] = []
    real_write = os.write

    def counting(fd: int, data: bytes) -> int:  # the journal lines handed to the OS, per call
        if bytes(data[:5]) == b'{"n":':
            writes.append(bytes(data))
        return real_write(fd, data)

    writer = CacheWriter(HLRCache(tmp_path, compact=False))
    writer.add(entry(0))
    base = read_sequence(tmp_path)
    monkeypatch.setattr(os, "write", counting)
    n = 16
    threads = queue_behind_a_held_sequence_lock(
        writer, tmp_path, [lambda i=i: writer.add(entry(i)) for i in range(1, n + 1)]
    )
    monkeypatch.undo()
    assert not any(t.is_alive() for t in threads)
    assert writer.written == n + 1 and writer.commits == 3  # the first add, then 1 + 15
    assert not writer._committing and writer._queue == []
    assert [w.count(b"\n") for w in writes] == [1, n - 1]  # two writes: one per group
    assert read_sequence(tmp_path) == base + n
    lines = journal_lines(tmp_path)
    assert b"".join(writes) == b"".join(e.to_line() for e in lines[1:])  # written as sent
    assert [e.seq for e in lines] == list(range(base, base + n + 1))  # in the order written
    assert sorted(e.number for e in lines) == sorted(entry(i).number for i in range(n + 1))
    writer.close()
    stored = HLRCache(tmp_path).to_frame(raw=False).set_index("number")["seq"]
    assert {e.number: e.seq for e in lines} == stored.to_dict()  # the parts say the same


def test_many_threads_adding_at_once_each_land_once_with_a_unique_seq(tmp_path):
    cache = HLRCache(tmp_path, flush_every=37, compact=False)
    writer = CacheWriter(cache)
    workers, each = 24, 40
    returned: list[list[int]] = [[] for _ in range(workers)]
    missing: list[str] = []
    start = threading.Barrier(workers)

    def work(w: int) -> None:
        start.wait()
        for k in range(each):
            i = w * each + k
            writer.add(entry(i))
            returned[w].append(i)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    # a reader meanwhile: every answer whose add returned is readable (journal or part)
    reader_stop = threading.Event()

    def read() -> None:
        while not reader_stop.is_set():
            done = [i for r in returned for i in list(r)]
            got = set(HLRCache(tmp_path).to_frame(raw=False)["number"])
            missing.extend(entry(i).number for i in done if entry(i).number not in got)

    reader = threading.Thread(target=read)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG)
    reader_stop.set()
    reader.join(HANG)
    assert not missing
    total = workers * each
    assert writer.written == total and 0 < writer.commits <= total
    writer.close()
    assert journals(tmp_path) == []  # every journal retired once its lines were in a part
    frame = HLRCache(tmp_path).to_frame(raw=False)
    stats = HLRCache(tmp_path).stats()
    assert stats["stored_rows"] == stats["entries"] == total  # each answer once, none lost
    assert sorted(frame["number"]) == sorted(entry(i).number for i in range(total))
    assert frame["seq"].is_unique and frame["seq"].max() == read_sequence(tmp_path)


def test_a_fold_never_makes_the_others_wait_and_retires_only_folded_journals(tmp_path):
    """Folding swaps the journal out: answers keep arriving in a new journal while the part is
    written, and a journal is removed only once its lines are all in a part."""
    cache = HLRCache(tmp_path, flush_every=4, compact=False)
    writer = CacheWriter(cache)
    for i in range(3):
        writer.add(entry(i))
    first = journals(tmp_path)
    assert len(first) == 1 and len(journal_lines(tmp_path)) == 3
    writer.add(entry(3))  # the fourth: folded into a part, its journal retired
    assert not first[0].exists() and len(list(tmp_path.glob("part-*.parquet"))) == 1
    assert journals(tmp_path) == []
    writer.add(entry(4))  # a new journal
    assert [e.number for e in journal_lines(tmp_path)] == [entry(4).number]
    writer.flush()
    assert journals(tmp_path) == [] and len(list(tmp_path.glob("part-*.parquet"))) == 2
    writer.flush()  # nothing to fold: no empty part
    assert len(list(tmp_path.glob("part-*.parquet"))) == 2
    writer.close()
    assert HLRCache(tmp_path).stats()["stored_rows"] == 5


def test_flush_seconds_folds_the_journal_when_due(tmp_path):
    writer = CacheWriter(HLRCache(tmp_path, flush_every=10**6, flush_seconds=0.0, compact=False))
    writer.add(entry(1))
    assert journals(tmp_path) == [] and len(list(tmp_path.glob("part-*.parquet"))) == 1
    writer.close()
    lazy = CacheWriter(HLRCache(tmp_path / "b", flush_every=10**6, flush_seconds=1e9))
    lazy.add(entry(2))
    assert len(journals(tmp_path / "b")) == 1 and not list((tmp_path / "b").glob("part-*"))
    lazy.close()
    assert journals(tmp_path / "b") == [] and len(list((tmp_path / "b").glob("part-*"))) == 1


def test_closing_with_nothing_written_leaves_no_journal_and_no_part(tmp_path):
    writer = CacheWriter(HLRCache(tmp_path))
    assert len(journals(tmp_path)) == 1  # opened first: proves the folder takes writes
    writer.close()
    assert journals(tmp_path) == [] and not list(tmp_path.glob("part-*.parquet"))


#: A child that adds through a writer under RLIMIT_FSIZE; prints one JSON line of what happened.
CHILD = textwrap.dedent(
    """
    import errno, fcntl, json, os, resource, sys, threading, time
    sys.path.insert(0, sys.argv[3])
    from tests.test_group_commit import entry, queue_behind_a_held_sequence_lock, journal_lines
    from pd_hlr.cache import CacheWriter, HLRCache
    from pathlib import Path
    folder, mode = Path(sys.argv[1]), sys.argv[2]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    flush_every = 3 if mode == "part" else 10**6
    w = CacheWriter(HLRCache(folder, flush_every=flush_every, flush_seconds=1e9, compact=False))
    out = {"ok": [], "failed": {}}
    def add(i):
        try:
            w.add(entry(i))
            out["ok"].append(i)
        except OSError as exc:
            out["failed"][i] = [exc.errno, type(exc.__cause__).__name__]
    if mode == "journal":
        add(0)
        size = os.fstat(w._journal.fd).st_size
        one = len(entry(1).to_line()) + len(b'"s":00,')
        # room for the lone leader's line and half of the next group's first line
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + one + one // 2, hard))
        queue_behind_a_held_sequence_lock(w, folder, [lambda i=i: add(i) for i in range(1, 9)])
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        out["journal"] = [e.number for e in journal_lines(folder)]
        add(20)  # the writer goes on: its next line is whole
        out["after"] = [e.number for e in journal_lines(folder)]
    elif mode == "close":  # a close whose fold fails: the journal stays, unlocked
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, hard))
        add(0); add(1)
        try:
            w.close()
        except OSError as exc:
            out["close"] = errno.errorcode[exc.errno]
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        from pd_hlr.cache.journal import take_orphan
        (j,) = folder.glob("journal-*.jsonl")
        taken = take_orphan(j)
        out["unlocked"] = taken is not None
        os.close(taken[0]) if taken else None
        print(json.dumps(out))
        sys.exit(0)
    else:  # a part that cannot be written: the journal stays until a fold succeeds
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, hard))
        add(0); add(1); add(2)  # the third is due to fold: the part write fails
        out["journals"] = len(list(folder.glob("journal-*.jsonl")))
        out["parts"] = len(list(folder.glob("part-*.parquet")))
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        w.flush()
        out["journals_after"] = len(list(folder.glob("journal-*.jsonl")))
    w.close()
    print(json.dumps(out))
    """
)


def run_child(folder: Path, mode: str) -> dict:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), mode, str(root)],
        capture_output=True,
        text=True,
        timeout=HANG,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_group_whose_write_fails_fails_for_every_member_and_leaves_no_line(tmp_path):
    out = run_child(tmp_path, "journal")
    failed = {int(i): v for i, v in out["failed"].items()}
    leader = [i for i in out["ok"] if i not in (0, 20)]
    assert len(leader) == 1 and sorted(failed) == sorted(set(range(1, 9)) - set(leader))
    # each member raised EFBIG, caused by the leader's error (the leader raised it itself)
    assert {tuple(v) for i, v in failed.items()} <= {
        (errno.EFBIG, "OSError"),
        (errno.EFBIG, "NoneType"),
    }
    assert sum(v[1] == "NoneType" for v in failed.values()) == 1  # the failed group's leader
    # the journal holds exactly the lines of the adds that returned, cut back to whole lines
    assert out["journal"] == [entry(0).number, entry(leader[0]).number]
    assert out["after"] == [*out["journal"], entry(20).number]
    stored = HLRCache(tmp_path).to_frame(raw=False)
    assert sorted(stored["number"]) == sorted(entry(i).number for i in out["ok"])


def test_a_part_that_cannot_be_written_keeps_its_journal_until_a_fold_succeeds(tmp_path):
    out = run_child(tmp_path, "part")
    assert out["ok"] == [0, 1] and list(out["failed"]) == ["2"]  # the add that folded raised
    assert out["journals"] == 1 and out["parts"] == 0  # the lines stay journalled
    assert out["journals_after"] == 0  # folded once the part could be written
    stored = HLRCache(tmp_path).stats()
    assert stored["stored_rows"] == stored["entries"] == 3 and stored["journals"] == 0


#: A child adding from many threads; "start i" before each add, "done i" after it returns.
KILLED = textwrap.dedent(
    """
    import sys, threading
    sys.path.insert(0, sys.argv[3])
    from tests.test_group_commit import entry
    from pd_hlr.cache import CacheWriter, HLRCache
    w = CacheWriter(HLRCache(sys.argv[1], flush_every=50, flush_seconds=1e9))
    workers = int(sys.argv[2])
    out = threading.Lock()
    def say(text):
        with out:
            sys.stdout.write(text + "\\n"); sys.stdout.flush()
    def work(k):
        i = k
        while True:
            say(f"start {i}")
            w.add(entry(i))
            say(f"done {i}")
            i += workers
    for k in range(workers):
        threading.Thread(target=work, args=(k,), daemon=True).start()
    threading.Event().wait()
    """
)


def test_kill_9_while_many_threads_add_loses_only_answers_in_flight(tmp_path):
    workers = 16
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(tmp_path), str(workers), str(root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    started: set[int] = set()
    done: set[int] = set()
    assert proc.stdout is not None
    try:
        for text in proc.stdout:
            what, i = text.split()
            (done if what == "done" else started).add(int(i))
            if len(done) >= 400:  # well past several folds (every 50)
                break
        os.kill(proc.pid, signal.SIGKILL)
        for text in proc.stdout:  # what it said before it died
            if text.endswith("\n"):
                what, i = text.split()
                (done if what == "done" else started).add(int(i))
    finally:
        proc.kill()
        proc.wait(HANG)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    writer = CacheWriter(HLRCache(tmp_path))  # a new writer folds the orphan journal
    writer.close()
    frame = HLRCache(tmp_path).to_frame(raw=False)
    stored = {int(n[5:]) for n in frame["number"]}
    assert done <= stored  # every add that returned is durable
    assert len(started - stored) <= workers  # lost: at most one answer in flight per thread
    assert stored <= started and frame["seq"].is_unique
    assert HLRCache(tmp_path).stats()["stored_rows"] == len(stored)  # none stored twice
    assert journals(tmp_path) == []  # the killed writer's journal, folded by the next writer


# -- the sequence: a range per step --------------------------------------------------------------
def test_a_sequence_step_takes_a_range_and_writes_its_last_value(tmp_path, caplog):
    from pd_hlr.cache.folder import Sequence

    seq = Sequence(tmp_path)
    try:
        with seq.advance() as first:
            assert first == 1
        with seq.advance(5) as first:
            assert first == 2  # 2..6 are this step's
            assert (tmp_path / SEQ_FILE).read_bytes() == b"%020d\n" % 6  # written before
        assert read_sequence(tmp_path) == 6
        with pytest.raises(ValueError, match="at least one"), seq.advance(0):
            pass
        assert read_sequence(tmp_path) == 6
        seq.raise_to(3)  # never lowered
        assert read_sequence(tmp_path) == 6
        seq.raise_to(40)
        assert read_sequence(tmp_path) == 40
        (tmp_path / SEQ_FILE).write_bytes(b"garbage\n")
        with caplog.at_level("WARNING", logger="pd_hlr.cache"), seq.advance(2) as first:
            assert first == 1  # rebuilt from 0 (a writer raises it above what is stored first)
        assert "unreadable; rebuilt" in caplog.text
        assert read_sequence(tmp_path) == 2
        (tmp_path / SEQ_FILE).write_bytes(b"garbage\n")
        seq.raise_to(9)
        assert read_sequence(tmp_path) == 9
        (tmp_path / SEQ_FILE).write_bytes(b"\n")
        caplog.clear()
        with caplog.at_level("WARNING", logger="pd_hlr.cache"), seq.advance() as first:
            assert first == 1
        assert caplog.text == ""  # an empty counter is 0, not damage
        (tmp_path / SEQ_FILE).write_bytes(b"7\n")  # written by hand, without the zeros
        assert read_sequence(tmp_path) == 7
        with seq.advance() as first:
            assert first == 8
    finally:
        seq.close()
    seq.close()  # twice: harmless


def test_a_sequence_closes_its_descriptor_even_on_descriptor_zero(tmp_path):
    from pd_hlr.cache.folder import Sequence

    seq = Sequence(tmp_path)
    fd = seq._fd
    seq.close()
    with pytest.raises(OSError):
        os.fstat(fd)  # closed
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from pd_hlr.cache.folder import Sequence\n"
        "os.close(0)\n"
        "s = Sequence(Path(sys.argv[1]))\n"
        "fd = s._fd\n"
        "s.close()\n"
        "print(fd, os.path.exists(f'/proc/self/fd/{fd}'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=HANG
    )
    assert out.stdout.split() == ["0", "False"], out.stderr


def test_raising_the_sequence_waits_for_its_lock(tmp_path):
    from pd_hlr.cache.folder import Sequence

    seq = Sequence(tmp_path)
    lock = SeqLock(tmp_path)
    raiser = threading.Thread(target=seq.raise_to, args=(50,))
    raiser.start()
    raiser.join(0.2)
    assert raiser.is_alive()  # blocked while another holds the lock
    lock.release()
    raiser.join(HANG)
    assert read_sequence(tmp_path) == 50
    with seq.advance() as first:
        assert first == 51
    seq.close()


def test_a_reader_waits_for_a_step_and_sees_its_whole_range(tmp_path):
    from pd_hlr.cache.folder import Sequence

    seq = Sequence(tmp_path)
    got: list[int] = []
    with seq.advance(3):
        reader = threading.Thread(target=lambda: got.append(read_sequence(tmp_path)))
        reader.start()
        reader.join(0.2)
        assert reader.is_alive() and not got  # blocked while the step's lines are written
    reader.join(HANG)
    assert got == [3]
    seq.close()
    assert read_sequence(tmp_path / "missing") == 0
    (tmp_path / SEQ_FILE).write_bytes(b"x")
    assert read_sequence(tmp_path) == 0


def test_ctrl_c_while_waiting_for_its_group_is_raised_once_the_group_is_written(tmp_path):
    """A signal handler raising in a thread that waits for its group (the main thread, Ctrl-C)
    does not abandon the queue: the thread sees its answer through (here it is handed the next
    group to write), then raises."""
    writer = CacheWriter(HLRCache(tmp_path, compact=False))
    lock = SeqLock(tmp_path)
    first = threading.Thread(target=writer.add, args=(entry(1),))
    first.start()
    until(lambda: writer._committing)  # it leads, and waits on the sequence lock
    main = threading.main_thread()
    hit = threading.Event()

    def interrupt() -> None:
        until(lambda: sys._current_frames()[main.ident].f_code.co_name == "_await")
        signal.pthread_kill(main.ident, signal.SIGUSR1)
        hit.wait(HANG)
        lock.release()

    def handler(signum, frame):
        hit.set()
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGUSR1, handler)
    helper = threading.Thread(target=interrupt)
    helper.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            writer.add(entry(2))
    finally:
        signal.signal(signal.SIGUSR1, previous)
        helper.join(HANG)
        first.join(HANG)
    assert hit.is_set() and not first.is_alive()
    assert [e.number for e in journal_lines(tmp_path)] == [entry(1).number, entry(2).number]
    assert writer.commits == 2 and not writer._committing and writer._queue == []
    writer.add(entry(3))  # the writer goes on
    writer.close()
    assert HLRCache(tmp_path).stats()["stored_rows"] == 3


def test_group_failed_keeps_the_errno_and_the_cause():
    from pd_hlr.cache.store import _group_failed

    leader = OSError(errno.ENOSPC, "No space left on device", "/c/journal-1-0123456789ab.jsonl")
    got = _group_failed(leader)
    assert type(got) is OSError and got.errno == errno.ENOSPC and got.__cause__ is leader
    assert got.filename == leader.filename and "No space left on device" in str(got)
    assert isinstance(_group_failed(OSError(errno.EACCES, "denied")), PermissionError)
    other = _group_failed(KeyboardInterrupt())
    assert type(other) is RuntimeError and other.__cause__ is not None
    assert "KeyboardInterrupt" in str(other)
    assert type(_group_failed(OSError("no errno"))) is RuntimeError


def test_flush_and_close_wait_for_the_group_being_written(tmp_path):
    writer = CacheWriter(HLRCache(tmp_path, compact=False))
    lock = SeqLock(tmp_path)
    adder = threading.Thread(target=writer.add, args=(entry(1),))
    adder.start()
    until(lambda: writer._committing)  # its leader waits on the sequence lock
    flusher = threading.Thread(target=writer.flush)
    flusher.start()
    until(lambda: sys._current_frames()[flusher.ident].f_code.co_name == "wait")
    assert flusher.is_alive() and list(tmp_path.glob("part-*")) == []  # waits for it
    lock.release()
    adder.join(HANG)
    flusher.join(HANG)
    assert not adder.is_alive() and not flusher.is_alive()
    assert len(list(tmp_path.glob("part-*"))) == 1 and journals(tmp_path) == []
    writer.close()
    assert HLRCache(tmp_path).stats()["stored_rows"] == 1


def test_a_writer_leaves_no_descriptor_open_and_compacts_when_it_closes(tmp_path):
    import gc

    gc.collect()  # descriptors other tests left to the collector are closed now, not below
    before = len(os.listdir("/proc/self/fd"))
    writer = CacheWriter(HLRCache(tmp_path, flush_every=1))  # compact=True: the default
    for i in range(4):
        writer.add(entry(i))
    assert len(list(tmp_path.glob("part-*"))) == 4
    seq_fd = writer._seq._fd
    writer.close()
    with pytest.raises(OSError):
        os.fstat(seq_fd)  # closed
    assert len(os.listdir("/proc/self/fd")) == before
    assert len(list(tmp_path.glob("part-*"))) == 1  # four small parts merged into one
    assert HLRCache(tmp_path).stats()["entries"] == 4


def test_an_answer_that_cannot_be_stored_is_quarantined_not_journalled(tmp_path):
    writer = CacheWriter(HLRCache(tmp_path, compact=False))
    bad = Entry("+447400000001", OPTS, API, ["not", "an object"], datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.warns(RuntimeWarning, match="from a paid answer moved aside"):
        writer.add(bad)  # type: ignore[arg-type]
    assert writer.written == 0 and journal_lines(tmp_path) == []
    (side,) = tmp_path.glob("quarantine-*.jsonl")
    assert side.read_bytes() == repr(bad).encode("ascii", "backslashreplace") + b"\n"
    writer.add(entry(2))
    writer.close()
    assert HLRCache(tmp_path).stats()["entries"] == 1


def test_a_new_writer_continues_the_sequence_above_everything_stored(tmp_path):
    writer = CacheWriter(HLRCache(tmp_path, compact=False))
    for i in range(5):
        writer.add(entry(i))
    writer.close()
    (tmp_path / SEQ_FILE).unlink()  # the counter lost: the parts still say where it was
    writer = CacheWriter(HLRCache(tmp_path, compact=False))
    writer.add(entry(0))
    writer.close()
    frame = HLRCache(tmp_path).to_frame(raw=False)
    assert frame.set_index("number")["seq"][entry(0).number] == 6  # newest: last written


def test_a_sequence_file_planted_as_a_link_refuses_the_writer_and_leaves_no_journal(tmp_path):
    from pd_hlr.errors import CacheFolderError

    HLRCache(tmp_path)._own(create=True)
    (tmp_path / SEQ_FILE).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CacheFolderError):
        CacheWriter(HLRCache(tmp_path))
    assert journals(tmp_path) == [] and not list(tmp_path.glob(".journal-*"))


def test_an_answer_a_part_cannot_hold_is_moved_aside_when_folded(tmp_path):
    """A counter near the end of int64 (a damaged or hand-edited ``seq`` file): the answer
    given a value beyond it is journalled, but a part cannot hold it; the fold moves it aside
    and keeps the others."""
    HLRCache(tmp_path)._own(create=True)
    (tmp_path / SEQ_FILE).write_bytes(b"%020d\n" % (2**63 - 3))
    writer = CacheWriter(HLRCache(tmp_path, compact=False))
    writer.add(entry(1))  # 2**63 - 2
    writer.add(entry(2))  # 2**63 - 1: the last value an int64 holds
    writer.add(entry(3))  # 2**63: beyond it
    with pytest.warns(RuntimeWarning, match="1 unreadable entry from a run moved aside"):
        writer.flush()
    (side,) = tmp_path.glob("quarantine-*.jsonl")
    assert Entry.from_line(side.read_bytes()).number == entry(3).number
    assert journals(tmp_path) == []
    writer.close()
    stored = HLRCache(tmp_path).to_frame(raw=False)
    assert sorted(stored["number"]) == [entry(1).number, entry(2).number]


def test_a_close_whose_fold_fails_leaves_its_journal_unlocked_for_the_next_reader(tmp_path):
    out = run_child(tmp_path, "close")
    assert out["ok"] == [0, 1] and out["close"] == "EFBIG"
    assert out["unlocked"]  # closed: another process may fold it now
    assert not list(tmp_path.glob("part-*.parquet"))
    writer = CacheWriter(HLRCache(tmp_path, compact=False))  # folds the orphan
    writer.close()
    assert journals(tmp_path) == [] and HLRCache(tmp_path).stats()["entries"] == 2


def test_an_answer_after_close_is_refused_and_leaves_no_journal(tmp_path):
    """A late delivery after the run closed its writer (a bug upstream) gets a plain error,
    not a journal created, locked and leaked behind a closed write sequence."""
    cache = HLRCache(tmp_path / "c", compact=False)
    with cache.writer() as w:
        w.add(entry(1))
    with pytest.raises(ValueError, match="is closed"):
        w.add(entry(2))
    assert not journals(tmp_path / "c")
    assert list(cache.to_frame()["number"]) == [entry(1).number]


def test_an_orphan_journal_whose_part_was_written_is_folded_without_repeats(tmp_path):
    """kill -9 between a fold's part and its journal's removal leaves the same lines in both:
    the next writer folds only the lines no part holds (before, they were stored twice)."""
    from dataclasses import replace

    from pd_hlr.cache.journal import Journal
    from pd_hlr.cache.parts import entries_to_table, write_part

    folder = tmp_path / "c"
    HLRCache(folder)._own(create=True)
    folded = [replace(entry(i), seq=i) for i in (1, 2, 3)]
    write_part(folder, entries_to_table(folded)[0])
    journal = Journal(folder)
    journal.write(b"".join(e.to_line() for e in [*folded, replace(entry(4), seq=4)]))
    journal.close()  # its writer died: the journal stays, unlocked
    CacheWriter(HLRCache(folder)).close()  # a new writer folds the orphan
    cache = HLRCache(folder)
    assert cache.stats()["stored_rows"] == 4
    assert sorted(cache.to_frame()["seq"]) == [1, 2, 3, 4]
    assert journals(folder) == []
