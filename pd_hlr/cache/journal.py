"""Journals: each answer appended as one line the moment it arrives; folded into parts later.

A writer creates its journal under a name no fold looks at (``.journal-*.new``), takes an
exclusive ``flock`` on it, writes a first byte (so an unwritable folder fails before any request
is sent) and only then renames it to ``journal-*.jsonl``: a process folding orphan journals can
never take a journal whose writer has not locked it yet. A fold re-checks, after taking the lock,
that the name still points at the file it opened. Answers arriving together are appended with
one write (group commit: see ``CacheWriter`` in ``store.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .entry import BadEntry, Entry
from .folder import (
    NotRegularFile,
    open_regular,
    own_files,
    read_all,
    read_regular,
    still_linked,
    unique,
)

logger = logging.getLogger("pd_hlr.cache")


@dataclass
class JournalContents:
    """What a journal holds: readable entries, complete lines that are not entries (with the
    reasons), and a last line cut short (no newline) that is not an entry either."""

    entries: list[Entry] = field(default_factory=list)
    bad: list[bytes] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    torn: bytes = b""


def parse_journal(data: bytes) -> JournalContents:
    out = JournalContents()
    lines = data.split(b"\n")
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.entries.append(Entry.from_line(line))
        except BadEntry as exc:
            if i == last:  # no newline after it: cut short by a kill or a crash
                out.torn = line
            else:
                out.bad.append(line)
                out.reasons.append(str(exc))
    return out


def read_journal(path: Path) -> JournalContents:
    try:
        data = read_regular(path)
    except (FileNotFoundError, NotRegularFile):  # gone, or swapped for a link / FIFO: skipped
        return JournalContents()
    return parse_journal(data)


def journals(folder: Path) -> list[Path]:
    """The folder's journals (regular files named ``journal-<pid>-<id>.jsonl`` only)."""
    return own_files(folder, "journal")


class Journal:
    """One writer's journal: created, locked and published; lines appended with one ``write``."""

    def __init__(self, folder: Path, *, fsync: bool = False) -> None:
        name = unique("journal", ".jsonl")
        tmp = folder / f".{name[: -len('.jsonl')]}.new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, b"\n")  # the first byte: proves the folder takes writes
            os.rename(tmp, folder / name)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        self.fd = fd
        self.path = folder / name
        self.fsync = fsync
        self._newline = b""  # b"\n" after a failed write that could not be cut back

    def write(self, lines: bytes) -> None:
        """Append ``lines`` (whole lines: one answer, or a commit group's) with one ``write``
        (more only when the OS takes part of it), then ``fsync`` if asked. When that fails, the
        journal is cut back to where it was, so it holds exactly the lines of the writes that
        returned; if even the cut fails, the next write starts on a new line (the fragment is
        then a line apart, quarantined when folded) and never merges with a whole line."""
        data = self._newline + lines
        start = os.lseek(self.fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
            if self.fsync:
                os.fsync(self.fd)
        except BaseException:
            try:
                os.ftruncate(self.fd, start)
            except OSError:
                self._newline = b"\n"
            raise
        self._newline = b""

    def retire(self) -> None:
        """Remove the journal (its lines are in a part now) while still holding its lock."""
        self.path.unlink(missing_ok=True)
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


#: A journal still under its creation name this long after it was made belongs to a process
#: that died between creating and publishing it (a window of microseconds).
STALE_NEW_SECONDS = 60.0


def orphans(folder: Path) -> list[Path]:
    """Published journals, whether or not their writer is alive. Journals being created
    (``.journal-*.new``) are never folded: their writer may not hold their lock yet. One left
    behind by a process that died in that window (it holds no entry) is removed once stale."""
    now = time.time()
    for new in own_files(folder, "new journal"):
        with contextlib.suppress(OSError):
            if now - new.stat().st_mtime > STALE_NEW_SECONDS:
                taken = take_orphan(new)
                if taken is not None:
                    drop_orphan(new, taken[0])
    return journals(folder)


def take_orphan(path: Path) -> tuple[int, JournalContents] | None:
    """Lock an orphan journal (its writer is gone) and read it. Returns (locked fd, contents),
    or None when a live writer holds it or another process took it first. The caller folds
    the contents, then calls :func:`drop_orphan`."""
    try:
        fd = open_regular(path, os.O_RDONLY)
    except (FileNotFoundError, NotRegularFile):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if not still_linked(fd, path):
        os.close(fd)
        return None
    return fd, parse_journal(read_all(fd))


def drop_orphan(path: Path, fd: int) -> None:
    path.unlink(missing_ok=True)
    os.close(fd)
