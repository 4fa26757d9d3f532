"""The cache folder's files: names, locks, the write sequence and the quarantine.

=========================== ==============================================================
``part-s<seq>-n<rows>-<id>.parquet``   immutable parts; ``<seq>`` is the highest write sequence
                                       inside, ``<rows>`` its row count (older parts are named
                                       ``part-<time>-<pid>-<id>.parquet``)
``journal-<pid>-<id>.jsonl``           append-only journals, one ``flock``-ed by each live writer
``.journal-<pid>-<id>.new``            a journal being created: locked, then renamed into place,
                                       so no other process folds it before its writer holds it
``claims-<pid>-<id>.txt``              numbers a live process is paying for (see ``claims.py``)
``quarantine-*``                       entries and parts that could not be read, moved aside
``seq``                                the folder's write sequence (a counter under ``flock``)
``claims.lock``, ``compaction.lock``   lock files (never deleted)
``compaction.json``                    what the last compaction did
=========================== ==============================================================
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from .._warnings import warn
from ..errors import CacheNotWritableError

logger = logging.getLogger("pd_hlr.cache")

PART_GLOB = "part-*.parquet"
JOURNAL_GLOB = "journal-*.jsonl"
NEW_JOURNAL_GLOB = ".journal-*.new"
CLAIMS_GLOB = "claims-*.txt"
SEQ_FILE = "seq"
CLAIMS_LOCK = "claims.lock"
COMPACTION_LOCK = "compaction.lock"
COMPACTION_RECORD = "compaction.json"

_PART_NAME = re.compile(r"^part-s(\d+)-n(\d+)-[0-9a-f]+\.parquet$")


def unique(prefix: str, suffix: str) -> str:
    """A file name no other process will pick: ``<prefix>-<pid>-<random><suffix>``."""
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:12]}{suffix}"


def part_name(max_seq: int, rows: int) -> str:
    return f"part-s{max(max_seq, 0):020d}-n{rows}-{uuid.uuid4().hex[:12]}.parquet"


def part_info(path: Path) -> tuple[int, int | None]:
    """(highest write sequence, rows) from a part's name; (-1, None) for an older name."""
    m = _PART_NAME.match(path.name)
    return (int(m.group(1)), int(m.group(2))) if m else (-1, None)


def ensure_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)


def not_writable(path: Path, exc: OSError, verb: str = "written") -> CacheNotWritableError:
    """The error for a cache folder that cannot be written (or read), raised before any
    request is sent."""
    reason = exc.strerror or type(exc).__name__
    err = CacheNotWritableError(
        f"the cache folder {path} cannot be {verb} ({reason}); nothing was looked up. "
        "Choose a writable folder with cache=... (CLI: --cache DIR), or turn the cache off "
        "with cache=False (CLI: --no-cache).",
        path=str(path),
    )
    err.__cause__ = exc
    return err


def open_lock(path: Path) -> int:
    """A descriptor on a lock file (created ``0600``)."""
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


@contextlib.contextmanager
def locked(path: Path, *, shared: bool = False, block: bool = True) -> Iterator[bool]:
    """Hold ``flock`` on the lock file ``path``. Yields False (without the lock) when
    ``block`` is false and another process holds it."""
    fd = open_lock(path)
    try:
        flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if block else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def still_linked(fd: int, path: Path) -> bool:
    """True when ``path`` still names the file open on ``fd`` (checked after taking its lock:
    another process may have folded and removed it meanwhile)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return own.st_nlink > 0 and (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)


def write_atomic(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` through a temp file and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


class Sequence:
    """The folder's write sequence: a counter in the file ``seq``, advanced under ``flock``.

    It never goes backwards: :meth:`raise_to` lifts it above anything found in the folder (a
    lost or damaged ``seq`` file, parts copied in from elsewhere), whatever the clocks say.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / SEQ_FILE
        self._fd = open_lock(self.path)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _read(self) -> int | None:
        data = os.pread(self._fd, 64, 0)
        try:
            return int(data.decode("ascii").strip() or "0")
        except (UnicodeDecodeError, ValueError):
            return None

    def _write(self, value: int) -> None:
        os.pwrite(self._fd, f"{value:020d}\n".encode(), 0)

    @contextlib.contextmanager
    def advance(self) -> Iterator[int]:
        """Hold the sequence lock and yield the next value (written before it is yielded, so
        whatever the caller writes under the lock is ordered by it, and a reader of
        :func:`read_sequence`, which takes the lock shared, sees the value only once the
        caller's write is done)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            current = self._read()
            if current is None:
                logger.warning("cache sequence file %s was unreadable; rebuilt", self.path)
                current = 0
            value = current + 1
            self._write(value)
            yield value
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def raise_to(self, floor: int) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            current = self._read()
            if current is None or current < floor:
                self._write(floor)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def read_sequence(folder: Path) -> int:
    """The folder's write counter now, without creating anything (0 if none). Taken under the
    sequence lock (shared), so a value handed out by :meth:`Sequence.advance` is seen only once
    the entry written under it is in its journal."""
    try:
        fd = os.open(folder / SEQ_FILE, os.O_RDONLY)
    except OSError:
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        data = os.pread(fd, 64, 0)
    except OSError:
        return 0
    finally:
        os.close(fd)  # closing releases the lock
    try:
        return int(data.decode("ascii").strip() or "0")
    except (UnicodeDecodeError, ValueError):
        return 0


def quarantine_lines(
    folder: Path, lines: list[bytes], source: str, reason: str, *, loud: bool = True
) -> Path:
    """Move unreadable journal lines (or entries) aside, byte for byte, into a new side file,
    and warn once, naming it (``loud=False``: a line cut short by a kill, logged at DEBUG).
    Raises OSError when the side file cannot be written (the caller then keeps the source)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = folder / unique(f"quarantine-{stamp}", ".jsonl")
    body = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
    write_atomic(path, body)
    if not loud:
        logger.debug("cache: a line cut short in %s kept aside in %s", source, path)
        return path
    warn(
        f"pd_hlr cache: {len(lines)} unreadable entr{'y' if len(lines) == 1 else 'ies'} from "
        f"{source} moved aside to {path} ({reason}); the rest of the cache is unaffected",
        RuntimeWarning,
    )
    return path


def quarantine_part(path: Path, exc: BaseException) -> Path | None:
    """Move a corrupt part aside (renamed ``quarantine-<name>``), warning once, naming it."""
    target = path.with_name("quarantine-" + path.name)
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return None
        raise
    warn(
        f"pd_hlr cache: corrupt part {path.name} moved aside to {target} "
        f"({type(exc).__name__}: {exc}); the rest of the cache is unaffected",
        RuntimeWarning,
    )
    return target
