"""Journals, file by file: what a journal holds on disk, how a reader splits it, and how orphans
are taken (the mutation target of ``tools/mutation.py journal``).

Every test asserts bytes on disk, the lock another process would meet, or the descriptors left
open; none writes the entry format by hand (lines come from :meth:`Entry.to_line`).
"""

from __future__ import annotations

import fcntl
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import pd_hlr
from pd_hlr.cache import Entry, journal
from pd_hlr.cache.journal import (
    STALE_NEW_SECONDS,
    Journal,
    drop_orphan,
    journals,
    orphans,
    parse_journal,
    read_journal,
    take_orphan,
)

OPTS = pd_hlr.LookupOptions().key()
API = "127.0.0.1"


def line(n: int, seq: int | None = None) -> bytes:
    number = f"+4474{n:08d}"
    e = Entry(number, OPTS, API, {"to": number, "live": True}, datetime(2026, 1, 1, tzinfo=UTC))
    if seq is not None:
        from dataclasses import replace

        e = replace(e, seq=seq)
    return e.to_line()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def locked_by_someone(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# -- reading ----------------------------------------------------------------------------------
def test_parse_splits_entries_bad_lines_and_a_line_cut_short():
    good1, good2, good3 = line(1), line(2), line(3)
    data = b"\n" + good1 + b"\n\n" + b"not json\n" + good2 + good3[:-1]  # good3 lacks its newline
    out = parse_journal(data)
    assert [e.number for e in out.entries] == ["+447400000001", "+447400000002", "+447400000003"]
    assert out.bad == [b"not json"] and len(out.reasons) == 1 and out.torn == b""
    cut = parse_journal(good1 + good2[:20])
    assert [e.number for e in cut.entries] == ["+447400000001"]
    assert cut.torn == good2[:20] and cut.bad == [] and cut.reasons == []


def test_a_bad_line_before_the_end_is_bad_not_cut_short():
    out = parse_journal(line(1) + b"{broken\n")
    assert out.bad == [b"{broken"] and out.torn == b""
    assert parse_journal(b"").entries == [] and parse_journal(b"").torn == b""


def test_read_journal_reads_the_file_and_skips_what_is_not_a_regular_file(tmp_path):
    path = tmp_path / "journal-1-0123456789ab.jsonl"
    path.write_bytes(b"\n" + line(1) + line(2))
    before = open_fds()
    assert [e.number for e in read_journal(path).entries] == ["+447400000001", "+447400000002"]
    assert open_fds() == before
    assert read_journal(tmp_path / "gone.jsonl").entries == []
    os.mkfifo(tmp_path / "journal-2-0123456789ab.jsonl")  # would block a plain open forever
    assert read_journal(tmp_path / "journal-2-0123456789ab.jsonl").entries == []
    (tmp_path / "journal-3-0123456789ab.jsonl").symlink_to(path)
    assert read_journal(tmp_path / "journal-3-0123456789ab.jsonl").entries == []


def test_journals_lists_only_the_cache_s_own_journals(tmp_path):
    mine = tmp_path / "journal-12-0123456789ab.jsonl"
    mine.write_bytes(b"\n")
    (tmp_path / "journal-2024.jsonl").write_bytes(b"{}\n")
    (tmp_path / "journal-12-0123456789ab.jsonl.bak").write_bytes(b"\n")
    assert journals(tmp_path) == [mine]
    assert journals(tmp_path / "missing") == []


# -- writing ----------------------------------------------------------------------------------
def test_a_journal_is_published_locked_private_and_appends_each_line(tmp_path):
    j = Journal(tmp_path)
    try:
        assert j.path.parent == tmp_path and journals(tmp_path) == [j.path]
        assert not list(tmp_path.glob(".journal-*"))  # the creation name is gone
        assert j.path.read_bytes() == b"\n"  # the first byte, written before publishing
        assert os.stat(j.path).st_mode & 0o777 == 0o600
        assert locked_by_someone(j.path)
        j.write(line(1))
        j.write(line(2))
        assert j.path.read_bytes() == b"\n" + line(1) + line(2)
        assert take_orphan(j.path) is None  # a live writer's journal is never taken
    finally:
        j.close()


def test_fsync_true_syncs_every_line_and_false_never(tmp_path, monkeypatch):
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    plain = Journal(tmp_path)
    plain.write(line(1))
    assert synced == [] and plain.fsync is False
    durable = Journal(tmp_path, fsync=True)
    durable.write(line(2))
    durable.write(line(3))
    assert synced == [durable.fd, durable.fd]
    plain.close()
    durable.close()


def test_a_journal_that_cannot_be_published_leaves_nothing_behind(tmp_path, monkeypatch):
    def refuse(*args):
        raise PermissionError(13, "denied")

    monkeypatch.setattr(os, "rename", refuse)
    before = open_fds()
    with pytest.raises(PermissionError):
        Journal(tmp_path)
    assert list(tmp_path.iterdir()) == [] and open_fds() == before


def test_retire_removes_the_journal_and_closes_it(tmp_path):
    before = open_fds()
    j = Journal(tmp_path)
    j.write(line(1))
    j.retire()
    assert not j.path.exists() and j.fd == -1 and open_fds() == before
    j.close()  # twice is harmless
    gone = Journal(tmp_path)
    gone.path.unlink()  # e.g. HLRCache.clear() in another process
    gone.retire()  # nothing to remove: no error
    assert gone.fd == -1
    k = Journal(tmp_path)
    k.close()
    assert k.path.exists() and k.fd == -1 and open_fds() == before
    assert not locked_by_someone(k.path)  # closing let go of the lock: an orphan now


# -- orphans ----------------------------------------------------------------------------------
def test_an_orphan_is_taken_locked_read_whole_and_dropped(tmp_path):
    path = tmp_path / "journal-999999-0123456789ab.jsonl"
    path.write_bytes(b"\n" + line(1) + line(2) + line(3)[:10])
    before = open_fds()
    taken = take_orphan(path)
    assert taken is not None
    fd, contents = taken
    assert [e.number for e in contents.entries] == ["+447400000001", "+447400000002"]
    assert contents.torn == line(3)[:10]
    assert locked_by_someone(path)  # held while the caller folds it
    drop_orphan(path, fd)
    assert not path.exists() and open_fds() == before
    assert take_orphan(path) is None and open_fds() == before  # gone: nothing to take


def test_take_orphan_leaves_links_and_fifos_alone(tmp_path):
    target = tmp_path / "elsewhere.jsonl"
    target.write_bytes(b"\n" + line(1))
    (tmp_path / "journal-1-0123456789ab.jsonl").symlink_to(target)
    os.mkfifo(tmp_path / "journal-2-0123456789ab.jsonl")
    before = open_fds()
    assert take_orphan(tmp_path / "journal-1-0123456789ab.jsonl") is None
    assert take_orphan(tmp_path / "journal-2-0123456789ab.jsonl") is None
    assert open_fds() == before and target.read_bytes() == b"\n" + line(1)


def test_a_live_writer_s_journal_is_not_taken_and_no_descriptor_leaks(tmp_path):
    j = Journal(tmp_path)
    before = open_fds()
    assert take_orphan(j.path) is None
    assert open_fds() == before
    j.close()


def test_orphans_drops_only_stale_unlocked_creation_names(tmp_path):
    def new(name: str, age: float) -> Path:
        p = tmp_path / name
        p.write_bytes(b"\n")
        t = time.time() - age
        os.utime(p, (t, t))
        return p

    stale = new(".journal-1-0123456789ab.new", STALE_NEW_SECONDS + 0.5)
    fresh = new(".journal-2-0123456789ab.new", STALE_NEW_SECONDS - 0.5)
    held = new(".journal-3-0123456789ab.new", STALE_NEW_SECONDS * 10)
    holder = os.open(held, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    published = tmp_path / "journal-4-0123456789ab.jsonl"
    published.write_bytes(b"\n" + line(1))
    before = open_fds()
    try:
        assert orphans(tmp_path) == [published]
        assert not stale.exists() and fresh.exists() and held.exists()
        assert open_fds() == before
    finally:
        os.close(holder)
    assert STALE_NEW_SECONDS == 60.0
    assert orphans(tmp_path / "missing") == []
    assert journal.logger.name == "pd_hlr.cache"


def test_a_cache_opened_with_fsync_syncs_its_journal_lines_and_parts(tmp_path, monkeypatch):
    from pd_hlr.cache import CacheWriter, HLRCache

    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    entry = Entry.from_line(line(1))
    w = CacheWriter(HLRCache(tmp_path / "plain", compact=False))
    w.add(entry)
    w.close()
    assert synced == []
    w = CacheWriter(HLRCache(tmp_path / "durable", fsync=True, compact=False))
    w.add(entry)
    assert len(synced) == 1  # the journal line, before add returned
    w.close()
    assert len(synced) == 2  # and the part it was folded into


def test_an_orphan_replaced_while_being_taken_is_left_to_its_new_owner(tmp_path, monkeypatch):
    """The window between opening an orphan and locking it: another process folded it and a new
    file took its name. take_orphan must let go (no descriptor kept) and take nothing."""
    path = tmp_path / "journal-999999-0123456789ab.jsonl"
    path.write_bytes(b"\n" + line(1))
    monkeypatch.setattr(journal, "still_linked", lambda fd, p: False)
    before = open_fds()
    assert take_orphan(path) is None
    assert open_fds() == before and path.exists()


def test_dropping_an_orphan_someone_else_removed_is_harmless(tmp_path):
    path = tmp_path / "journal-999999-0123456789ab.jsonl"
    path.write_bytes(b"\n" + line(1))
    before = open_fds()
    taken = take_orphan(path)
    assert taken is not None
    path.unlink()  # HLRCache.clear() in another process
    drop_orphan(path, taken[0])
    assert open_fds() == before


def test_a_journal_on_descriptor_zero_is_closed_too(tmp_path):
    """A daemon runs with standard input closed: its journal may get descriptor 0."""
    import subprocess
    import sys

    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from pd_hlr.cache.journal import Journal\n"
        "os.close(0)\n"
        "j = Journal(Path(sys.argv[1]))\n"
        "fd = j.fd\n"
        "j.close()\n"
        "print(fd, os.path.exists(f'/proc/self/fd/{fd}'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert out.stdout.split() == ["0", "False"], out.stderr


def test_a_write_the_file_cannot_take_whole_is_cut_back_to_whole_lines(tmp_path):
    """A write cut short at a file size limit (a short write, then ``EFBIG``: the same path as a
    full disk) raises, and the journal is cut back: it holds the lines of the writes that
    returned, and the next write lands on a line of its own."""
    import subprocess
    import sys

    script = (
        "import errno, os, resource, sys\n"
        "from pathlib import Path\n"
        "from pd_hlr.cache.journal import Journal\n"
        "a, b, c, d = (bytes.fromhex(h) for h in sys.argv[2:6])\n"
        "j = Journal(Path(sys.argv[1]))\n"
        "j.write(a)\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 + len(a) + len(b) // 2, hard))\n"
        "try:\n"
        "    j.write(b + c)\n"
        "except OSError as exc:\n"
        "    print(errno.errorcode[exc.errno])\n"
        "print(os.path.getsize(j.path))\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))\n"
        "j.write(d)\n"
        "j.close()\n"
    )
    a, b, c, d = line(1, 1), line(2, 2), line(3, 3), line(4, 4)
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), *(x.hex() for x in (a, b, c, d))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.split() == ["EFBIG", str(1 + len(a))], out.stderr
    (path,) = journals(tmp_path)
    assert path.read_bytes() == b"\n" + a + d
    assert [e.seq for e in read_journal(path).entries] == [1, 4]


def test_a_failed_write_that_cannot_be_cut_back_never_merges_with_the_next_line(tmp_path):
    """When even the cut fails (here the descriptor refuses both: it was swapped for a
    read-only one), the next write starts on a new line."""
    j = Journal(tmp_path)
    j.write(line(1))
    writable = os.dup(j.fd)
    read_only = os.open(j.path, os.O_RDONLY)
    os.dup2(read_only, j.fd)
    with pytest.raises(OSError):
        j.write(line(2))
    os.dup2(writable, j.fd)
    j.write(line(3))
    j.write(line(4))
    assert j.path.read_bytes() == b"\n" + line(1) + b"\n" + line(3) + line(4)
    for fd in (writable, read_only):
        os.close(fd)
    j.close()
